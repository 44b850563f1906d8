"""The JSMA family (saliency `jsma`, `wjsma`, `tjsma`) and the paper's search domain,
each against a reference written here from the papers: one sample at a time, the full
Jacobian, every pair scored in a matrix, plain Python for the rest."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from jsma.attacks import JSMA, AttackSettings, StopReason
from jsma.campaign import CampaignSpec
from jsma.errors import ConfigurationError
from jsma.models import LeNet

SHAPE = (1, 16, 16)
CLASSES = 5


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(3)
    return LeNet(SHAPE, CLASSES, activation="relu").double().eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    # Mostly zeros, like MNIST: the paper's search domain then picks pixels that cannot
    # be lowered.
    generator = torch.Generator().manual_seed(4)
    values = torch.rand(4, *SHAPE, generator=generator, dtype=torch.float64)
    keep = torch.rand(4, *SHAPE, generator=generator, dtype=torch.float64) < 0.45
    return values * keep


@dataclass
class Reference:
    success: bool
    stop: StopReason
    picks: list[int]
    adversarial: np.ndarray


def reference_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    settings: AttackSettings,
    lower: float = 0.0,
    upper: float = 1.0,
    mask: np.ndarray | None = None,
) -> Reference:
    """Papernot et al. Algorithms 1-3 for one sample, with Combey et al.'s weighting."""
    current = x.detach().flatten().double().numpy().copy()
    features = current.size
    per_step = 2 if settings.variant == "pairs" else 1
    increasing = settings.theta > 0
    max_iterations = math.floor(features * settings.max_distortion / per_step + 1e-9)
    if settings.search_domain == "all":
        domain = np.ones(features, dtype=bool)
    else:
        domain = current < upper if increasing else current > lower
    if mask is not None:
        domain &= mask

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        logits = model(flat.view(1, *x.shape))[0]
        return logits.softmax(0) if settings.output == "probabilities" else logits

    picks: list[int] = []
    for iteration in range(max_iterations + 1):
        with torch.no_grad():
            probabilities = model(torch.from_numpy(current).view(1, *x.shape))[0].softmax(0)
        if int(probabilities.argmax()) == target:
            return Reference(True, StopReason.SUCCESS, picks, current)
        if iteration == max_iterations:
            return Reference(False, StopReason.BUDGET, picks, current)
        if domain.sum() < per_step:
            return Reference(False, StopReason.DOMAIN_EXHAUSTED, picks, current)
        jacobian = torch.autograd.functional.jacobian(outputs, torch.from_numpy(current.copy()))
        jacobian = jacobian.numpy()  # (classes, features)
        weights = np.ones(len(jacobian))
        weights[target] = 0
        if settings.saliency in ("wjsma", "tjsma"):
            weights *= probabilities.numpy()
        alpha = jacobian[target].copy()
        beta = (weights[:, None] * jacobian).sum(axis=0)
        if settings.saliency == "tjsma":
            room = upper - current if increasing else current - lower
            alpha, beta = alpha * room, beta * room
        if per_step == 2:
            pair_alpha = alpha[:, None] + alpha[None, :]
            pair_beta = beta[:, None] + beta[None, :]
            allowed = np.triu(np.ones((features, features), dtype=bool), 1)
            allowed &= domain[:, None] & domain[None, :]
        else:
            pair_alpha, pair_beta, allowed = alpha[None, :], beta[None, :], domain[None, :]
        if increasing:
            admissible = allowed & (pair_alpha > 0) & (pair_beta < 0)
        else:
            admissible = allowed & (pair_alpha < 0) & (pair_beta > 0)
        if not admissible.any():
            return Reference(False, StopReason.NO_ADMISSIBLE, picks, current)
        scores = np.where(admissible, -pair_alpha * pair_beta, -np.inf)
        best = int(np.argmax(scores))  # row-major: the smallest (p, q) among ties
        chosen = divmod(best, features) if per_step == 2 else (best,)
        for feature in chosen:
            current[feature] = min(max(current[feature] + settings.theta, lower), upper)
            if current[feature] >= upper if increasing else current[feature] <= lower:
                domain[feature] = False
            picks.append(int(feature))
    raise AssertionError("unreachable")


def _targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (model(x).argmax(1) + 2) % CLASSES


CASES = [
    # saliency, theta, search domain, variant, output
    ("jsma", -1.0, "all", "pairs", "logits"),
    ("jsma", -1.0, "all", "pairs", "probabilities"),
    ("jsma", 1.0, "all", "single", "logits"),
    ("wjsma", 1.0, "unsaturated", "pairs", "logits"),
    ("wjsma", -1.0, "unsaturated", "pairs", "probabilities"),
    ("wjsma", 0.4, "all", "single", "logits"),
    ("tjsma", 1.0, "unsaturated", "pairs", "logits"),
    ("tjsma", -0.6, "unsaturated", "pairs", "logits"),
    ("tjsma", 1.0, "all", "single", "probabilities"),
]


@pytest.mark.parametrize(("saliency", "theta", "domain", "variant", "output"), CASES)
def test_the_batched_attack_is_the_reference_sample_by_sample(
    model: nn.Module,
    images: torch.Tensor,
    saliency: str,
    theta: float,
    domain: str,
    variant: str,
    output: str,
) -> None:
    settings = AttackSettings(
        theta=theta, max_distortion=0.15, variant=variant, output=output,  # type: ignore[arg-type]
        saliency=saliency, search_domain=domain,  # type: ignore[arg-type]
    )  # fmt: skip
    targets = _targets(model, images)
    result = settings.attack()(model, images, targets)
    for index in range(len(images)):
        expected = reference_attack(model, images[index], int(targets[index]), settings)
        got = result[index]
        assert [feature for feature, _ in got.trajectory] == expected.picks
        assert got.stop_reason == expected.stop
        np.testing.assert_array_equal(got.adversarial.flatten().numpy(), expected.adversarial)
        changed = int((expected.adversarial != images[index].flatten().numpy()).sum())
        assert got.features_changed == changed
    # Bounds and budget hold.
    assert bool(((result.adversarial >= 0) & (result.adversarial <= 1)).all())
    per_step = 2 if variant == "pairs" else 1
    assert bool((result.iterations <= settings.max_iterations(math.prod(SHAPE))).all())
    assert bool((result.features_changed <= result.iterations * per_step).all())


def test_the_papers_domain_spends_iterations_on_pixels_it_cannot_lower(
    model: nn.Module, images: torch.Tensor
) -> None:
    targets = _targets(model, images)
    literal = JSMA(theta=-1.0, search_domain="all")(model, images, targets)
    moved = literal.trajectory_moved[literal.trajectory_features >= 0]
    assert not bool(moved.all())  # some picks were pixels already at 0
    # What changed is exactly what the picks that moved say.
    for index in range(len(images)):
        row = literal.trajectory_features[index]
        picked = row[row >= 0]
        really = picked[literal.trajectory_moved[index, : len(picked)]]
        assert int(literal.features_changed[index]) == len(set(really.tolist()))
    # The default domain never picks them: every pick moves.
    default = JSMA(theta=-1.0)(model, images, targets)
    assert bool(default.trajectory_moved[default.trajectory_features >= 0].all())


class RowCounter(nn.Module):
    """The model, counting the rows it is given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.model(x)


@pytest.mark.parametrize("variant", ["pairs", "single"])
def test_a_step_that_moves_nothing_is_not_differentiated_again(
    model: nn.Module, images: torch.Tensor, variant: str
) -> None:
    targets = _targets(model, images)
    counted = RowCounter(model)
    attack = JSMA(theta=-1.0, search_domain="all", variant=variant)  # type: ignore[arg-type]
    result = attack(counted, images, targets)
    per_step = 2 if variant == "pairs" else 1
    moved = result.trajectory_moved.view(len(images), -1, per_step).any(dim=2)
    steps_that_moved = int(moved.sum())
    assert steps_that_moved < int(result.iterations.sum())  # some steps moved nothing
    # A forward pass to check the model, one to differentiate at the start, and one
    # after each step that changed the input, no more.
    assert counted.rows == 2 * len(images) + steps_that_moved


def test_weighted_derivatives_are_the_probability_weighted_jacobian(
    model: nn.Module, images: torch.Tensor
) -> None:
    targets = _targets(model, images)
    jacobian = torch.stack(
        [torch.autograd.functional.jacobian(lambda z: model(z[None])[0], x) for x in images]
    ).flatten(2)  # (batch, classes, features)
    with torch.no_grad():
        probabilities = model(images).softmax(1)
    others = 1 - torch.nn.functional.one_hot(targets, CLASSES).double()
    alpha, beta, _ = JSMA(saliency="wjsma").derivatives(model, images, targets)
    rows = torch.arange(len(images))
    torch.testing.assert_close(alpha, jacobian[rows, targets])
    torch.testing.assert_close(beta, ((others * probabilities)[:, :, None] * jacobian).sum(1))
    room = 1 - images.flatten(1)
    alpha_t, beta_t, _ = JSMA(saliency="tjsma").derivatives(model, images, targets)
    torch.testing.assert_close(alpha_t, alpha * room)
    torch.testing.assert_close(beta_t, beta * room)
    lowering = JSMA(saliency="tjsma", theta=-1.0)
    _, beta_down, _ = lowering.derivatives(model, images, targets)
    torch.testing.assert_close(beta_down, beta * images.flatten(1))


def test_untargeted_family_swaps_the_roles(model: nn.Module, images: torch.Tensor) -> None:
    with torch.no_grad():
        sources = model(images).argmax(1)
    attack = JSMA(saliency="wjsma", max_distortion=0.5)
    alpha, beta, _ = attack.derivatives(model, images, sources, untargeted=True)
    plain_alpha, plain_beta, _ = attack.derivatives(model, images, sources)
    torch.testing.assert_close(alpha, plain_beta)
    torch.testing.assert_close(beta, plain_alpha)
    result = attack(model, images)
    assert bool((result.success == (result.predictions != sources)).all())


def test_settings_are_checked_and_recorded() -> None:
    with pytest.raises(ConfigurationError, match="saliency must be one of jsma, wjsma, tjsma"):
        AttackSettings(saliency="xjsma")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="search_domain must be one of"):
        AttackSettings(search_domain="some")  # type: ignore[arg-type]
    settings = AttackSettings(saliency="tjsma", search_domain="all")
    assert settings.attack().settings == settings
    spec = CampaignSpec(attack=settings)
    assert CampaignSpec.from_json(spec.to_json()) == spec


def test_the_digest_of_earlier_settings_is_unchanged() -> None:
    # A campaign of 0.2.0 (no saliency or search domain) keeps its units: its digest,
    # computed then from these fields alone, is what the spec gives today.
    assert CampaignSpec().digest() == "2507c9bb3f801b43"
    others = {
        CampaignSpec(attack=AttackSettings(saliency="wjsma")).digest(),
        CampaignSpec(attack=AttackSettings(search_domain="all")).digest(),
    }
    assert len(others) == 2
    assert CampaignSpec().digest() not in others


# --- binary features and masks: the setting of Grosse et al. 2017 ---------------------

BINARY_FEATURES = 40


def _binary_detector() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small 'malware detector' trained on synthetic binary features: class 1 when
    more of the first 20 features than of the last 20 are set. Returns the model and
    the flagged samples, with a mask of the features an attacker may add."""
    generator = torch.Generator().manual_seed(5)
    x = (torch.rand(600, BINARY_FEATURES, generator=generator) < 0.3).float()
    y = (x[:, :20].sum(1) > x[:, 20:].sum(1)).long()
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(BINARY_FEATURES, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model = model.double().eval()  # the reference works in float64
    x = x.double()
    with torch.no_grad():
        flagged = x[(model(x).argmax(1) == 1) & (y == 1)][:12]
    # Features 30 to 39 must stay as they are (they would break the program).
    mask = torch.ones(BINARY_FEATURES, dtype=torch.bool)
    mask[30:] = False
    return model, flagged, mask


def test_binary_features_are_only_added_where_the_mask_allows() -> None:
    model, flagged, mask = _binary_detector()
    assert len(flagged) >= 8
    targets = torch.zeros(len(flagged), dtype=torch.long)
    attack = JSMA(theta=1.0, max_distortion=0.25, variant="single", binary=True)
    result = attack(model, flagged, targets, mask=mask)
    adversarial = result.adversarial
    assert bool(((adversarial == 0) | (adversarial == 1)).all())  # still binary
    assert bool((adversarial >= flagged).all())  # features only added
    torch.testing.assert_close(adversarial[:, ~mask], flagged[:, ~mask], rtol=0, atol=0)
    assert result.success_rate > 0.5
    settings = attack.settings
    for index in range(len(flagged)):
        expected = reference_attack(model, flagged[index], 0, settings, mask=mask.numpy())
        assert [feature for feature, _ in result[index].trajectory] == expected.picks
        assert result[index].stop_reason == expected.stop


def test_a_mask_per_sample() -> None:
    model, flagged, _ = _binary_detector()
    targets = torch.zeros(len(flagged), dtype=torch.long)
    masks = torch.zeros(flagged.shape, dtype=torch.bool)
    masks[torch.arange(len(flagged)), torch.arange(len(flagged))] = True  # one feature each
    masks[:, 0] = True
    result = JSMA(max_distortion=0.25, variant="single", binary=True)(
        model, flagged, targets, mask=masks
    )
    changed = result.adversarial != flagged
    assert not bool((changed & ~masks).any())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, m: (x * 0.5, m), "binary features must be at one of their bounds; x[0]"),
        (lambda x, m: (x, m.float()), "mask must be a bool tensor"),
        (lambda x, m: (x, m[:10]), "mask of shape (10,) is neither one input's shape (40,)"),
    ],
)
def test_bad_binary_input_and_masks_are_named(change, message: str) -> None:  # type: ignore[no-untyped-def]
    model, flagged, mask = _binary_detector()
    x, bad_mask = change(flagged, mask)
    targets = torch.zeros(len(x), dtype=torch.long)
    with pytest.raises((ConfigurationError, TypeError), match=re.escape(message)):
        JSMA(binary=True, variant="single")(model, x, targets, mask=bad_mask)
    with pytest.raises(ConfigurationError, match=r"\|theta\| must be at least 1"):
        JSMA(binary=True, theta=0.5)(model, flagged, targets)


# --- M-JSMA (Wiyatno and Xu 2018) ----------------------------------------------------


def reference_maximal(
    model: nn.Module, x: torch.Tensor, source: int, settings: AttackSettings
) -> Reference:
    """M-JSMA for one sample: every class, both directions, every pair, in loops of
    matrices; the highest score wins, ties to the smallest class, increasing first,
    then the smallest pair. Each feature changes at most once."""
    current = x.detach().flatten().double().numpy().copy()
    features = current.size
    max_iterations = math.floor(features * settings.max_distortion / 2 + 1e-9)
    unchanged = np.ones(features, dtype=bool)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        logits = model(flat.view(1, *x.shape))[0]
        return logits.softmax(0) if settings.output == "probabilities" else logits

    picks: list[int] = []
    for iteration in range(max_iterations + 1):
        with torch.no_grad():
            probabilities = model(torch.from_numpy(current).view(1, *x.shape))[0].softmax(0)
        if int(probabilities.argmax()) != source:
            return Reference(True, StopReason.SUCCESS, picks, current)
        if iteration == max_iterations:
            return Reference(False, StopReason.BUDGET, picks, current)
        if unchanged.sum() < 2:
            return Reference(False, StopReason.DOMAIN_EXHAUSTED, picks, current)
        jacobian = torch.autograd.functional.jacobian(outputs, torch.from_numpy(current.copy()))
        jacobian = jacobian.numpy()
        weights = np.ones(len(jacobian))
        if settings.saliency != "jsma":
            weights = probabilities.numpy()
        best: tuple[float, tuple[int, int] | None, int] = (-np.inf, None, 0)
        for target in range(len(jacobian)):
            others = weights.copy()
            others[target] = 0
            alpha = jacobian[target].copy()
            beta = (others[:, None] * jacobian).sum(axis=0)
            if target == source:
                alpha, beta = beta, alpha
            for increasing in (True, False):
                a, b = alpha, beta
                if settings.saliency == "tjsma":
                    room = 1 - current if increasing else current
                    a, b = a * room, b * room
                movable = unchanged.copy()
                if settings.search_domain == "unsaturated":
                    movable &= current < 1 if increasing else current > 0
                pair_alpha, pair_beta = a[:, None] + a[None, :], b[:, None] + b[None, :]
                allowed = np.triu(np.ones((features, features), dtype=bool), 1)
                allowed &= movable[:, None] & movable[None, :]
                sign = 1 if increasing else -1
                admissible = allowed & (sign * pair_alpha > 0) & (sign * pair_beta < 0)
                if not admissible.any():
                    continue
                scores = np.where(admissible, -pair_alpha * pair_beta, -np.inf)
                flat_best = int(np.argmax(scores))
                if scores.flat[flat_best] > best[0]:
                    best = (scores.flat[flat_best], divmod(flat_best, features), sign)
        _, chosen, sign = best
        if chosen is None:
            return Reference(False, StopReason.NO_ADMISSIBLE, picks, current)
        for feature in chosen:
            current[feature] = min(max(current[feature] + sign * settings.theta, 0.0), 1.0)
            unchanged[feature] = False
            picks.append(int(feature))
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("saliency", "theta", "domain", "output"),
    [
        ("jsma", 1.0, "unsaturated", "logits"),
        ("jsma", 1.0, "all", "probabilities"),
        ("jsma", 0.5, "unsaturated", "logits"),
        ("wjsma", 1.0, "unsaturated", "logits"),
        ("tjsma", 1.0, "unsaturated", "probabilities"),
    ],
)
def test_maximal_is_the_reference_sample_by_sample(
    model: nn.Module, images: torch.Tensor, saliency: str, theta: float, domain: str, output: str
) -> None:
    settings = AttackSettings(
        theta=theta, max_distortion=0.15, variant="maximal", output=output,  # type: ignore[arg-type]
        saliency=saliency, search_domain=domain,  # type: ignore[arg-type]
    )  # fmt: skip
    with torch.no_grad():
        sources = model(images).argmax(1)
    result = settings.attack()(model, images)
    for index in range(len(images)):
        expected = reference_maximal(model, images[index], int(sources[index]), settings)
        got = result[index]
        assert [feature for feature, _ in got.trajectory] == expected.picks
        assert got.stop_reason == expected.stop
        np.testing.assert_array_equal(got.adversarial.flatten().numpy(), expected.adversarial)
    # Each feature changed at most once, in either direction.
    for index in range(len(images)):
        picked = [feature for feature, _ in result[index].trajectory]
        assert len(picked) == len(set(picked))
    assert bool((result.success == (result.predictions != sources)).all())


def test_maximal_moves_both_ways_and_is_untargeted(model: nn.Module, images: torch.Tensor) -> None:
    attack = JSMA(variant="maximal", max_distortion=0.3)
    result = attack(model, images)
    moved = result.adversarial.flatten(1) - images.flatten(1)
    assert bool((moved > 0).any())
    assert bool((moved < 0).any())
    assert result.success_rate > 0.5
    with pytest.raises(ConfigurationError, match=r"untargeted: give no targets \(targets=None"):
        attack(model, images, torch.zeros(len(images), dtype=torch.long))
    with pytest.raises(ConfigurationError, match="theta is its size and must be positive"):
        JSMA(variant="maximal", theta=-1.0)


def test_a_maximal_campaign_must_be_untargeted() -> None:
    maximal = AttackSettings(variant="maximal")
    with pytest.raises(ConfigurationError, match="use the target rule 'untargeted'"):
        CampaignSpec(attack=maximal)
    assert CampaignSpec(attack=maximal, targets="untargeted").attack.variant == "maximal"
    # theta is a magnitude: the direction is chosen per step, and reports say so.
    assert maximal.direction == "both"
    assert AttackSettings(theta=-1.0).direction == "decreasing"
