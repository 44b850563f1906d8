"""The human perception study (the paper's third question): its design, chosen from
campaigns. Serving it to people, machine observers and the analysis come next."""

from jsma.study.design import (
    ATTENTION_CHECKS,
    DISTORTION_EDGES,
    STUDY_DATABASE,
    Condition,
    Stimulus,
    choose_stimuli,
    create_study,
    describe,
    read_stimuli,
)

__all__ = [
    "ATTENTION_CHECKS",
    "DISTORTION_EDGES",
    "STUDY_DATABASE",
    "Condition",
    "Stimulus",
    "choose_stimuli",
    "create_study",
    "describe",
    "read_stimuli",
]
