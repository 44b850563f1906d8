from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import jsma.attacks._crafting as crafting
from jsma.attacks import JSMA, StopReason, TorchattacksJSMA, attack
from jsma.attacks.reference import select_pair_brute_force
from jsma.errors import ConfigurationError, InputTypeError, ModelError
from jsma.models import MLP, LeNet

SHAPE = (1, 16, 16)


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return LeNet(SHAPE, 5, activation="relu").double()


@pytest.fixture
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(6, *SHAPE, generator=generator, dtype=torch.float64) * 0.6


def _targets(model: nn.Module, x: torch.Tensor, shift: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return (model(x).argmax(1) + shift) % 5


def _replay(x: torch.Tensor, result: crafting.AttackResult, index: int) -> torch.Tensor:
    flat = x[index].flatten().clone()
    for feature, value in result[index].trajectory:
        flat[feature] = value
    return flat.view_as(x[index])


@pytest.mark.parametrize("theta", [1.0, -1.0, 0.3, -0.45])
@pytest.mark.parametrize("variant", ["pairs", "single"])
def test_invariants(model: nn.Module, images: torch.Tensor, theta: float, variant: str) -> None:
    x = images.clone()
    targets = _targets(model, x)
    config = JSMA(theta=theta, max_distortion=0.2, variant=variant)  # type: ignore[arg-type]
    result = config(model, x, targets)
    # The caller's input and model are untouched.
    torch.testing.assert_close(x, images, rtol=0, atol=0)
    assert not x.requires_grad
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    features = math.prod(SHAPE)
    per_step = 2 if variant == "pairs" else 1
    max_iterations = math.floor(features * 0.2 / per_step)
    assert bool((result.iterations <= max_iterations).all())
    assert bool((result.features_changed <= max_iterations * per_step).all())
    assert bool((result.distortion <= 20.0 + 1e-9).all())
    adv = result.adversarial
    assert bool(((adv >= 0) & (adv <= 1)).all())
    # Features move only in the direction of theta.
    assert bool((adv >= x).all()) if theta > 0 else bool((adv <= x).all())
    with torch.no_grad():
        predicted = model(adv).argmax(1)
    torch.testing.assert_close(predicted, result.predictions)
    assert bool((result.success == (predicted == targets)).all())
    assert bool((result.success == (result.stop_reasons == StopReason.SUCCESS)).all())
    for index in range(len(result)):
        torch.testing.assert_close(_replay(x, result, index), adv[index], rtol=0, atol=0)
    torch.testing.assert_close(result.distortion, result.features_changed.double() * 100 / features)


def test_batch_equals_one_by_one(model: nn.Module, images: torch.Tensor) -> None:
    targets = _targets(model, images, shift=1)
    together = attack(model, images, targets)
    for index in range(len(images)):
        alone = attack(model, images[index : index + 1], targets[index : index + 1])
        torch.testing.assert_close(alone.adversarial[0], together.adversarial[index])
        assert alone[0].trajectory == together[index].trajectory
        assert alone[0].stop_reason == together[index].stop_reason


def test_fast_search_gives_the_brute_force_attack(model: nn.Module, images: torch.Tensor) -> None:
    targets = _targets(model, images)
    fast = attack(model, images, targets)
    slow = attack(model, images, targets, pair_search=select_pair_brute_force)
    torch.testing.assert_close(fast.adversarial, slow.adversarial, rtol=0, atol=0)
    torch.testing.assert_close(fast.trajectory_features, slow.trajectory_features)


def test_it_succeeds_on_an_easy_model(model: nn.Module, images: torch.Tensor) -> None:
    result = attack(model, images, _targets(model, images), max_distortion=0.5)
    assert result.success_rate > 0.5


def test_untargeted_leaves_the_source(model: nn.Module, images: torch.Tensor) -> None:
    result = attack(model, images, None, max_distortion=0.5)
    assert result.targets is None
    with torch.no_grad():
        sources = model(images).argmax(1)
    torch.testing.assert_close(result.sources, sources)
    assert bool((result.success == (result.predictions != sources)).all())
    assert bool(result.success.any())


class _Linear(nn.Module):
    """Z = x @ weight.T + bias over flattened inputs: derivatives are the weights."""

    def __init__(self, weight: list[list[float]], bias: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight, dtype=torch.float64))
        self.bias = nn.Parameter(torch.tensor(bias, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def test_nothing_admissible_stops_without_perturbing() -> None:
    # Increasing any feature lowers the target logit: no admissible pair.
    model = _Linear([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]], [-0.5, 0.0])
    x = torch.full((1, 4), 0.2, dtype=torch.float64)
    result = attack(model, x, torch.tensor([1]), max_distortion=1.0)
    assert result[0].stop_reason is StopReason.NO_ADMISSIBLE
    assert result[0].iterations == 0
    torch.testing.assert_close(result.adversarial, x)
    # Decreasing is right for that target: it succeeds by lowering features.
    result = attack(model, x, torch.tensor([1]), theta=-1.0, max_distortion=1.0)
    assert result[0].success
    assert bool((result.adversarial <= x).all())


def test_domain_exhausted() -> None:
    # Four features already sit at the upper bound; one pair is left to change.
    model = _Linear([[-1.0] * 6, [1.0] * 6], [100.0, 0.0])
    x = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    result = attack(model, x, torch.tensor([1]), max_distortion=1.0)
    assert result[0].stop_reason is StopReason.DOMAIN_EXHAUSTED
    assert result[0].trajectory == ((2, 1.0), (4, 1.0))


def test_budget_spent() -> None:
    model = _Linear([[-1.0] * 10, [1.0] * 10], [100.0, 0.0])
    x = torch.zeros(1, 10, dtype=torch.float64)
    result = attack(model, x, torch.tensor([1]), max_distortion=0.45)
    assert result[0].stop_reason is StopReason.BUDGET
    assert result[0].iterations == 2  # floor(10 * 0.45 / 2)
    assert result[0].features_changed == 4


def test_per_feature_bounds_and_small_theta() -> None:
    model = _Linear([[-1.0] * 4, [1.0, 2.0, 3.0, 4.0]], [50.0, 0.0])
    x = torch.zeros(1, 4, dtype=torch.float64)
    upper = torch.tensor([0.5, 1.0, 0.25, 2.0], dtype=torch.float64)
    result = attack(model, x, torch.tensor([1]), theta=0.3, clip_max=upper, max_distortion=1.0)
    assert bool((result.adversarial <= upper).all())
    # Features change several times with a small theta; saturated ones leave the domain.
    features = [feature for feature, _ in result[0].trajectory]
    assert len(features) > len(set(features))
    assert result[0].stop_reason is StopReason.BUDGET


def test_probabilities_output(model: nn.Module, images: torch.Tensor) -> None:
    result = attack(model, images, _targets(model, images), output="probabilities")
    assert bool(((result.probabilities > 0) & (result.probabilities <= 1)).all())


def test_target_already_predicted_for_a_given_source(
    model: nn.Module, images: torch.Tensor
) -> None:
    with torch.no_grad():
        predicted = model(images).argmax(1)
    sources = (predicted + 1) % 5  # pretend the labels differ from the prediction
    result = attack(model, images, predicted, sources=sources)
    assert bool(result.success.all())
    assert bool((result.iterations == 0).all())


def test_other_input_shapes() -> None:
    torch.manual_seed(0)
    model = MLP((3, 4, 5), 3, hidden=(8,)).double()
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    result = attack(model, x, None, max_distortion=0.3)
    assert result.adversarial.shape == x.shape
    # The result describes the (3, 4, 5) images it returns: replayable, predicted as
    # recorded, successful exactly when the prediction left the source class.
    with torch.no_grad():
        predicted = model(result.adversarial).argmax(1)
    torch.testing.assert_close(predicted, result.predictions)
    assert bool((result.success == (predicted != result.sources)).all())
    for index in range(len(x)):
        torch.testing.assert_close(_replay(x, result, index), result.adversarial[index])
    assert bool((result.features_changed <= math.floor(60 * 0.3)).all())


def test_torchattacks_form(model: nn.Module, images: torch.Tensor) -> None:
    targets = _targets(model, images)
    adversarial = TorchattacksJSMA(model, theta=1.0, gamma=0.145)(
        images, _targets(model, images, 0), targets
    )
    torch.testing.assert_close(adversarial, attack(model, images, targets).adversarial)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, t: (x.clone().fill_(float("nan")), t), "NaN"),
        (lambda x, t: (x + 2, t), r"x\[0\] has feature 0 = .* outside the bounds \[0.0, 1.0\]"),
        (lambda x, t: (x[0, 0, 0], t), "non-empty batch"),
        (
            lambda x, t: (x, t + 10),
            r"targets\[0\] = 1[0-4] is not a class of this model \(0 to 4\)",
        ),
        (lambda x, t: (x, t[:2]), r"targets must be integer class indices of shape \(6,\)"),
        (lambda x, t: (x, t.double()), "targets must be integer class indices"),
    ],
)
def test_bad_input_is_named(model: nn.Module, images: torch.Tensor, change, message: str) -> None:  # type: ignore[no-untyped-def]
    x, targets = change(images, _targets(model, images))
    with pytest.raises(ValueError, match=message):
        attack(model, x, targets)


def test_target_equal_to_source_is_an_error(model: nn.Module, images: torch.Tensor) -> None:
    with torch.no_grad():
        predicted = model(images).argmax(1)
    with pytest.raises(ValueError, match=r"targets\[0\] = \d equals the source class"):
        attack(model, images, predicted)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="theta must be a non-zero"):
        JSMA(theta=0.0)
    with pytest.raises(ValueError, match=r"the paper's 14.5% is 0.145"):
        JSMA(max_distortion=14.5)
    with pytest.raises(ValueError, match="variant must be"):
        JSMA(variant="triples")  # type: ignore[arg-type]


def test_model_with_wrong_output(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"must return \(batch, classes\) logits"):
        attack(nn.Flatten(0), images, torch.zeros(6, dtype=torch.long))


def test_non_finite_derivative_is_reported() -> None:
    model = _Linear([[0.0, 0.0], [1.0, 1.0]], [0.0, 0.0])
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(ModelError, match="NaN or infinite for batch rows 0 "):
        attack(model, torch.full((1, 2), 0.5, dtype=torch.float64), torch.tensor([1]))


class _NaNAfter(nn.Module):
    """`inner`, but its logits are NaN on the rows where `bad(x)` holds."""

    def __init__(self, inner: nn.Module, bad) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.inner, self.bad = inner, bad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        return torch.where(self.bad(x)[:, None], torch.nan, logits)


def test_nan_logits_are_an_error_naming_the_rows(model: nn.Module, images: torch.Tensor) -> None:
    # Rows 2 and 4 give NaN from the start: no false success with 0 features changed.
    marked = images.clone()
    marked[[2, 4], 0, 0, 0] = 0.99
    nan_model = _NaNAfter(model, lambda x: x.flatten(1)[:, 0] > 0.95)
    with pytest.raises(ModelError, match=r"outputs are NaN or infinite for batch rows 2, 4 \(2 "):
        attack(nan_model, marked, _targets(model, marked), sources=torch.zeros(6).long())


def test_nan_mid_attack_names_the_callers_rows(model: nn.Module, images: torch.Tensor) -> None:
    # Row 0's target is already its prediction: it is done at the first step, so later
    # calls see rows 1..5 only (row 3 is their third). NaN appears once row 3 is changed.
    targets = _targets(model, images)
    sources = targets.clone()
    sources[1:] = (targets[1:] + 1) % 5
    with torch.no_grad():
        predicted = model(images).argmax(1)
    targets[0] = predicted[0]
    sources[0] = (predicted[0] + 1) % 5
    row3 = images[3].flatten()

    def bad(x: torch.Tensor) -> torch.Tensor:
        differs = (x.flatten(1) - row3).abs().sum(dim=1) > 0
        close = (x.flatten(1) - row3).abs().sum(dim=1) < 5
        return differs & close  # row 3, once the attack has changed it

    with pytest.raises(ModelError, match=r"for batch rows 3 \(1 in all\)"):
        attack(_NaNAfter(model, bad), images, targets, sources=sources)


class _InPlace(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:  # in-place writes fail on the leaves autograd tracks
            x.mul_(0.5)  # a badly behaved model: it writes into its input
        return self.inner(x)


def test_a_model_that_writes_its_input_leaves_the_callers_alone(
    model: nn.Module, images: torch.Tensor
) -> None:
    x = images.clone()
    attack(_InPlace(model), x, _targets(model, x))
    torch.testing.assert_close(x, images, rtol=0, atol=0)


class _Returns(nn.Module):
    def __init__(self, inner: nn.Module, wrap) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.inner, self.wrap = inner, wrap

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.wrap(self.inner(x))


@pytest.mark.parametrize(
    ("wrap", "message"),
    [
        (lambda z: (z, z), "must return a tensor of .* logits, got tuple"),
        (lambda z: z.long(), "must return floating point logits .* got torch.int64"),
    ],
)
def test_model_outputs_of_the_wrong_kind(
    model: nn.Module, images: torch.Tensor, wrap: Callable[[torch.Tensor], object], message: str
) -> None:
    with pytest.raises(InputTypeError, match=message):
        attack(_Returns(model, wrap), images, torch.zeros(6, dtype=torch.long))


def test_dtypes(model: nn.Module, images: torch.Tensor) -> None:
    targets = _targets(model, images)
    with pytest.raises(InputTypeError, match=r"x is torch\.float32 but the model's parameters"):
        attack(model, images.float(), targets)
    # float64 is supported (the fixtures use it); float32 and bfloat16 run as well.
    for dtype in (torch.float32, torch.bfloat16):
        result = attack(model.to(dtype), images.to(dtype), targets)
        assert result.adversarial.dtype == dtype
        assert bool(result.adversarial.isfinite().all())


@pytest.mark.parametrize("bound", ["clip_min", "clip_max"])
def test_nan_bounds_are_refused(model: nn.Module, images: torch.Tensor, bound: str) -> None:
    with pytest.raises(ConfigurationError, match="must be numbers, not NaN"):
        attack(model, images, _targets(model, images), **{bound: float("nan")})  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_the_input(model: nn.Module, images: torch.Tensor) -> None:
    cuda_model, cuda_images = model.cuda(), images.cuda()
    targets = _targets(cuda_model, cuda_images)
    result = attack(cuda_model, cuda_images, targets)
    assert result.adversarial.device == cuda_images.device
    cpu = attack(model.cpu(), images, targets.cpu())
    torch.testing.assert_close(result.adversarial.cpu(), cpu.adversarial)


def test_model_on_another_device_is_named(model: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="x is on meta but the model is on cpu"):
        attack(model, images.to("meta"), torch.zeros(6, dtype=torch.long))
