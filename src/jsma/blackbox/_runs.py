"""What a black-box run directory holds, read back (for the report and `jsma report`):
the substitute's record, the attacks measured through it, and Sparse-RS runs with their
per-sample queries; and the figure of them all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from jsma._records import read_record
from jsma.blackbox._sparse_rs import SparseRsOutcome
from jsma.blackbox._substitute import RECORD, SubstituteRecord
from jsma.blackbox._transfer import TransferOutcome

__all__ = ["BlackboxRun", "blackbox_figure", "read_blackbox_run"]


@dataclass(frozen=True)
class BlackboxRun:
    """A black-box directory: its substitute (if one was trained there), the attacks
    crafted on it, and its Sparse-RS runs, each with its samples' queries and success."""

    directory: Path
    substitute: SubstituteRecord | None
    attacks: tuple[TransferOutcome, ...]
    sparse_rs: tuple[SparseRsOutcome, ...]
    sparse_rs_queries: tuple[np.ndarray, ...]  # per run: queries of fooled samples, sorted

    @property
    def name(self) -> str:
        return self.directory.name


def is_blackbox_run(directory: Path) -> bool:
    """Whether `directory` holds a substitute run or a Sparse-RS run."""
    return (directory / RECORD).is_file() or any(directory.glob("sparse-rs-k*.json"))


def read_blackbox_run(directory: str | Path) -> BlackboxRun:
    """Everything `jsma blackbox` stored in `directory` (records are read as data)."""
    directory = Path(directory)
    substitute = None
    if (directory / RECORD).is_file():
        substitute = read_record(SubstituteRecord, directory / RECORD, missing="")
    attacks = tuple(
        read_record(TransferOutcome, path, missing="")
        for path in sorted((directory / "attacks").glob("*.json"))
    )
    runs, queries = [], []
    for path in sorted(directory.glob("sparse-rs-k*.json")):
        outcome = read_record(SparseRsOutcome, path, missing="")
        runs.append(outcome)
        samples = directory / Path(outcome.samples).name
        took = np.zeros(0, dtype=np.int64)
        if samples.is_file():
            with np.load(samples, allow_pickle=False) as stored:
                took = np.sort(stored["queries"][stored["success"]])
        queries.append(took)
    return BlackboxRun(directory, substitute, attacks, tuple(runs), tuple(queries))


def blackbox_figure(runs: list[BlackboxRun]) -> Figure:
    """Three panels: each substitute's held-out accuracy against the queries it cost;
    FGSM's transfer rate against epsilon, per substitute; and Sparse-RS's success
    against the queries spent a sample (the share of the attacked samples fooled within
    q queries), per run."""
    figure = Figure(figsize=(13, 4), layout="constrained")
    accuracy, transfer, search = figure.subplots(1, 3)
    for run in runs:
        if run.substitute is not None and run.substitute.epochs:
            rounds = run.substitute.epochs
            accuracy.plot([r.queries for r in rounds], [100 * r.accuracy for r in rounds],
                          marker="o", label=run.name)  # fmt: skip
        fgsm = sorted((a for a in run.attacks if a.attack.attack == "fgsm"),
                      key=lambda a: a.attack.epsilon)  # fmt: skip
        if fgsm:
            transfer.plot([a.attack.epsilon for a in fgsm], [100 * a.misclassified for a in fgsm],
                          marker="o", label=run.name)  # fmt: skip
        for outcome, took in zip(run.sparse_rs, run.sparse_rs_queries, strict=True):
            if outcome.attacked and len(took):
                budget = outcome.settings.queries_per_sample
                steps = np.unique(np.concatenate([[1], took, [budget]]))
                fooled = np.searchsorted(took, steps, side="right") / outcome.attacked * 100
                kind = "targeted" if outcome.targeted else "untargeted"
                unit = " features" if outcome.settings.features else ""
                label = f"{run.name}: k={outcome.settings.pixels}{unit}, {kind}"
                search.step(steps, fooled, where="post", label=label)
    accuracy.set_xscale("log")
    accuracy.set_xlabel("queries to the oracle")
    accuracy.set_ylabel("substitute's held-out accuracy (%)")
    accuracy.set_title("substitute training (Papernot et al. 2017)")
    transfer.set_xlabel("FGSM epsilon")
    transfer.set_ylabel("oracle misclassifies (%)")
    transfer.set_title("crafted on the substitute, measured on the oracle")
    search.set_xscale("log")
    search.set_xlabel("queries a sample")
    search.set_ylabel("attacked samples fooled (%)")
    search.set_title("Sparse-RS (Croce et al. 2022)")
    for axes in (accuracy, search):  # plain numbers: the report turns mathtext off
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
    for axes in (accuracy, transfer, search):
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7)
    return figure
