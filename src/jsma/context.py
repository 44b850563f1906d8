"""Put a model in evaluation mode with frozen parameters, and restore it after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["frozen_eval"]


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the model is in eval mode and no parameter needs a gradient.

    On exit, each submodule's `training` flag and each parameter's
    `requires_grad` are restored exactly as they were, even after an error.
    Attacks differentiate with respect to the input only, so parameter
    gradients would be wasted work (and would pollute the caller's `.grad`).
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    # A torch.export program's module refuses eval(): its mode was fixed when it was
    # exported, so there is nothing to switch.
    with contextlib.suppress(NotImplementedError):
        model.eval()
    for parameter, _ in grads:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for parameter, requires_grad in grads:
            parameter.requires_grad_(requires_grad)
