"""The human perception study (the paper's third question): its design, chosen from
campaigns; the store of participants, trials and answers; the analysis. The web
server (`jsma.study.server`) and the machine observers (`jsma.study.simulate`)
need the `study` extra and are imported from their modules."""

from jsma.study._analysis import StudyAnalysis, analyze, read_analysis
from jsma.study._design import (
    ConsentText,
    Stimulus,
    create_study,
    read_consent,
    read_stimuli,
    update_consent,
)
from jsma.study._figures import write_analysis

__all__ = [
    "ConsentText",
    "Stimulus",
    "StudyAnalysis",
    "analyze",
    "create_study",
    "read_analysis",
    "read_consent",
    "read_stimuli",
    "update_consent",
    "write_analysis",
]
