from __future__ import annotations

import pytest
import torch

from jsma.models import MLP, AndNet, LeNet, ModelSpec
from jsma.models._registry import build_model


@pytest.mark.parametrize(
    ("input_shape", "num_classes"), [((1, 28, 28), 10), ((3, 32, 32), 7), ((2, 16, 20), 2)]
)
def test_lenet_shapes(input_shape: tuple[int, int, int], num_classes: int) -> None:
    model = LeNet(input_shape, num_classes)
    assert model(torch.zeros(3, *input_shape)).shape == (3, num_classes)


def test_lenet_is_the_papers_architecture() -> None:
    convs = [m for m in LeNet().modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in LeNet().modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(800, 500), (500, 10)]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_activation_is_a_parameter(activation: str) -> None:
    kinds = {type(m).__name__.lower() for m in LeNet(activation=activation).modules()}  # type: ignore[arg-type]
    assert activation in kinds


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        LeNet(activation="swish")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too small for LeNet"):
        LeNet((1, 8, 8))
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        MLP(num_classes=1)
    with pytest.raises(ValueError, match="input_shape must be"):
        MLP((28, 28))  # type: ignore[arg-type]


def test_mlp_and_and_net() -> None:
    assert MLP((1, 4, 4), 3, hidden=(5,))(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    out = AndNet()(torch.rand(6, 2))
    assert out.shape == (6, 1)
    assert bool(((out > 0) & (out < 1)).all())


def test_registry_round_trip() -> None:
    spec = ModelSpec("mlp", {"input_shape": (1, 4, 4), "num_classes": 3, "hidden": (5,)})
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert isinstance(again.build(), MLP)
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model("resnet")
