"""Export a model to ONNX, the form most deployed models are served in."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from jsma._io import atomic_write
from jsma.errors import MissingDependencyError, ModelError

__all__ = ["export_onnx"]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: Sequence[int],
    *,
    input_name: str = "input",
    output_name: str = "scores",
) -> Path:
    """Write `model` (inputs of `input_shape`, one batch dimension in front, any size) as
    an ONNX file that ONNX Runtime, Triton or MLServer serve; its output is the model's
    scores. Uses torch's `torch.export`-based exporter (the `blackbox` extra brings onnx
    and onnxscript); the file is checked by running it beside the model before it is
    kept. Returns the path."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise MissingDependencyError(
            "exporting to ONNX needs onnx, onnxscript and onnxruntime: pip install 'jsma[blackbox]'"
        ) from None
    model = model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    example = torch.rand(2, *input_shape, device=device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.export")
    try:
        # The exporter prints its progress and warns about what it skips: not ours to show.
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            _quiet("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir"),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[input_name],
                output_names=[output_name],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )  # fmt: skip
            assert program is not None
            program.save(scratch)
        data = scratch.read_bytes()
    except Exception as error:  # the exporter raises many kinds
        raise ModelError(f"the model cannot be exported to ONNX ({error})") from None
    finally:
        scratch.unlink(missing_ok=True)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    probe = torch.rand(3, *input_shape, device=device)
    with torch.no_grad():
        expected = model(probe).float().cpu().numpy()
    (got,) = session.run([output_name], {input_name: probe.cpu().numpy()})
    if got.shape != expected.shape or abs(got - expected).max() > 1e-4 * (1 + abs(expected).max()):
        raise ModelError("the exported ONNX model does not give the model's scores")
    with atomic_write(path) as handle:
        handle.write(data)
    return path


@contextlib.contextmanager
def _quiet(*names: str):  # type: ignore[no-untyped-def]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
