from __future__ import annotations

import pytest
import torch

from jsma.context import frozen_eval
from jsma.models import LeNet


def test_frozen_eval_restores_mixed_state() -> None:
    model = LeNet((1, 16, 16), 3)
    model.train()
    model[0].eval()  # a submodule in its own mode must come back as it was
    model[0].weight.requires_grad_(False)
    before_modes = [m.training for m in model.modules()]
    before_grads = [p.requires_grad for p in model.parameters()]
    with frozen_eval(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert [m.training for m in model.modules()] == before_modes
    assert [p.requires_grad for p in model.parameters()] == before_grads


def test_frozen_eval_restores_after_an_error() -> None:
    model = LeNet((1, 16, 16), 3).train()
    with pytest.raises(RuntimeError, match="boom"), frozen_eval(model):
        raise RuntimeError("boom")
    assert model.training
    assert all(p.requires_grad for p in model.parameters())


def test_input_gradients_still_flow() -> None:
    model = LeNet((1, 16, 16), 3)
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    with frozen_eval(model):
        model(x).sum().backward()
    assert x.grad is not None
    assert all(p.grad is None for p in model.parameters())
