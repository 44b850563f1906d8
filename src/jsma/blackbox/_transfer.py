"""Craft on the substitute, measure on the oracle: the second half of the substitute
attack (Papernot et al. 2017, Sections 4.3 and 5).

FGSM (Goodfellow et al. 2015, the paper's main attack: `x + epsilon * sign(dL/dx)` of
the substitute's cross-entropy at the sample's label) or JSMA and its family (a
campaign on the existing engine, against the substitute's checkpoint: resumable, either
engine, readable by the report) craft adversarial samples from held-out test samples
(never those of S0); the oracle labels each sample and its original through the query
ledger (budgeted, logged, never asked twice: a resumed run recomputes what it crafted
and asks nothing again). The transfer rate is the share the oracle misclassifies.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jsma._records import read_record, write_record
from jsma.blackbox._ledger import QUERY_LOG, QueryLedger
from jsma.blackbox._oracles import Oracle, OracleAnswer
from jsma.blackbox._substitute import RECORD, SubstituteRecord, load_substitute, uses_builder
from jsma.campaign import AttackSettings, Campaign, CampaignSpec, FeatureMask
from jsma.campaign._samples import rebuilt_samples
from jsma.data import Dataset
from jsma.errors import ConfigurationError, OracleError
from jsma.settings import TargetRule

__all__ = ["TransferAttack", "TransferOutcome", "attack_through_substitute"]

AttackName = Literal["fgsm", "jsma"]


@dataclass(frozen=True)
class TransferAttack:
    """What is crafted on the substitute: `attack` (`fgsm` with `epsilon`, or `jsma` with
    its `settings` and target rule `targets`) on `samples` held-out test samples; `mask`:
    the features either may change (None: all)."""

    attack: AttackName = "fgsm"
    samples: int = 1000
    epsilon: float = 0.3
    targets: TargetRule = "random"
    settings: AttackSettings = field(default_factory=AttackSettings)
    mask: FeatureMask | None = None

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ConfigurationError(f"samples must be at least 1, got {self.samples}")
        if self.attack == "fgsm" and not self.epsilon > 0:
            raise ConfigurationError(f"FGSM's epsilon must be positive, got {self.epsilon}")

    @property
    def name(self) -> str:
        """A short name, also the folder of a JSMA campaign: `fgsm-0.3`, `jsma-random`."""
        masked = "" if self.mask is None else f"-mask{_short_digest(self.mask)}"
        if self.attack == "fgsm":
            return f"fgsm-{self.epsilon:g}{masked}"
        theta = "" if self.settings.theta == 1 else f"-theta{self.settings.theta:g}"
        return f"jsma-{self.targets}{theta}-{self.settings.variant}{masked}"


def _short_digest(mask: FeatureMask) -> str:
    return hashlib.sha256(f"{mask.shape}{mask.bits}".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class TransferOutcome:
    """How the substitute's samples fared on the oracle.

    Over the `samples` attacked: `substitute_success` (the substitute misclassifies the
    sample, or puts it in the target), `oracle_accuracy` (the oracle right on the
    originals, true labels), `misclassified` (the oracle wrong on the adversarial
    samples: the paper's transfer rate), `misclassified_of_correct` (the same among
    originals the oracle had right), `in_target` (targeted: the oracle gives the
    target), `distortion` (median percent of features changed), `queries` (new inputs
    this measurement sent to the oracle), `unanswered` (answers lost to a kill)."""

    KIND: ClassVar[str] = "blackbox-attack"
    FORMAT: ClassVar[int] = 1

    attack: TransferAttack
    oracle: str
    substitute_rounds: int
    substitute_queries: int
    held_out: tuple[int, int]
    substitute_success: float
    oracle_accuracy: float
    misclassified: float
    misclassified_of_correct: float
    in_target: float | None
    distortion: float
    queries: int
    unanswered: int
    seconds: float


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilon: float,
         bounds: tuple[float, float], *, mask: torch.Tensor | None = None,
         rows: int = 512) -> torch.Tensor:  # fmt: skip
    """`x + epsilon * sign(d cross-entropy / dx)` at `labels`, clipped to `bounds`
    (Goodfellow et al. 2015), only where `mask` is True (None: everywhere), `rows`
    samples at a time."""
    parts = []
    model.eval()
    for start in range(0, len(x), rows):
        chunk = x[start : start + rows].clone().requires_grad_(True)
        loss = F.cross_entropy(model(chunk), labels[start : start + rows], reduction="sum")
        (gradient,) = torch.autograd.grad(loss, chunk)
        step = gradient.sign() if mask is None else gradient.sign() * mask
        parts.append((chunk + epsilon * step).clamp(*bounds).detach())
    return torch.cat(parts) if parts else x.clone()


def _crafted(
    attack: TransferAttack, substitute: nn.Module, data: Dataset, out: Path, start: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Adversarial samples, originals, true labels, targets (-1 untargeted) and whether
    each fooled the substitute, for test samples [start, start + samples)."""
    stop = min(start + attack.samples, len(data.test))
    if attack.attack == "fgsm":
        originals, labels = data.test.tensors(np.arange(start, stop))
        mask = None if attack.mask is None else attack.mask.tensor().expand(data.input_shape)
        adversarial = fgsm(substitute, originals, labels, attack.epsilon, data.bounds, mask=mask)
        with torch.no_grad():
            fooled = substitute(adversarial).argmax(1) != labels
        targets = np.full(len(labels), -1)
        return (adversarial.numpy(), originals.numpy(), labels.numpy(), targets,
                fooled.numpy())  # fmt: skip
    # JSMA: a campaign on the first `stop` test samples (the engine attacks from the
    # first); those of S0 are left out of every measure below.
    spec = CampaignSpec(
        samples=stop, targets=attack.targets, attack=attack.settings, mask=attack.mask
    )
    Campaign.run(out / "attacks" / attack.name, spec, substitute, data, progress=progress)
    arrays = Campaign.open(out / "attacks" / attack.name).arrays()
    rows = np.flatnonzero(arrays.index >= start)
    crafted, attacked = rebuilt_samples(arrays, rows, data)
    return crafted, attacked, arrays.source[rows], arrays.target[rows], arrays.success[rows]


def attack_through_substitute(
    oracle: Oracle,
    data: Dataset,
    out: str | Path,
    attack: TransferAttack | None = None,
    *,
    query_budget: int | None = None,
    substitute: str | None = None,
    progress: bool = False,
) -> TransferOutcome:
    """Craft `attack` on the substitute trained in `out` (by `train_substitute`) and
    measure its samples on `oracle` (the one it was trained on), through the run's query
    log; the outcome is also written to `out/attacks/<name>.json`. A substitute built by
    a builder of yours is built again only from `substitute` (the same builder, named
    in this call), never from the run's record.

    Example:
        >>> chosen = TransferAttack("fgsm", epsilon=0.3)
        >>> outcome = attack_through_substitute(oracle, mnist, "out", chosen)  # doctest: +SKIP
        >>> outcome.misclassified  # doctest: +SKIP
    """
    attack = attack or TransferAttack()
    out = Path(out)
    trained = read_record(
        SubstituteRecord, out / RECORD, missing="no substitute here: run train_substitute first"
    )
    if not trained.epochs:
        raise OracleError(f"{out}: the substitute has not finished a round yet")
    if trained.oracle_identity != oracle.identity:
        raise OracleError(
            f"{out}: the substitute was trained on {trained.oracle_identity}, not on "
            f"{oracle.identity}"
        )
    settings = trained.settings
    if uses_builder(settings) and substitute != settings.architecture:
        raise OracleError(
            f"{out}: the substitute comes from the builder {settings.architecture}; "
            "name it again (--substitute) to build it: a stored record never runs code"
        )
    model = load_substitute(out, settings, data)
    started = time.perf_counter()
    start = trained.held_out[0]
    adversarial, originals, labels, targets, fooled = _crafted(
        attack, model, data, out, start, progress
    )
    with QueryLedger(oracle, out / QUERY_LOG, budget=query_budget) as ledger:
        spent = ledger.spent
        clean = ledger.answer(originals)
        crafted = ledger.answer(adversarial)
        queries = ledger.spent - spent
    outcome = _outcome(attack, trained, clean, crafted, labels, targets, fooled, adversarial,
                       originals, queries, time.perf_counter() - started)  # fmt: skip
    write_record(out / "attacks" / f"{attack.name}.json", outcome)
    return outcome


def _outcome(
    attack: TransferAttack, trained: SubstituteRecord, clean: OracleAnswer,
    crafted: OracleAnswer, labels: np.ndarray, targets: np.ndarray, fooled: np.ndarray,
    adversarial: np.ndarray, originals: np.ndarray, queries: int, seconds: float,
) -> TransferOutcome:  # fmt: skip
    both = clean.answered & crafted.answered
    right = both & (clean.labels == labels)
    wrong = both & (crafted.labels != labels)
    targeted = targets >= 0
    changed = (adversarial != originals).reshape(len(labels), -1).mean(axis=1) * 100

    def share(hits: np.ndarray, among: np.ndarray) -> float:
        return float(hits[among].mean()) if among.any() else float("nan")

    return TransferOutcome(
        attack=attack, oracle=trained.oracle, substitute_rounds=len(trained.epochs),
        substitute_queries=trained.epochs[-1].queries,
        held_out=(trained.held_out[0], trained.held_out[0] + len(labels)),
        substitute_success=float(fooled.mean()) if len(fooled) else float("nan"),
        oracle_accuracy=share(clean.labels == labels, clean.answered),
        misclassified=share(wrong, both), misclassified_of_correct=share(wrong, right),
        in_target=share(crafted.labels == targets, both & targeted) if targeted.any() else None,
        distortion=float(np.median(changed)) if len(changed) else float("nan"),
        queries=queries, unanswered=int((~both).sum()), seconds=seconds,
    )  # fmt: skip
