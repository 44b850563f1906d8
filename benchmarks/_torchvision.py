"""torchvision in the benchmark environment, whose torch is the CPU build (shared by the
benchmarks that need it)."""

from __future__ import annotations

import functools
from typing import Any

import torch


@functools.cache  # a second declaration of the operators would fail (several models)
def import_torchvision() -> Any:
    """torchvision, with the CPU build of torch. PyPI's torchvision wheel is built
    against CUDA torch: its C operators (detection's nms and friends) do not load here,
    and its import then fails registering fake kernels for two of them. ResNet-18
    uses none: declaring those two operators' schemas lets the import finish."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise SystemExit("torchvision is missing: scripts/bench-env installs it")
    extensions = sorted(Path(spec.origin).parent.glob("_C*.so"))
    try:
        torch.ops.load_library(str(extensions[0]))
    except (OSError, IndexError):
        library = torch.library.Library("torchvision", "DEF")
        for name in ("nms", "qnms"):
            library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _keep.append(library)  # the declarations last as long as the library object
    import torchvision

    return torchvision


_keep: list[Any] = []
