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
SQLite beside them (`jsma.study._database`, whose names are also this module's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch
from matplotlib import image as mpimage
from torch import nn

from jsma._io import ensure_writable
from jsma.campaign import Campaign
from jsma.campaign._samples import rebuilt_samples
from jsma.data._dataset import Dataset
from jsma.errors import ConfigurationError, JSMAError
from jsma.metrics import CampaignArrays
from jsma.metrics._core import distortion_bucket
from jsma.models import predict
from jsma.study._database import (
    DISTORTION_EDGES,
    ConsentText,
    Stimulus,
    read_consent,
    read_stimuli,
    restrict_to_owner,
    update_consent,
    write_design,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ConsentText",
    "Stimulus",
    "create_study",
    "read_consent",
    "read_stimuli",
    "update_consent",
]

PRACTICE_TRIALS = 2
# Instructed-response checks (Prolific's rules: they test attention to the
# question, not memory): the page says which answers to give, within the
# instructions' rules (a digit is chosen only after Yes).
AttentionCheck = tuple[str, bool, int | None]  # the prompt, the answers it asks for


def attention_checks(
    num_classes: int, class_names: Sequence[str] | None = None
) -> tuple[AttentionCheck, ...]:
    """The study's attention checks: a No, and a Yes with a class the study offers (2,
    or 1 in a two-class study), named as its pages name the classes."""
    chosen = 2 if num_classes > 2 else 1
    word = "digit" if class_names is None else "class"
    shown = str(chosen) if class_names is None else class_names[chosen]
    return (
        (f"For this image, answer No (and choose no {word}).", False, None),
        (f"For this image, answer Yes, then choose {shown}.", True, chosen),
    )


ATTENTION_CHECKS: tuple[AttentionCheck, ...] = attention_checks(10)  # MNIST's


@dataclass(frozen=True)
class _Candidate:
    campaign: int  # position in the campaigns given
    row: int  # row of that campaign's results


def _bucket(distortion: np.ndarray) -> np.ndarray:
    return distortion_bucket(distortion, DISTORTION_EDGES)  # -1: beyond, a bucket of its own


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


def _picked_images(
    picks: Sequence[_Candidate], arrays: Sequence[CampaignArrays], dataset: Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """The adversarial samples and the originals of `picks`, in their order, rebuilt
    campaign by campaign (`rebuilt_samples`, the one way the project rebuilds them)."""
    shape = (len(picks), *dataset.input_shape)
    adversarial, originals = np.empty(shape), np.empty(shape, dtype=np.float32)
    for position in sorted({p.campaign for p in picks}):
        where = [i for i, p in enumerate(picks) if p.campaign == position]
        rows = np.array([picks[i].row for i in where])
        adversarial[where], originals[where] = rebuilt_samples(arrays[position], rows, dataset)
    return adversarial, originals


def class_names_asked(dataset: Dataset) -> tuple[str, ...] | None:
    """The class names the study's pages ask about: None for digits (the paper's
    questions: "Is this a numeric digit?", "Which digit is it?"), else the data's
    names ("Does it show one of: cat, dog, ...?", "Which one?")."""
    digits = tuple(map(str, range(10)))
    if dataset.class_names is None or dataset.class_names == digits[: dataset.num_classes]:
        return None
    return dataset.class_names


def _save_png(path: Path, image: np.ndarray, bounds: tuple[float, float]) -> None:
    """A (1, height, width) image as an 8-bit grayscale PNG, a (3, height, width) one as
    RGB, at its own resolution (the page enlarges it with crisp pixels)."""
    if image.shape[0] == 1:
        mpimage.imsave(path, image[0], cmap="gray", vmin=bounds[0], vmax=bounds[1], format="png")
        return
    low, high = bounds
    rgb = np.clip((np.asarray(image).transpose(1, 2, 0) - low) / (high - low), 0, 1)
    mpimage.imsave(path, rgb, format="png")


def _attention_image(shape: tuple[int, ...]) -> np.ndarray:
    """A checkerboard: plainly not a digit, so only the instructions decide the answers."""
    height, width = shape[-2:]
    rows, columns = np.indices((height, width))
    return (((rows // 4) + (columns // 4)) % 2).astype(np.float64)[None]


def _shortfalls(
    campaigns: Sequence[CampaignArrays],
    directions: Sequence[str],
    chosen: Mapping[str, Sequence[_Candidate]],
    per_condition: int,
) -> dict[str, str]:
    """Why each wanted condition (benign, and each direction given) got fewer stimuli
    than asked, by condition."""
    short: dict[str, str] = {}
    for direction in ("increasing", "decreasing"):
        given = [a for a, d in zip(campaigns, directions, strict=True) if d == direction]
        got = len(chosen.get(direction, []))
        if not given or got >= per_condition:
            continue
        succeeded = [a.success & (a.target >= 0) & (a.iterations > 0) for a in given]
        successes = sum(int(mask.sum()) for mask in succeeded)
        images = len({
            (str(split), int(index))
            for a, mask in zip(given, succeeded, strict=True)
            for split, index in zip(a.split[mask], a.index[mask], strict=True)
        })  # fmt: skip
        why = f"{got} of {per_condition}: the {direction} campaigns hold {successes} successful"
        why += " samples"
        if images > got:
            why += (
                f" of {images} source images, {images - got} of which another condition shows "
                "(each image appears once per study)"
            )
        short[direction] = why
    got = len(chosen.get("benign", []))
    if got < per_condition:
        images = len({
            (str(s), int(i)) for a in campaigns for s, i in zip(a.split, a.index, strict=True)
        })  # fmt: skip
        short["benign"] = (
            f"{got} of {per_condition}: of the campaigns' {images} source images, "
            f"{images - got} are shown as adversarial samples (each image appears once); "
            "attack more samples or ask for fewer per condition"
        )
    return short


def _check_completion_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"--completion-url must be an http(s) address, got {url!r}")


def create_study(
    campaigns: Sequence[Path],
    dataset: Dataset,
    directory: Path,
    *,
    per_condition: int,
    seed: int = 0,
    model: nn.Module | None = None,
    completion_url: str | None = None,
    consent: ConsentText | None = None,
    allow_short: bool = False,
) -> list[Stimulus]:
    """Choose the stimuli of `campaigns`, render them into `directory`/images and store
    the design in `directory`/study.sqlite; return the stimuli.

    The campaigns must attack the same model on the same data. `model` (the
    campaigns' model) gives the network's prediction on the benign originals;
    without it that prediction is left empty. `completion_url` is where a
    participant goes after the last page (Prolific's completion link, say);
    `consent` what the consent page says of length, contact, ethics, payment and
    withdrawal. `directory` must be new or empty. A condition (benign, and each
    direction of the campaigns) that gets fewer than `per_condition` stimuli is a
    `ConfigurationError` saying why, unless `allow_short` (then a warning).
    """
    if not campaigns:
        raise ConfigurationError("a study needs at least one campaign")
    if not dataset.is_images:
        raise ConfigurationError(
            f"{dataset.source}: people are shown images in a study; these inputs are "
            f"feature vectors of shape {dataset.input_shape}"
        )
    names = class_names_asked(dataset)
    if per_condition < 1:
        raise ConfigurationError(f"per_condition must be positive, got {per_condition}")
    _check_completion_url(completion_url)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise JSMAError(
            f"{directory}: exists and is not an empty directory (a study, a campaign or other "
            "files); choose a new directory for the study"
        )
    opened = [Campaign.open(path) for path in campaigns]
    manifests = [campaign.manifest for campaign in opened]
    models = {m.model.fingerprint for m in manifests}
    data = {m.data.fingerprint for m in manifests}
    if len(models) > 1 or len(data) > 1:
        raise JSMAError("the campaigns of a study must attack the same model on the same data")
    arrays = [campaign.arrays() for campaign in opened]
    directions = [m.spec.attack.direction for m in manifests]
    both = [str(path) for path, d in zip(campaigns, directions, strict=True) if d == "both"]
    if both:
        raise ConfigurationError(
            f"{', '.join(both)}: M-JSMA campaigns change pixels both ways; a study's "
            "conditions are the increasing and the decreasing attack"
        )
    chosen = choose_stimuli(arrays, directions, per_condition=per_condition, seed=seed)
    short = _shortfalls(arrays, directions, chosen, per_condition)
    if short and not allow_short:
        reasons = "; ".join(f"{name} {why}" for name, why in short.items())
        raise ConfigurationError(
            f"too few stimuli: {reasons}. Allow a smaller condition with --allow-short"
        )
    for name, why in short.items():
        logger.warning("study: %s gets %s", name, why)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ensure_writable(directory, directory / "images")

    stimuli: list[Stimulus] = []
    for condition in ("benign", "increasing", "decreasing"):
        picks = chosen.get(condition, [])
        if not picks:
            continue
        adversarial_images, originals = _picked_images(picks, arrays, dataset)
        if condition == "benign":
            images = originals.astype(np.float64)
            predictions: list[int | None] = [None] * len(picks)
            if model is not None:
                found = predict(model, torch.from_numpy(originals))
                predictions = [int(p) for p in found.tolist()]
        else:
            images = adversarial_images
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
    for prompt, is_digit, digit in attention_checks(dataset.num_classes, names):
        number = len(stimuli) + 1
        name = f"{number:05d}.png"
        _save_png(directory / "images" / name, _attention_image(dataset.input_shape), (0.0, 1.0))
        stimuli.append(
            Stimulus(number, "attention", name, prompt=prompt, expected_is_digit=is_digit,
                     expected_digit=digit)
        )  # fmt: skip
    write_design(directory, stimuli, seed=seed, per_condition=per_condition,
                  completion_url=completion_url, consent=consent or ConsentText(),
                  classes=dataset.num_classes, class_names=names,
                  channels=dataset.input_shape[0])  # fmt: skip
    restrict_to_owner(directory)
    return stimuli


def describe(stimuli: Sequence[Stimulus]) -> dict[str, int]:
    """How many stimuli of each condition."""
    counts: dict[str, int] = {}
    for stimulus in stimuli:
        counts[stimulus.condition] = counts.get(stimulus.condition, 0) + 1
    return counts
