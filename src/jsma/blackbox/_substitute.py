"""The substitute attack of Papernot et al., "Practical Black-Box Attacks against Machine
Learning" (AsiaCCS 2017, arXiv 1602.02697): train a local substitute on inputs labelled
by the oracle, grown by Jacobian-based dataset augmentation (its Algorithm 1), then craft
on the substitute and transfer.

Each substitute epoch rho: the oracle labels the set S_rho (only inputs it has not
answered are sent: the query ledger), the substitute is trained on it, its accuracy on
held-out data is measured, and S_rho grows by `x + lambda_rho * sign(dF_O(x)/dx)` for
each x (the substitute's forward derivative for the class the oracle gave, jsma's own
`target_derivatives`). The step's sign flips every `flip_every` epochs (the paper's
periodic step size, lambda_rho = lambda * (-1)^floor(rho / tau)); after `full_epochs`
epochs, reservoir sampling (Papernot et al., "Transferability in Machine Learning",
arXiv 1605.07277) augments only `reservoir` points a round (kappa; a uniform draw, what
reservoir sampling gives over a stream), so queries grow by kappa a round instead of
doubling. cleverhans 3.1's `mnist_blackbox.py` tutorial is one reading of the defaults
(labels only, no reservoir); this one follows the papers.

The run is resumable: after every epoch the substitute, the set and the record are
written (atomically), and a resumed run asks the oracle nothing it has answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from jsma._io import atomic_write
from jsma._records import read_record, write_record
from jsma.attacks import target_derivatives
from jsma.blackbox._ledger import QUERY_LOG, QueryLedger
from jsma.blackbox._oracles import Oracle
from jsma.data import Dataset
from jsma.errors import ConfigurationError, OracleError
from jsma.models import CheckpointInfo, ModelRef, ModelSpec, load_checkpoint, save_checkpoint
from jsma.models._registry import ARCHITECTURES
from jsma.settings import Output

__all__ = ["SubstituteEpoch", "SubstituteRecord", "SubstituteSettings", "train_substitute"]

logger = logging.getLogger(__name__)

RECORD = "substitute.json"
CHECKPOINT = "substitute.safetensors"
POINTS = "points.npy"


@dataclass(frozen=True)
class SubstituteSettings:
    """How the substitute is trained (defaults: the paper's MNIST setting, Section 5).

    `initial`: |S0|, the first samples of the test split (held out from every
    evaluation); `epochs`: substitute epochs (rounds of labelling and training); `step`:
    lambda; `flip_every`: tau (None: never flip); `reservoir`: kappa, the points
    augmented a round after `full_epochs` rounds (None: every point, always);
    `training_epochs`, `learning_rate`, `momentum`, `batch_size`: each round's SGD;
    `architecture`: the substitute's: a jsma architecture (`lenet`, the paper's, by
    default; `mlp`) or a builder `package.module:callable(key=value, ...)` (your code,
    run only when named in the call: a stored run's record never builds it); `output`:
    which of its outputs' derivative steers the augmentation; `query_budget`: the most
    inputs ever sent to the oracle (None: no limit).
    """

    initial: int = 150
    epochs: int = 6
    step: float = 0.1
    flip_every: int | None = 3
    reservoir: int | None = None
    full_epochs: int = 3
    training_epochs: int = 10
    learning_rate: float = 0.01
    momentum: float = 0.9
    batch_size: int = 32
    architecture: str = "lenet"
    output: Output = "probabilities"
    query_budget: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {
            "initial": self.initial, "epochs": self.epochs, "training_epochs": self.training_epochs,
            "batch_size": self.batch_size,
        }  # fmt: skip
        for name, value in positive.items():
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {value}")
        if not self.step > 0 or not self.learning_rate > 0:
            raise ConfigurationError("the step (lambda) and the learning rate must be positive")
        if self.flip_every is not None and self.flip_every < 1:
            raise ConfigurationError(f"flip_every (tau) is at least 1, got {self.flip_every}")
        if self.reservoir is not None and self.reservoir < 1:
            raise ConfigurationError(f"reservoir (kappa) is at least 1, got {self.reservoir}")

    def step_at(self, epoch: int) -> float:
        """lambda_rho: the step of round `epoch`, its sign flipped every tau rounds."""
        if self.flip_every is None:
            return self.step
        return self.step * (-1) ** (epoch // self.flip_every)


@dataclass(frozen=True)
class SubstituteEpoch:
    """One round: the points trained on, the inputs sent to the oracle so far (resumes
    included), the answers lost to a kill, the substitute's accuracy on held-out data
    (true labels) and how often it agrees with the oracle's labels on its training set."""

    epoch: int
    points: int
    queries: int
    lost: int
    accuracy: float
    training_agreement: float
    seconds: float


@dataclass(frozen=True)
class SubstituteRecord:
    """A substitute run: which oracle (its reference, never a secret), which data, the
    settings, the held-out test samples [start, stop) it was measured on, and a
    `SubstituteEpoch` per finished round."""

    KIND: ClassVar[str] = "blackbox-substitute"
    FORMAT: ClassVar[int] = 1

    oracle: str
    oracle_identity: str
    data: str
    settings: SubstituteSettings
    held_out: tuple[int, int]
    epochs: tuple[SubstituteEpoch, ...] = ()

    @property
    def finished(self) -> bool:
        return len(self.epochs) >= self.settings.epochs


def uses_builder(settings: SubstituteSettings) -> bool:
    """Whether the substitute comes from a builder of the user's (not a jsma architecture)."""
    return settings.architecture not in ARCHITECTURES


def _fresh(settings: SubstituteSettings, data: Dataset) -> nn.Module:
    """The untrained substitute: a jsma architecture for the data, or the builder's."""
    torch.manual_seed(settings.seed)
    if not uses_builder(settings):
        return _spec(settings, data).build().eval()
    reference = ModelRef.parse(settings.architecture)
    if reference.form != "builder":
        raise ConfigurationError(
            f"the substitute's architecture is {', '.join(ARCHITECTURES)} or a builder "
            f"package.module:callable(...), not {settings.architecture!r}"
        )
    return reference.load(data=data).model.train(False)


def _spec(settings: SubstituteSettings, data: Dataset) -> ModelSpec:
    arguments = {"input_shape": data.input_shape, "num_classes": data.num_classes}
    return ModelSpec(settings.architecture, arguments)


def load_substitute(out: Path, settings: SubstituteSettings, data: Dataset) -> nn.Module:
    """The substitute kept in `out`: a jsma checkpoint, or a builder's module (built
    from `settings`, which the caller gives: never from the record) with the weights."""
    if not uses_builder(settings):
        loaded = load_checkpoint(out / CHECKPOINT)
        if loaded.info.spec != _spec(settings, data):
            raise OracleError(f"{out / CHECKPOINT}: not this run's substitute")
        return loaded.model.eval()
    model = _fresh(settings, data)
    try:
        weights = safetensors.torch.load_file(str(out / CHECKPOINT))
        model.load_state_dict(weights)
    except (OSError, RuntimeError, safetensors.SafetensorError) as error:
        raise OracleError(f"{out / CHECKPOINT}: not this builder's weights ({error})") from None
    return model.eval()


def _fit(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, settings: SubstituteSettings,
    epoch: int,
) -> None:  # fmt: skip
    """SGD with momentum on cross-entropy, continuing from the current weights, seeded
    by the round so that a resumed run trains exactly as an uninterrupted one."""
    generator = torch.Generator().manual_seed(settings.seed * 1000 + epoch)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.learning_rate, momentum=settings.momentum
    )
    model.train()
    for _ in range(settings.training_epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), settings.batch_size):
            chosen = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(inputs[chosen]), labels[chosen]).backward()
            optimizer.step()
    model.eval()


def _accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        predictions = torch.cat([model(inputs[s : s + 1024]).argmax(1) for s in
                                 range(0, len(inputs), 1024)])  # fmt: skip
    return float((predictions == labels).float().mean()) if len(labels) else float("nan")


def _augmented(
    model: nn.Module, points: np.ndarray, labels: np.ndarray, settings: SubstituteSettings,
    epoch: int, bounds: tuple[float, float],
) -> np.ndarray:  # fmt: skip
    """The new points of round `epoch`: x + lambda_rho * sign(dF_O(x)/dx), clipped to the
    bounds, for every point or (after `full_epochs` rounds, with a reservoir) kappa of
    them drawn uniformly."""
    chosen = np.arange(len(points))
    if settings.reservoir is not None and epoch >= settings.full_epochs:
        rng = np.random.default_rng([settings.seed, epoch])
        chosen = np.sort(rng.choice(len(points), min(settings.reservoir, len(points)), False))
    x = torch.from_numpy(points[chosen])
    derivative = target_derivatives(
        model, x, torch.from_numpy(labels[chosen]), output=settings.output
    ).alpha
    moved = x + settings.step_at(epoch) * torch.sign(derivative)
    return moved.clamp(*bounds).numpy().astype(np.float32)


def train_substitute(
    oracle: Oracle,
    data: Dataset,
    out: str | Path,
    settings: SubstituteSettings | None = None,
    *,
    oracle_reference: str | None = None,
    on_epoch: Callable[[SubstituteEpoch], None] | None = None,
) -> SubstituteRecord:
    """Train a substitute of `oracle` by Jacobian-based dataset augmentation (Papernot et
    al. 2017, Algorithm 1) and keep it, its query log and its record in `out`.

    S0 is the first `settings.initial` samples of `data`'s test split (their labels
    unused: the oracle gives them); the rest of the test split is held out to measure
    the substitute. A run already in `out` resumes from its last finished round (with
    the same settings, more `epochs` allowed); nothing the oracle answered is asked
    again. Returns the record (also in `out/substitute.json`).

    Example:
        >>> oracle = OracleRef.parse("paper").open()  # doctest: +SKIP
        >>> record = train_substitute(oracle, load_mnist(), "runs/substitute")  # doctest: +SKIP
        >>> [round.accuracy for round in record.epochs]  # doctest: +SKIP
    """
    settings = settings or SubstituteSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    test = data.test
    if len(test) <= settings.initial:
        raise ConfigurationError(
            f"the test split has {len(test)} samples: {settings.initial} for S0 leave none "
            "held out to measure the substitute"
        )
    record = SubstituteRecord(
        oracle=oracle_reference or oracle.identity, oracle_identity=oracle.identity,
        data=data.location or data.source, settings=settings,
        held_out=(settings.initial, len(test)),
    )  # fmt: skip
    model = _fresh(settings, data)
    points = test.tensors(np.arange(settings.initial))[0].numpy()
    if (out / RECORD).exists():
        record, model, points = _resumed(out, record, data)
    held_inputs, held_labels = test.tensors(np.arange(settings.initial, len(test)))
    with QueryLedger(oracle, out / QUERY_LOG, budget=settings.query_budget) as ledger:
        for epoch in range(len(record.epochs), settings.epochs):
            started = time.perf_counter()
            if epoch:  # S_epoch = S_(epoch-1) and its augmentation with lambda_(epoch-1)
                known = ledger.answer(points)  # all in the log: nothing is sent
                points = points[known.answered]
                grown = _augmented(model, points, known.labels[known.answered], settings,
                                   epoch - 1, data.bounds)  # fmt: skip
                points = np.concatenate([points, grown])
            points = _within_budget(points, ledger)
            answer = ledger.answer(points)
            kept = answer.answered
            if not kept.any():
                raise OracleError(
                    f"none of the {len(points)} points has an answer ({ledger.lost} lost to an "
                    "interrupted run): nothing to train the substitute on"
                )
            inputs = torch.from_numpy(points[kept])
            labels_t = torch.from_numpy(answer.labels[kept])
            _fit(model, inputs, labels_t, settings, epoch)
            result = SubstituteEpoch(
                epoch=epoch, points=int(kept.sum()), queries=ledger.spent, lost=ledger.lost,
                accuracy=_accuracy(model, held_inputs, held_labels),
                training_agreement=_accuracy(model, inputs, labels_t),
                seconds=time.perf_counter() - started,
            )  # fmt: skip
            record = replace(record, epochs=(*record.epochs, result))
            _keep(out, record, model, data, points)
            logger.debug(
                "substitute epoch %d/%d: %d points, %d queries, held-out accuracy %.2f%%",
                epoch + 1, settings.epochs, result.points, result.queries, 100 * result.accuracy,
            )  # fmt: skip
            if on_epoch is not None:
                on_epoch(result)
    return record


def _within_budget(points: np.ndarray, ledger: QueryLedger) -> np.ndarray:
    """The set, its newest points cut so that labelling it stays within the budget."""
    remaining = ledger.remaining
    if remaining is None:
        return points
    unasked = ledger.unasked(points)
    if unasked <= remaining:
        return points
    answered = len(points) - unasked
    logger.warning(
        "the query budget allows %d of the %d new points; the rest are dropped",
        remaining, unasked,
    )  # fmt: skip
    return points[: answered + remaining]


def _keep(
    out: Path, record: SubstituteRecord, model: nn.Module, data: Dataset, points: np.ndarray
) -> None:
    """The round's state, each file atomic; the record last, so that it never names a
    round whose substitute and set are not on disk. A jsma architecture is kept as a jsma
    checkpoint; a builder's module as its weights alone (safetensors)."""
    if uses_builder(record.settings):
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with atomic_write(out / CHECKPOINT) as handle:
            handle.write(safetensors.torch.save(tensors))
    else:
        info = CheckpointInfo(spec=_spec(record.settings, data),
                              recipe={"substitute": asdict(record.settings)},
                              data={"location": record.data})  # fmt: skip
        save_checkpoint(out / CHECKPOINT, model, info)
    with atomic_write(out / POINTS) as handle:
        np.save(handle, points, allow_pickle=False)
    write_record(out / RECORD, record)


def _resumed(
    out: Path, fresh: SubstituteRecord, data: Dataset
) -> tuple[SubstituteRecord, nn.Module, np.ndarray]:
    stored = read_record(SubstituteRecord, out / RECORD, missing="no substitute run here")
    same = replace(stored.settings, epochs=fresh.settings.epochs) == fresh.settings
    if not same or stored.oracle_identity != fresh.oracle_identity or stored.data != fresh.data:
        raise OracleError(
            f"{out}: a substitute run of other settings, oracle or data is there; give "
            "another output directory (only --epochs may change to go on)"
        )
    model = load_substitute(out, fresh.settings, data)
    points = np.load(out / POINTS, allow_pickle=False)
    if points.dtype != np.float32 or points.shape[1:] != tuple(data.input_shape):
        raise OracleError(f"{out / POINTS}: not this run's set of points")
    logger.info("resuming the substitute run in %s after epoch %d", out, len(stored.epochs))
    return replace(stored, settings=fresh.settings), model, points
