"""A small class-conditional DCGAN (Radford et al. 2015) for MNIST-sized images.

DCGAN's rules, at a width a 2-core CPU trains in minutes: strided (transposed)
convolutions instead of pooling, batch norm in both networks (not at the
generator's output nor the discriminator's input), ReLU in the generator with
a tanh output, LeakyReLU(0.2) in the discriminator. Conditional as in Mirza &
Osindero (2014): the generator sees a one-hot class beside its noise, the
discriminator one-hot class planes beside the image, so a generated digit
comes with the class it was asked to be.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jsma.errors import ConfigurationError

__all__ = ["GanSpec"]


@dataclass(frozen=True)
class GanSpec:
    """The shape of a GAN: images of `input_shape` (channels, side, side) in `bounds`,
    `num_classes` classes, `noise` inputs, `width` channels in the narrowest layer."""

    input_shape: tuple[int, int, int]
    num_classes: int
    bounds: tuple[float, float] = (0.0, 1.0)
    noise: int = 64
    width: int = 32

    def __post_init__(self) -> None:
        channels, height, side = self.input_shape
        if height != side or side % 4 or side < 8 or channels < 1:
            raise ConfigurationError(
                f"the DCGAN makes square images whose side is a multiple of 4 (8 or more), "
                f"got input shape {self.input_shape}"
            )
        if self.num_classes < 2 or self.noise < 1 or self.width < 1:
            raise ConfigurationError(
                f"num_classes must be at least 2, noise and width at least 1; got "
                f"{self.num_classes}, {self.noise}, {self.width}"
            )
        if not self.bounds[0] < self.bounds[1]:
            raise ConfigurationError(f"bounds must be (low, high) with low < high: {self.bounds}")


class Generator(nn.Module):
    """Noise and a class to an image: (N, noise), (N,) -> (N, C, H, W) within the bounds.

    Projects to `2 * width` planes of a quarter of the side, then two transposed
    convolutions double the side twice. The tanh output is mapped onto the data's
    bounds, so a generated image is what the classifiers take.
    """

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, _, side = spec.input_shape
        self.start = side // 4
        wide = 2 * spec.width
        self.project = nn.Sequential(
            nn.Linear(spec.noise + spec.num_classes, wide * self.start**2, bias=False),
            nn.BatchNorm1d(wide * self.start**2),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(wide, spec.width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(spec.width),
            nn.ReLU(),
            nn.ConvTranspose2d(spec.width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(classes, self.spec.num_classes).to(noise.dtype)
        planes = self.project(torch.cat([noise, one_hot], dim=1))
        planes = planes.view(len(noise), 2 * self.spec.width, self.start, self.start)
        low, high = self.spec.bounds
        out: torch.Tensor = low + (high - low) * (self.upsample(planes) + 1) / 2
        return out


class Discriminator(nn.Module):
    """An image and a class to a logit: real (high) or generated (low), (N, C, H, W),
    (N,) -> (N,). The class enters as one-hot planes beside the image's channels."""

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        channels, _, side = spec.input_shape
        wide = 2 * spec.width
        self.features = nn.Sequential(
            nn.Conv2d(channels + spec.num_classes, spec.width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(spec.width, wide, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(wide),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.decide = nn.Linear(wide * (side // 4) ** 2, 1)

    def forward(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        low, high = self.spec.bounds
        scaled = 2 * (images - low) / (high - low) - 1  # the generator's tanh range
        one_hot = nn.functional.one_hot(classes, self.spec.num_classes).to(images.dtype)
        planes = one_hot[:, :, None, None].expand(-1, -1, *images.shape[2:])
        out: torch.Tensor = self.decide(self.features(torch.cat([scaled, planes], dim=1)))
        return out.squeeze(1)
