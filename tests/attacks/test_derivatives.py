from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.autograd.functional import jacobian

from jsma.attacks import forward_derivative, target_derivatives
from jsma.context import frozen_eval
from jsma.models import MLP, LeNet


def _models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [LeNet((1, 16, 16), 5).double(), MLP((2, 3, 3), 4, hidden=(7,)).double()]


@pytest.mark.parametrize("output", ["logits", "probabilities"])
@pytest.mark.parametrize("model_index", [0, 1])
@pytest.mark.parametrize("classes_per_pass", [None, 1, 2])  # None: all at once
def test_full_jacobian_matches_autograd(
    output: str, model_index: int, classes_per_pass: int | None
) -> None:
    model = _models()[model_index]
    shape = (1, 16, 16) if model_index == 0 else (2, 3, 3)
    x = torch.rand(3, *shape, dtype=torch.float64)
    limit = {} if classes_per_pass is None else {"max_copy_elements": classes_per_pass * x.numel()}

    def function(inputs: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return logits.softmax(1) if output == "probabilities" else logits

    result = forward_derivative(model, x, output=output, **limit)  # type: ignore[arg-type]
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


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_chunks_give_the_single_pass_result(output: str) -> None:
    model = _models()[0]
    x = torch.rand(7, 1, 16, 16, dtype=torch.float64)
    targets = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    with frozen_eval(model):
        whole = target_derivatives(model, x, targets, output=output)  # type: ignore[arg-type]
        chunked = target_derivatives(model, x, targets, output=output, max_rows=3)  # type: ignore[arg-type]
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b)


def test_probabilities_beta_is_exact_where_the_float32_sum_cancels() -> None:
    """Softmax outputs sum to 1, so beta = -alpha exactly. Summing the other rows in
    float32 cancels catastrophically when the target's probability is tiny (early
    in an attack): the identity stays at the float64 reference, the sum does not."""
    torch.manual_seed(0)
    model = LeNet((1, 16, 16), 5)
    with torch.no_grad():
        # Confident logits: the other classes' probabilities are about 1e-7.
        model[-1].weight.mul_(40)  # type: ignore[operator]
    x = torch.rand(6, 1, 16, 16)
    with torch.no_grad():
        targets = model(x).argmin(1)
    with frozen_eval(model):
        _, beta, outputs = target_derivatives(model, x, targets, output="probabilities")
    assert float(outputs.gather(1, targets[:, None]).max()) < 1e-4
    full = forward_derivative(model.double(), x.double(), output="probabilities")
    rows = torch.arange(6)
    reference = full.sum(1) - full[rows, targets]
    single = forward_derivative(model.float(), x, output="probabilities")
    naive = single.sum(1) - single[rows, targets]

    def error(b: torch.Tensor) -> float:
        return float((b.double() - reference).norm() / reference.norm())

    assert error(beta) < 1e-5
    assert error(naive) > 100 * error(beta)


def test_an_attack_does_not_import_sympy() -> None:
    """torch's tensor grad_outputs path imports sympy (0.4 s) on first use; ours avoids it."""
    code = (
        "import sys, torch, jsma\n"
        "from jsma.models import LeNet\n"
        "model = LeNet((1, 16, 16), 3)\n"
        "jsma.attack(model, torch.rand(2, 1, 16, 16) * 0.5, torch.tensor([0, 1]), "
        "sources=torch.tensor([1, 2]))\n"
        "print('sympy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


class _Detached(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).detach()


class _IgnoresInput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Depends on parameters only (these require gradients while not frozen).
        return self.bias.expand(x.shape[0], 3) * 2


@pytest.mark.parametrize("model", [_Detached(), _IgnoresInput()])
@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_a_model_whose_output_ignores_its_input_is_named(
    model: torch.nn.Module, output: str
) -> None:
    import jsma
    from jsma.errors import ModelError

    x = torch.rand(2, 4)
    with pytest.raises(ModelError, match="output does not depend on its input"):
        target_derivatives(model, x, torch.tensor([0, 1]), output=output)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="output does not depend on its input"):
        forward_derivative(model, x, output=output)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="output does not depend on its input"):
        jsma.attack(model, x, torch.tensor([1, 2]), sources=torch.tensor([0, 0]))
