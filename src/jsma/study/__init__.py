"""The human perception study (the paper's third question): its design, chosen from
campaigns; the store of participants, trials and answers; the analysis. The web
server (`jsma.study.server`) and the machine observers (`jsma.study.simulate`)
need the `study` extra and are imported from their modules."""

from jsma.study.analysis import StudyAnalysis, analyze, fleiss_kappa, write_analysis
from jsma.study.design import (
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
    read_stimuli,
    update_consent,
)
from jsma.study.store import Answer, Participant, StudyStore, Trial

__all__ = [
    "ATTENTION_CHECKS",
    "DISTORTION_EDGES",
    "PRACTICE_TRIALS",
    "STUDY_DATABASE",
    "Answer",
    "Condition",
    "ConsentText",
    "Participant",
    "Stimulus",
    "StudyAnalysis",
    "StudyStore",
    "Trial",
    "analyze",
    "choose_stimuli",
    "create_study",
    "describe",
    "fleiss_kappa",
    "read_consent",
    "read_stimuli",
    "update_consent",
    "write_analysis",
]
