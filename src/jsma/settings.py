"""The names and defaults every layer shares, defined once.

Light on purpose (it imports nothing but `typing`): the command line builds
its choices and help from it before any command imports torch. `__all__` lists
the types and defaults a user writes; the tuples of choices (`VARIANTS`, ...) and the
limits (`MAX_DATA_BYTES`, ...) are for jsma's own modules.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

__all__ = [
    "DEFAULT_THETA",
    "DISTORTION_BUCKETS",
    "PAPER_MAX_DISTORTION",
    "Direction",
    "L0Count",
    "Output",
    "RecipeName",
    "Saliency",
    "SampleOrder",
    "SearchDomain",
    "SplitName",
    "TargetRule",
    "Variant",
    "direction_of",
]

Output = Literal["logits", "probabilities"]
"""What the attack differentiates: the logits Z, or the softmax F (the paper's Section III)."""

Variant = Literal["pairs", "single", "maximal"]
"""Features changed per step: two (Algorithm 3, the paper's choice for DNNs) or one; or
`maximal`, M-JSMA (Wiyatno and Xu 2018): untargeted, a pair per step chosen over every
class and both directions, each feature changed at most once."""

Saliency = Literal["jsma", "wjsma", "tjsma"]
"""How the derivatives are scored (Combey et al. 2020 for the last two): `jsma`, the paper's
alpha = dF_t/dx_i and beta = sum over j != t of dF_j/dx_i; `wjsma`, each other class's
derivative in beta weighted by its probability; `tjsma`, in addition both terms weighted by
the feature's room to move in the direction of theta."""

SearchDomain = Literal["unsaturated", "all"]
"""Where the search starts: the features not yet at their bound in the direction of theta
(cleverhans and jsma's default), or every feature (the paper's Algorithm 2 literally: a
feature already at its bound can be picked, stays as it is, leaves the domain and still
costs its iteration)."""

Direction = Literal["increasing", "decreasing", "both"]
"""Which way an attack moves features: raised (the saliency map S+, theta > 0), lowered
(S-, theta < 0), or both (M-JSMA, `variant="maximal"`, which picks a way per step)."""

TargetRule = Literal["all-others", "random", "least-likely", "untargeted"]
"""How a campaign picks the targets of a sample."""

SampleOrder = Literal["first", "stratified"]
"""Which samples `samples=N` takes from a split: its first N, or the classes in turn,
each class's samples in a seeded order (so N samples span the classes even when the
data is stored class by class, as image folders are)."""

SplitName = Literal["train", "validation", "test"]

L0Count = Literal["features", "pixels"]
"""What the distortion counts: changed features (elements, C x H x W per image, as the
paper), or changed pixels (H x W, a pixel counted once across its channels)."""

RecipeName = Literal["paper", "default"]
"""The training recipes jsma defines (`jsma.models.Recipe`, by name)."""

OUTPUTS: tuple[Output, ...] = get_args(Output)
L0_COUNTS: tuple[L0Count, ...] = get_args(L0Count)
VARIANTS: tuple[Variant, ...] = get_args(Variant)
SALIENCIES: tuple[Saliency, ...] = get_args(Saliency)
SEARCH_DOMAINS: tuple[SearchDomain, ...] = get_args(SearchDomain)
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
TARGET_RULES: tuple[TargetRule, ...] = get_args(TargetRule)
SAMPLE_ORDERS: tuple[SampleOrder, ...] = get_args(SampleOrder)
SPLIT_NAMES: tuple[SplitName, ...] = get_args(SplitName)
RECIPE_NAMES: tuple[RecipeName, ...] = get_args(RecipeName)

PAPER_MAX_DISTORTION = 0.145
"""Upsilon, the paper's budget: 14.5% of the input features (Section V)."""

DISTORTION_BUCKETS: tuple[float, ...] = (
    *(float(low) for low in range(0, round(PAPER_MAX_DISTORTION * 100), 2)),
    round(PAPER_MAX_DISTORTION * 100, 6),
)
"""Edges, in percent of the features changed, of the distortion buckets that detection,
transfer and the study report by: 2 points wide, up to the paper's budget (0, 2, ...,
12, 14.5). See `jsma.metrics.distortion_bucket`."""

DEFAULT_THETA = 1.0
"""The paper's change per step: a feature goes straight to its bound."""

DEFAULT_UNIT_SIZE = 100
"""Samples per campaign work unit: one batch, one file."""

MATRIX_CLASSES = 20
"""The most classes whose (source, target) matrices and sample grid the report draws;
beyond, a matrix of numbers is unreadable, and it gives per-class and pair tables."""


def direction_of(theta: float, variant: Variant = "pairs") -> Direction:
    """The direction an attack moves features in: increasing for theta above 0,
    decreasing below, both for M-JSMA (whose theta is a magnitude)."""
    if variant == "maximal":
        return "both"
    return "increasing" if theta > 0 else "decreasing"


# Limits on what a data file may declare, checked before anything is allocated (a small
# file can declare gigabytes): each error names its limit and how to raise it.
MAX_DATA_BYTES = int(os.environ.get("JSMA_MAX_DATA_BYTES", 8 << 30))
"""The most bytes a data file's arrays, or a folder's decoded images, may take (8 GiB;
`JSMA_MAX_DATA_BYTES` changes it)."""
MAX_IMAGE_PIXELS = int(os.environ.get("JSMA_MAX_IMAGE_PIXELS", 1 << 26))
"""The most pixels one image may have (8192 x 8192; `JSMA_MAX_IMAGE_PIXELS`)."""
MAX_CLASSES = 100_000
"""The most classes a data set may have (its largest label + 1, without class names)."""
