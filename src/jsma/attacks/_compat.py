"""A torchattacks-style front end, so switching libraries is a one-line change."""

from __future__ import annotations

import torch
from torch import nn

from jsma.attacks._crafting import JSMA

__all__ = ["TorchattacksJSMA"]


class TorchattacksJSMA:
    """`torchattacks.JSMA(model, theta=1.0, gamma=0.1)` semantics on top of `JSMA`.

    `gamma` is the maximum distortion (a fraction of the features), as in
    torchattacks. Calling it returns the adversarial images only:

        >>> atk = TorchattacksJSMA(model, theta=1.0, gamma=0.145)  # doctest: +SKIP
        >>> adv_images = atk(images, labels, target_labels)  # doctest: +SKIP

    With `target_labels` the attack is targeted; without, it is untargeted and
    `labels` are the source classes. Unlike torchattacks, no random or
    `(label + 1) % classes` target is made up.
    """

    def __init__(
        self,
        model: nn.Module,
        theta: float = 1.0,
        gamma: float = 0.1,
        *,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
    ) -> None:
        self.model = model
        self.attack = JSMA(theta=theta, max_distortion=gamma, clip_min=clip_min, clip_max=clip_max)

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.attack(self.model, images, target_labels, sources=labels).adversarial
