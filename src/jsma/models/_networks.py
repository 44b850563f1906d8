"""The networks of the paper: LeNet for MNIST, a small MLP, and the toy AND net."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from jsma.errors import ConfigurationError

__all__ = ["MLP", "AndNet", "LeNet"]

Activation = Literal["tanh", "relu"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ConfigurationError(
            f"unknown activation {name!r}; choose one of {', '.join(_ACTIVATIONS)}"
        ) from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_shape(input_shape: tuple[int, ...], num_classes: int) -> tuple[int, int, int]:
    if not _is_int(num_classes):
        raise ConfigurationError(f"num_classes must be an int, got {num_classes!r}")
    if (
        not isinstance(input_shape, tuple)
        or len(input_shape) != 3
        or not all(_is_int(side) and side >= 1 for side in input_shape)
    ):
        raise ConfigurationError(
            f"input_shape must be (channels, height, width), got {input_shape}"
        )
    if num_classes < 2:
        raise ConfigurationError(f"num_classes must be at least 2, got {num_classes}")
    channels, height, width = input_shape
    return channels, height, width


class LeNet(nn.Sequential):
    """LeNet as in the paper (Section V): conv 20@5x5, max-pool 2x2, conv 50@5x5,
    max-pool 2x2, fully connected 500, then one logit per class.

    Input (batch, channels, height, width); output logits (batch, num_classes).
    The softmax is left to the loss and to whoever asks for probabilities, since
    the attack differentiates the logits.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        activation: Activation = "tanh",
    ) -> None:
        channels, height, width = _check_shape(input_shape, num_classes)
        # Valid 5x5 convolutions shrink each side by 4; each pooling halves it.
        out_h, out_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        if out_h < 1 or out_w < 1:
            raise ConfigurationError(
                f"input_shape {input_shape} is too small for LeNet (at least 16x16)"
            )
        super().__init__(
            nn.Conv2d(channels, 20, kernel_size=5),
            nn.MaxPool2d(2),
            _activation(activation),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.MaxPool2d(2),
            _activation(activation),
            nn.Flatten(),
            nn.Linear(50 * out_h * out_w, 500),
            _activation(activation),
            nn.Linear(500, num_classes),
        )


class MLP(nn.Sequential):
    """A small fully connected network: input flattened, hidden layers, logits."""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        hidden: tuple[int, ...] = (256, 256),
        activation: Activation = "relu",
    ) -> None:
        channels, height, width = _check_shape(input_shape, num_classes)
        if not all(_is_int(size) and size >= 1 for size in hidden):
            raise ConfigurationError(f"hidden sizes must be positive ints, got {hidden}")
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = channels * height * width
        for width_out in hidden:
            layers += [nn.Linear(width_in, width_out), _activation(activation)]
            width_in = width_out
        layers.append(nn.Linear(width_in, num_classes))
        super().__init__(*layers)


class AndNet(nn.Module):
    """The paper's toy network (Section III): 2 inputs, 2 sigmoid hidden units,
    1 sigmoid output, trained to compute the Boolean AND of x1, x2 in [0, 1].

    Input (batch, 2); output F(X) in (0, 1), shape (batch, 1).
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(2, 2)
        self.output = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.output(torch.sigmoid(self.hidden(x))))
