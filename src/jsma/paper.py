"""The paper's reference numbers (Papernot et al., EuroS&P 2016, Section V) and
the setting of ours that comes closest to them."""

from __future__ import annotations

from dataclasses import dataclass

from jsma.settings import Output, RecipeName, SplitName

__all__ = ["CLOSEST", "PAPER", "PAPER_SAMPLES_PER_SET", "PAPER_SETS", "PaperSetting"]

# The full campaign: 10,000 samples of each set, each towards its 9 other classes
# (270,000 adversarial samples per direction).
PAPER_SETS: tuple[SplitName, ...] = ("train", "validation", "test")
PAPER_SAMPLES_PER_SET = 10_000

# Increasing: the average over the training, validation and test sets.
PAPER: dict[str, dict[str, float]] = {
    "increasing": {
        "success_rate": 0.9710,
        "mean_distortion_success": 4.02,
        "mean_distortion_all": 4.44,
    },
    "decreasing": {"success_rate": 0.647},
}


@dataclass(frozen=True)
class PaperSetting:
    """Which model and which output `jsma replicate` attacks by default, and why."""

    recipe: RecipeName
    output: Output
    why: str


CLOSEST = PaperSetting(
    recipe="paper",
    output="probabilities",
    why=(
        "the paper's LeNet trained as in the classic Theano tutorial (tanh, SGD), attacked "
        "on its softmax probabilities: of the settings measured, the one whose figures match "
        "the paper's (the authors' cleverhans builds the JSMA Jacobian from the "
        "probabilities too)"
    ),
)
