from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from jsma.attacks import forward_derivative, target_derivatives
from jsma.models import MLP, LeNet, frozen_eval


def _models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [LeNet((1, 16, 16), 5).double(), MLP((2, 3, 3), 4, hidden=(7,)).double()]


@pytest.mark.parametrize("output", ["logits", "probabilities"])
@pytest.mark.parametrize("model_index", [0, 1])
def test_full_jacobian_matches_autograd(output: str, model_index: int) -> None:
    model = _models()[model_index]
    shape = (1, 16, 16) if model_index == 0 else (2, 3, 3)
    x = torch.rand(3, *shape, dtype=torch.float64)

    def function(inputs: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return logits.softmax(1) if output == "probabilities" else logits

    result = forward_derivative(model, x, output=output)  # type: ignore[arg-type]
    for sample in range(3):
        expected = jacobian(function, x[sample : sample + 1]).squeeze(2).squeeze(0)
        torch.testing.assert_close(result[sample], expected)
    assert result.shape == (3, model(x).shape[1], *shape)


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_alpha_beta_are_the_target_row_and_the_rest(output: str) -> None:
    model = _models()[0]
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64)
    targets = torch.tensor([0, 4, 2, 2])
    full = forward_derivative(model, x, output=output)  # type: ignore[arg-type]
    with frozen_eval(model):
        alpha, beta, outputs = target_derivatives(model, x, targets, output=output)  # type: ignore[arg-type]
    rows = torch.arange(4)
    torch.testing.assert_close(alpha, full[rows, targets])
    torch.testing.assert_close(beta, full.sum(1) - full[rows, targets])
    assert outputs.shape == (4, 5)


def test_model_state_is_restored() -> None:
    model = _models()[0].train()
    forward_derivative(model, torch.rand(2, 1, 16, 16, dtype=torch.float64))
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_wrong_output_shape_is_named() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(0))
    with pytest.raises(ValueError, match=r"must return \(batch, classes\) logits"):
        forward_derivative(model, torch.rand(2, 3))
