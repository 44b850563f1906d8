from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

from jsma.errors import CheckpointError
from jsma.models import AndNet, CheckpointInfo, LeNet, ModelSpec, load_checkpoint, save_checkpoint
from jsma.models._checkpoint import load_weights

SPEC = ModelSpec("lenet", {"input_shape": (1, 16, 16), "num_classes": 3, "activation": "relu"})


def _saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, CheckpointInfo]:
    torch.manual_seed(0)
    model = SPEC.build()
    info = CheckpointInfo(spec=SPEC, recipe={"name": "test"}, seed=3, accuracies={"test": 0.5})
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, info)
    return path, model, info


def test_round_trip(tmp_path: Path) -> None:
    path, model, info = _saved(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.info == info
    assert not loaded.model.training
    x = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(loaded.model(x), model.eval()(x), rtol=0, atol=0)


def test_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    path, _, _ = _saved(tmp_path)
    # safetensors: an 8-byte header length, a JSON header, raw tensor bytes.
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{"
    assert header_length < path.stat().st_size


def test_wrong_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path, _, _ = _saved(tmp_path)
    expected = r"model\.safetensors: .*does not fit.*checkpoint \(3, 500\), model \(7, 500\)"
    with pytest.raises(CheckpointError, match=expected):
        load_weights(LeNet((1, 16, 16), 7), path)
    with pytest.raises(CheckpointError, match=r"missing .*unexpected"):
        load_weights(AndNet(), path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    path, _, _ = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00" * 64, "empty": b""}[damage]
    )
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_checkpoint_without_metadata(tmp_path: Path) -> None:
    import safetensors.torch

    path = tmp_path / "bare.safetensors"
    model = SPEC.build()
    safetensors.torch.save_file(model.state_dict(), str(path))
    with pytest.raises(CheckpointError, match="no jsma metadata"):
        load_checkpoint(path)
    assert load_weights(SPEC.build(), path) is not None


def _with_metadata(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the checkpoint at `path` with its jsma metadata changed by `edit`."""
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["jsma"])
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    edit(metadata)
    path.write_bytes(safetensors.torch.save(tensors, metadata={"jsma": json.dumps(metadata)}))


WIDE_MLP = {
    "architecture": "mlp",
    "arguments": {"input_shape": [1, 16, 16], "num_classes": 3, "hidden": [22_000, 22_000]},
}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(spec="lenet"), r"spec: expected an object, got 'lenet'"),
        (
            lambda m: m["spec"].update(arguments=[1, 2]),
            r"spec\.arguments: expected an object, got \[1, 2\]",
        ),
        (lambda m: m.update(accuracies="high"), "accuracies: expected an object"),
        (
            lambda m: m.update(accuracies={"test": "0.9"}),
            r"accuracies\.test: expected a number, got '0.9'",
        ),
        (lambda m: m.update(seed="three"), "seed: expected a whole number"),
        (lambda m: m.pop("spec"), "spec: missing"),
        (lambda m: m["spec"]["arguments"].update(num_classes=1e10), "num_classes must be an int"),
        # Declared shapes that would allocate 20 TB or 2 GB: compared before anything is built.
        (
            lambda m: m["spec"]["arguments"].update(num_classes=10**10),
            r"9.weight: checkpoint \(3, 500\), model \(10000000000, 500\)",
        ),
        (lambda m: m.update(spec=WIDE_MLP), r"does not fit this architecture"),
    ],
)
def test_bad_metadata_is_named_before_building(  # type: ignore[no-untyped-def]
    tmp_path: Path, edit, message: str
) -> None:
    path, _, _ = _saved(tmp_path)
    _with_metadata(path, edit)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
