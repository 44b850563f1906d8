"""The human perception study (the paper's third question): its design, chosen from
campaigns; the store of participants, trials and answers; the analysis. The web
server (`jsma.study.server`) and the machine observers (`jsma.study.simulate`)
need the `study` extra and are imported from their modules."""

from jsma.study._analysis import (
    ANALYSIS_FIGURE,
    ANALYSIS_FILE,
    ConditionLine,
    Rate,
    StudyAnalysis,
    analyze,
    crossed_bootstrap_interval,
    fleiss_kappa,
    observer_kind,
    read_analysis,
)
from jsma.study._design import (
    ATTENTION_CHECKS,
    DISTORTION_EDGES,
    PRACTICE_TRIALS,
    STUDY_DATABASE,
    Condition,
    ConsentText,
    Stimulus,
    choose_stimuli,
    create_study,
    describe,
    read_consent,
    read_distortion_edges,
    read_stimuli,
    update_consent,
)
from jsma.study._figures import analysis_figure, write_analysis
from jsma.study._store import Answer, AnswerRow, Participant, StudyStore, Trial

__all__ = [
    "ANALYSIS_FIGURE",
    "ANALYSIS_FILE",
    "ATTENTION_CHECKS",
    "DISTORTION_EDGES",
    "PRACTICE_TRIALS",
    "STUDY_DATABASE",
    "Answer",
    "AnswerRow",
    "Condition",
    "ConditionLine",
    "ConsentText",
    "Participant",
    "Rate",
    "Stimulus",
    "StudyAnalysis",
    "StudyStore",
    "Trial",
    "analysis_figure",
    "analyze",
    "choose_stimuli",
    "create_study",
    "crossed_bootstrap_interval",
    "describe",
    "fleiss_kappa",
    "observer_kind",
    "read_analysis",
    "read_consent",
    "read_distortion_edges",
    "read_stimuli",
    "update_consent",
    "write_analysis",
]
