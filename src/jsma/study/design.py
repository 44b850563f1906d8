"""`jsma study create`: the stimuli of a human perception study, chosen from campaigns.

The paper's third question (Section V-C): do people still see the source digit
where the network sees the target? A study shows people benign originals and
successful adversarial samples of both directions and asks "Is this a numeric
digit?" and "Which digit is it?". `choose_stimuli` picks them, seeded and
balanced: adversarial samples are taken from the (source, target) class pairs in
turn and, within a pair, from its distortion buckets in turn; benign originals
from the source classes in turn (all in a seeded order), so that every class
pair and every distortion range is represented as evenly as the campaigns
allow. Every source image is used at most once across all
conditions, so no participant can see the same digit twice under two
conditions. `create_study` renders the images as PNG and stores the design in
SQLite beside them.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from matplotlib import image as mpimage
from torch import nn

from jsma._io import ensure_writable
from jsma.campaign import load_results, open_campaign
from jsma.data.dataset import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays, adversarial_samples
from jsma.models import predict

__all__ = [
    "ATTENTION_CHECKS",
    "DISTORTION_EDGES",
    "PRACTICE_TRIALS",
    "STUDY_DATABASE",
    "Condition",
    "Stimulus",
    "choose_stimuli",
    "create_study",
    "describe",
    "read_stimuli",
]

Condition = Literal["benign", "increasing", "decreasing", "attention", "practice"]

STUDY_DATABASE = "study.sqlite"
PRACTICE_TRIALS = 2
DISTORTION_EDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 14.5)  # percent of the pixels
# Instructed-response checks (Prolific's rules: they test attention to the
# question, not memory): the page says which answers to give.
ATTENTION_CHECKS = (
    ("For this image, answer No, then choose 7.", False, 7),
    ("For this image, answer Yes, then choose 2.", True, 2),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stimuli (
    id INTEGER PRIMARY KEY,
    condition TEXT NOT NULL,
    image TEXT NOT NULL,
    campaign TEXT,
    split TEXT,
    sample INTEGER,
    source INTEGER,
    target INTEGER,
    distortion REAL,
    prediction INTEGER,
    prompt TEXT,
    expected_is_digit INTEGER,
    expected_digit INTEGER
);
"""


@dataclass(frozen=True)
class Stimulus:
    """One image a participant judges, and everything known about it.

    For `benign` images `target` is None and `distortion` 0; `prediction` is the
    network's class for the image (the target, for a successful adversarial
    sample). `attention` checks carry a prompt and the answers it asks for;
    `practice` images (training-split originals) come before the trials and are
    not analysed.
    """

    id: int
    condition: Condition
    image: str  # file name in the study's images/ folder
    campaign: str | None = None
    split: str | None = None
    sample: int | None = None
    source: int | None = None
    target: int | None = None
    distortion: float | None = None
    prediction: int | None = None
    prompt: str | None = None
    expected_is_digit: bool | None = None
    expected_digit: int | None = None


@dataclass(frozen=True)
class _Candidate:
    campaign: int  # position in the campaigns given
    row: int  # row of that campaign's results


def _bucket(distortion: np.ndarray) -> np.ndarray:
    edges = np.asarray(DISTORTION_EDGES)
    return np.clip(np.searchsorted(edges, distortion, side="right") - 1, 0, len(edges) - 2)


def _interleave(groups: list[list[int]], rng: np.random.Generator) -> list[int]:
    """Every item of `groups`, one group after another in turn (groups in a seeded
    order, each group's items shuffled): any prefix spreads over the groups."""
    order = [list(rng.permutation(group)) for group in groups]
    rng.shuffle(order)
    result: list[int] = []
    while any(order):
        for group in order:
            if group:
                result.append(int(group.pop()))
    return result


def _take(
    groups: list[list[int]],
    count: int,
    rng: np.random.Generator,
    taken: set[tuple[str, int]],
    keys: list[tuple[str, int]],
) -> list[int]:
    """Up to `count` items, one from each group in turn (groups in a seeded order, each
    in its given order), skipping items whose source image (split, sample) is taken."""
    queues = [list(reversed(group)) for group in groups]
    rng.shuffle(queues)
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            while queue and len(chosen) < count:
                item = queue.pop()
                if keys[item] not in taken:
                    taken.add(keys[item])
                    chosen.append(item)
                    break
    return chosen


def choose_stimuli(
    campaigns: Sequence[CampaignArrays],
    directions: Sequence[str],
    *,
    per_condition: int,
    seed: int = 0,
) -> dict[str, list[_Candidate]]:
    """Pick `per_condition` benign originals and successful adversarial samples of each
    direction present, stratified and seeded (see the module's docstring).

    `campaigns[i]` holds the rows of a campaign whose direction is `directions[i]`.
    Benign originals are stratified by source class, adversarial samples by (source,
    target, distortion bucket). Fewer are returned where the campaigns hold fewer.
    """
    if per_condition < 1:
        raise ConfigurationError(f"per_condition must be positive, got {per_condition}")
    rng = np.random.default_rng(seed)
    taken: set[tuple[str, int]] = set()
    chosen: dict[str, list[_Candidate]] = {}
    # Adversarial conditions first (successes are the scarcer), then benign originals.
    for direction in ("increasing", "decreasing"):
        items: list[_Candidate] = []
        keys: list[tuple[str, int]] = []
        # (source, target) -> distortion bucket -> items
        strata: dict[tuple[int, int], dict[int, list[int]]] = {}
        for position, (arrays, kind) in enumerate(zip(campaigns, directions, strict=True)):
            if kind != direction:
                continue
            rows = np.flatnonzero(arrays.success & (arrays.target >= 0) & (arrays.iterations > 0))
            buckets = _bucket(arrays.distortion[rows])
            for row, bucket in zip(rows.tolist(), buckets.tolist(), strict=True):
                pair = (int(arrays.source[row]), int(arrays.target[row]))
                strata.setdefault(pair, {}).setdefault(bucket, []).append(len(items))
                items.append(_Candidate(position, row))
                keys.append((str(arrays.split[row]), int(arrays.index[row])))
        if items:
            # Class pairs in turn; within a pair, its distortion buckets in turn.
            pairs = [
                _interleave([buckets[b] for b in sorted(buckets)], rng)
                for _, buckets in sorted(strata.items())
            ]
            picked = _take(pairs, per_condition, rng, taken, keys)
            chosen[direction] = [items[i] for i in picked]
    items, keys = [], []
    sources: dict[int, list[int]] = {}
    for position, arrays in enumerate(campaigns):
        _, first = np.unique(
            np.char.add(arrays.split.astype(str), np.char.mod(":%d", arrays.index)),
            return_index=True,
        )
        for row in first.tolist():
            sources.setdefault(int(arrays.source[row]), []).append(len(items))
            items.append(_Candidate(position, row))
            keys.append((str(arrays.split[row]), int(arrays.index[row])))
    classes = [list(rng.permutation(sources[c])) for c in sorted(sources)]
    picked = _take(classes, per_condition, rng, taken, keys)
    chosen["benign"] = [items[i] for i in picked]
    return chosen


def _save_png(path: Path, image: np.ndarray, bounds: tuple[float, float]) -> None:
    """A (1, height, width) image as an 8-bit grayscale PNG at its own resolution (the
    page enlarges it with crisp pixels)."""
    mpimage.imsave(path, image[0], cmap="gray", vmin=bounds[0], vmax=bounds[1], format="png")


def _attention_image(shape: tuple[int, ...]) -> np.ndarray:
    """A checkerboard: plainly not a digit, so only the instructions decide the answers."""
    height, width = shape[-2:]
    rows, columns = np.indices((height, width))
    return (((rows // 4) + (columns // 4)) % 2).astype(np.float64)[None]


def create_study(
    campaigns: Sequence[Path],
    dataset: Dataset,
    directory: Path,
    *,
    per_condition: int,
    seed: int = 0,
    model: nn.Module | None = None,
    completion_url: str | None = None,
) -> list[Stimulus]:
    """Choose the stimuli of `campaigns`, render them into `directory`/images and store
    the design in `directory`/study.sqlite; return the stimuli.

    The campaigns must attack the same model on the same data. `model` (the
    campaigns' model) gives the network's prediction on the benign originals;
    without it that prediction is left empty. `completion_url` is where a
    participant goes after the last page (Prolific's completion link, say).
    """
    if not campaigns:
        raise ConfigurationError("a study needs at least one campaign")
    if (directory / STUDY_DATABASE).exists():
        raise JSMAError(f"{directory}: a study exists here already; choose another directory")
    manifests = [open_campaign(path) for path in campaigns]
    models = {m.model.fingerprint for m in manifests}
    data = {m.data.fingerprint for m in manifests}
    if len(models) > 1 or len(data) > 1:
        raise JSMAError("the campaigns of a study must attack the same model on the same data")
    arrays = [CampaignArrays.from_table(load_results(path)) for path in campaigns]
    directions = [m.spec.attack.direction for m in manifests]
    chosen = choose_stimuli(arrays, directions, per_condition=per_condition, seed=seed)
    ensure_writable(directory, directory / "images")

    stimuli: list[Stimulus] = []
    for condition in ("benign", "increasing", "decreasing"):
        picks = chosen.get(condition, [])
        if not picks:
            continue
        originals = np.stack([
            dataset.split(str(arrays[p.campaign].split[p.row])).tensors(
                np.array([arrays[p.campaign].index[p.row]])
            )[0][0].numpy()
            for p in picks
        ])  # fmt: skip
        if condition == "benign":
            images = originals.astype(np.float64)
            predictions: list[int | None] = [None] * len(picks)
            if model is not None:
                found = predict(model, torch.from_numpy(originals))
                predictions = [int(p) for p in found.tolist()]
        else:
            images = np.stack([
                adversarial_samples(arrays[p.campaign], originals[i : i + 1], np.array([p.row]))[0]
                for i, p in enumerate(picks)
            ])  # fmt: skip
            predictions = [int(arrays[p.campaign].target[p.row]) for p in picks]
        for i, pick in enumerate(picks):
            rows = arrays[pick.campaign]
            number = len(stimuli) + 1
            name = f"{number:05d}.png"
            _save_png(directory / "images" / name, images[i], dataset.bounds)
            adversarial = condition != "benign"
            stimuli.append(
                Stimulus(
                    id=number,
                    condition=condition,
                    image=name,
                    campaign=str(campaigns[pick.campaign]),
                    split=str(rows.split[pick.row]),
                    sample=int(rows.index[pick.row]),
                    source=int(rows.source[pick.row]),
                    target=int(rows.target[pick.row]) if adversarial else None,
                    distortion=float(rows.distortion[pick.row]) if adversarial else 0.0,
                    prediction=predictions[i],
                )
            )
    # Two practice images: training-split originals that no condition uses.
    taken = {(s.split, s.sample) for s in stimuli}
    rng = np.random.default_rng([seed, 1])
    practice = [
        int(i) for i in rng.permutation(len(dataset.train))[:100] if ("train", int(i)) not in taken
    ][:PRACTICE_TRIALS]
    images_, labels = dataset.train.tensors(np.array(practice))
    for image, label, sample in zip(images_.numpy(), labels.tolist(), practice, strict=True):
        number = len(stimuli) + 1
        name = f"{number:05d}.png"
        _save_png(directory / "images" / name, image, dataset.bounds)
        stimuli.append(
            Stimulus(number, "practice", name, split="train", sample=sample, source=int(label))
        )
    for prompt, is_digit, digit in ATTENTION_CHECKS:
        number = len(stimuli) + 1
        name = f"{number:05d}.png"
        _save_png(directory / "images" / name, _attention_image(dataset.input_shape), (0.0, 1.0))
        stimuli.append(
            Stimulus(number, "attention", name, prompt=prompt, expected_is_digit=is_digit,
                     expected_digit=digit)
        )  # fmt: skip
    _write_design(directory, stimuli, seed=seed, per_condition=per_condition,
                  completion_url=completion_url)  # fmt: skip
    return stimuli


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)  # explicit transactions
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _write_design(
    directory: Path,
    stimuli: Sequence[Stimulus],
    *,
    seed: int,
    per_condition: int,
    completion_url: str | None,
) -> None:
    connection = _connect(directory / STUDY_DATABASE)
    try:
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN")
        settings = {
            "format": "1",
            "seed": str(seed),
            "per_condition": str(per_condition),
            "completion_url": completion_url or "",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        connection.executemany("INSERT INTO study VALUES (?, ?)", sorted(settings.items()))
        columns = [name for name in asdict(stimuli[0])]
        placeholders = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT INTO stimuli ({', '.join(columns)}) VALUES ({placeholders})",
            [tuple(asdict(stimulus).values()) for stimulus in stimuli],
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def read_stimuli(directory: Path) -> list[Stimulus]:
    """The stimuli of the study in `directory`, in id order."""
    path = directory / STUDY_DATABASE
    if not path.is_file():
        raise JSMAError(f"{directory}: no study here (no {STUDY_DATABASE})")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM stimuli ORDER BY id").fetchall()
    except sqlite3.DatabaseError as error:
        raise JSMAError(f"{path}: not a study database ({error})") from None
    finally:
        connection.close()
    stimuli = []
    for row in rows:
        values = dict(row)
        for key in ("expected_is_digit",):
            if values[key] is not None:
                values[key] = bool(values[key])
        stimuli.append(Stimulus(**values))
    return stimuli


def describe(stimuli: Sequence[Stimulus]) -> dict[str, int]:
    """How many stimuli of each condition."""
    counts: dict[str, int] = {}
    for stimulus in stimuli:
        counts[stimulus.condition] = counts.get(stimulus.condition, 0) + 1
    return counts
