"""The forward derivative of a network: its Jacobian with respect to the input.

Papernot et al. (Section III) differentiate the network function, not a
training loss, and with respect to the input, not the parameters. For MNIST
they take it of the logits Z (softmax squashes the variations); both are
offered here and logits are the default.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from jsma.context import frozen_eval
from jsma.errors import ConfigurationError, InputTypeError, ModelError
from jsma.settings import Output

__all__ = ["TargetDerivatives", "forward_derivative", "target_derivatives"]


def check_logits(logits: object, batch: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`logits` if they are a (batch, classes) floating point tensor (of the inputs'
    `dtype`, when given), else a clear error."""
    if not isinstance(logits, torch.Tensor):
        raise InputTypeError(
            f"the model must return a tensor of (batch, classes) logits, got "
            f"{type(logits).__name__} (wrap a model that returns several outputs)"
        )
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise ConfigurationError(
            f"the model must return (batch, classes) logits; for a batch of {batch} "
            f"it returned shape {tuple(logits.shape)}"
        )
    if not logits.dtype.is_floating_point:
        raise InputTypeError(
            f"the model must return floating point logits to be differentiated, got {logits.dtype}"
        )
    if dtype is not None and logits.dtype != dtype:
        raise InputTypeError(
            f"the model returns {logits.dtype} scores for {dtype} inputs; give both one dtype "
            f"(model.to({dtype}), or inputs .to({logits.dtype}))"
        )
    return logits


def check_finite(name: str, *tensors: torch.Tensor) -> None:
    """A `ModelError` naming the batch rows where any of `tensors` is NaN or infinite."""
    finite = torch.stack([t.flatten(1).isfinite().all(dim=1) for t in tensors]).all(dim=0)
    if not bool(finite.all()):
        rows = tuple(int(i) for i in (~finite).nonzero().flatten().tolist())
        raise ModelError(f"the model's {name} are NaN or infinite", rows)


_NO_DEPENDENCE = (
    "the model's output does not depend on its input (detached from the autograd graph, "
    "computed under torch.no_grad, or from something other than the input): the attack "
    "needs its derivatives with respect to the input"
)


def _input_gradient(
    scalar: torch.Tensor, inputs: torch.Tensor, *, retain_graph: bool = False
) -> torch.Tensor:
    """d scalar / d inputs, or a `ModelError` saying why there is none."""
    if not scalar.requires_grad:
        raise ModelError(_NO_DEPENDENCE)
    (gradient,) = torch.autograd.grad(scalar, inputs, retain_graph=retain_graph, allow_unused=True)
    if gradient is None:
        raise ModelError(_NO_DEPENDENCE)
    return gradient


def _outputs(model: nn.Module, x: torch.Tensor, output: Output) -> torch.Tensor:
    logits = check_logits(model(x), x.shape[0], x.dtype)
    return logits.softmax(dim=1) if output == "probabilities" else logits


# The most input elements (copies x features) one backward pass of
# `forward_derivative` takes: 2**25 float32 copies are 128 MiB, and the model's
# activations over them are a few times that. MNIST's LeNet at batch 900 (7
# million elements for its 10 classes) stays one pass; an ImageNet model's 1,000
# classes of a 224 x 224 image (150 million) take four.
MAX_COPY_ELEMENTS = 1 << 25


def forward_derivative(
    model: nn.Module,
    x: torch.Tensor,
    *,
    output: Output = "logits",
    max_copy_elements: int = MAX_COPY_ELEMENTS,
) -> torch.Tensor:
    """The full Jacobian dF_j / dx_i for every sample of a batch.

    x: (batch, *input_shape). Returns (batch, classes, *input_shape), with
    F the logits or the softmax probabilities. Copy k of a sample is
    differentiated along output k: one forward and one backward over the
    copies of as many classes as `max_copy_elements` allows at once (all of
    them for small inputs), so memory stays bounded for many classes. The
    model's mode and parameters are left as they were.
    """
    if max_copy_elements < 1:
        raise ConfigurationError(f"max_copy_elements must be positive, got {max_copy_elements}")
    with frozen_eval(model), torch.enable_grad():
        batch = x.shape[0]
        classes = _outputs(model, x[:1].detach(), output).shape[1]
        per_class = max(1, batch * x[0].numel())
        step = max(1, min(classes, max_copy_elements // per_class))
        jacobian = torch.empty((batch, classes, *x.shape[1:]), dtype=x.dtype, device=x.device)
        for first in range(0, classes, step):
            chosen = torch.arange(first, min(first + step, classes), device=x.device)
            copies = x.detach().repeat_interleave(len(chosen), dim=0).requires_grad_(True)
            outputs = _outputs(model, copies, output).view(batch, len(chosen), classes)
            along = outputs[:, torch.arange(len(chosen), device=x.device), chosen]
            gradient = _input_gradient(along.sum(), copies)
            jacobian[:, first : first + len(chosen)] = gradient.view(
                batch, len(chosen), *x.shape[1:]
            )
    return jacobian


class TargetDerivatives(NamedTuple):
    """See `target_derivatives`."""

    alpha: torch.Tensor
    beta: torch.Tensor
    outputs: torch.Tensor


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """A copy of a (batch, channels, height, width) batch with channels-last strides.

    Convolutions (and their input gradients, the attack's main cost) run
    about 1.5x faster on the CPU in that layout. `Tensor.contiguous` cannot be
    used: with one channel it sees both layouts as the same and copies nothing.
    """
    if x.ndim != 4:
        return x.detach().clone()
    _, channels, height, width = x.shape
    strides = (channels * height * width, 1, width * channels, channels)
    return torch.empty_strided(x.shape, strides, dtype=x.dtype, device=x.device).copy_(x)


def target_derivatives(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    output: Output = "logits",
    weighted: bool = False,
    max_rows: int = 256,
) -> TargetDerivatives:
    """alpha_i = dF_t / dx_i and beta_i = sum over j != t of dF_j / dx_i, per sample.

    x: (batch, *input_shape); targets: (batch,) class indices. Returns alpha
    and beta shaped like x, and the outputs F(x) (batch, classes) of the same
    forward pass. Two vector-Jacobian products of one forward pass replace the
    `classes` products of the full Jacobian (paper Section III, Equation 9).
    `weighted`: beta_i = sum over j != t of p_j(x) dF_j / dx_i instead, each other
    class weighted by its softmax probability at x, held constant (WJSMA, Combey et
    al. 2020; the same two products, the second with the probabilities as cotangent).
    The batch is processed `max_rows` samples at a time: on the CPU the
    activations of larger chunks leave the caches, and a pass costs about 15%
    more per sample at 900 rows than at 256.
    The model is held in `frozen_eval` for the call (eval mode, no parameter
    gradients) and left as it was.
    """
    with frozen_eval(model):
        parts = [
            _target_derivatives(
                model,
                x[start : start + max_rows],
                targets[start : start + max_rows],
                output,
                weighted,
            )
            for start in range(0, x.shape[0], max_rows)
        ]
    if len(parts) == 1:
        result = parts[0]
    else:
        result = TargetDerivatives(*(torch.cat(tensors) for tensors in zip(*parts, strict=True)))
    check_finite("outputs", result.outputs)
    check_finite("forward derivatives", result.alpha, result.beta)
    return result


def _target_derivatives(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, output: Output, weighted: bool
) -> TargetDerivatives:
    with torch.enable_grad():
        inputs = _channels_last(x.detach()).requires_grad_(True)
        outputs = _outputs(model, inputs, output)
        target_mask = torch.nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
        others = 1 - target_mask
        if weighted:
            detached = outputs.detach()
            others = others * (detached if output == "probabilities" else detached.softmax(dim=1))
        # The probabilities sum to 1, so unweighted beta = -alpha exactly; summing the
        # other rows in float32 cancels badly when the target's probability is tiny.
        negated = output == "probabilities" and not weighted
        # Scalars to differentiate, not tensor grad_outputs: the same gradients, bit for
        # bit, without torch importing sympy (0.4 s) on a process's first call.
        alpha = _input_gradient((outputs * target_mask).sum(), inputs, retain_graph=not negated)
        beta = -alpha if negated else _input_gradient((outputs * others).sum(), inputs)
    return TargetDerivatives(alpha, beta, outputs.detach())
