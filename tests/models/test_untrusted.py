"""A `.pt2` someone sent: every way torch's own loader could run what it carries is
refused before torch sees the file (issue 34, item 16).

Each crafted archive plants a payload that creates a marker file; where torch's own
`torch.export.load` runs that payload, the test shows it too, so it fails without the
check."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from jsma.errors import ModelError
from jsma.models import ModelRef
from jsma.models._exported import FILE_OPERATORS, check_exported_archive
from tests.userdata import load_model


class _Payload:
    """Unpickling this creates `marker` (what a hostile pickle would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small program with a dynamic batch, saved by torch.export.save."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    exported = torch.export.export(
        model.eval(), (torch.zeros(2, 1, 6, 6),), dynamic_shapes=({0: torch.export.Dim("b")},)
    )
    path = tmp_path_factory.mktemp("program") / "model.pt2"
    torch.export.save(exported, path)
    return path


def _rewritten(original: Path, out: Path, changes: dict[str, bytes | None]) -> Path:
    """`original` with members replaced, added (`changes` below its root) or removed
    (None)."""
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(out, "w") as target:
        root = source.namelist()[0].partition("/")[0]
        for info in source.infolist():
            member = info.filename.partition("/")[2]
            if member in changes:
                continue
            target.writestr(info, source.read(info.filename))
        for member, content in changes.items():
            if content is not None:
                target.writestr(f"{root}/{member}", content)
    return out


def _member(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        root = archive.namelist()[0].partition("/")[0]
        return archive.read(f"{root}/{member}")


def _pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    return buffer.getvalue()


def _torch_runs_it(path: Path, marker: Path) -> bool:
    """Whether torch's own loader runs the payload when the model is loaded and called
    (in a child, which may fail after)."""
    code = "import sys, torch; torch.export.load(sys.argv[1]).module()(torch.zeros(2, 1, 6, 6))"
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


def _source(path: Path) -> ModelRef:
    source = ModelRef.parse(path)
    assert source.form == "exported"
    return source


def _refused(path: Path, marker: Path, reason: str) -> None:
    with pytest.raises(ModelError, match=reason):
        load_model(_source(path))
    assert not marker.exists()


def test_plain_program_loads(program: Path) -> None:
    model = load_model(_source(program))
    assert model(torch.zeros(5, 1, 6, 6)).shape == (5, 3)


@pytest.mark.slow
def test_pickled_sample_inputs_are_refused(program: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crafted = _rewritten(
        program, tmp_path / "crafted.pt2", {"data/sample_inputs/model.pt": _pickled(marker)}
    )
    assert _torch_runs_it(crafted, marker)  # torch falls back to full unpickling
    _refused(crafted, marker, "sample inputs need unpickling")


@pytest.mark.slow
def test_pickled_weight_is_refused(program: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = json.loads(_member(program, "data/weights/model_weights_config.json"))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    crafted = _rewritten(
        program, tmp_path / "crafted.pt2",
        {"data/weights/model_weights_config.json": json.dumps(config).encode(),
         f"data/weights/{first['path_name']}": _pickled(marker)},
    )  # fmt: skip
    assert _torch_runs_it(crafted, marker)
    _refused(crafted, marker, "stored pickled")


@pytest.mark.slow
def test_shape_expression_with_code_is_refused(program: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = _member(program, "models/model.json").decode()
    symbol = "Symbol('s"
    assert symbol in text
    start = text.index(symbol)
    end = text.index(")", start) + 1
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch() or {text[start:end]}"
    crafted = _rewritten(
        program, tmp_path / "crafted.pt2",
        {"models/model.json": text.replace(text[start:end], payload.replace('"', '\\"')).encode()},
    )  # fmt: skip
    assert _torch_runs_it(crafted, marker)  # sympify is Python's eval
    _refused(crafted, marker, "not arithmetic on shape symbols")


@pytest.mark.parametrize("target", ["torch.hub.load", "builtins.exec", "torch.ops.aten.save"])
def test_graph_calling_more_than_operators_is_refused(
    program: Path, tmp_path: Path, target: str
) -> None:
    document = json.loads(_member(program, "models/model.json"))
    document["graph_module"]["graph"]["nodes"][0]["target"] = target
    crafted = _rewritten(
        program, tmp_path / "crafted.pt2", {"models/model.json": json.dumps(document).encode()}
    )
    _refused(crafted, tmp_path / "never", "calls")


@pytest.mark.slow
def test_guard_code_is_never_run(program: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    document = json.loads(_member(program, "models/model.json"))
    document["guards_code"] = [f"__import__('pathlib').Path({str(marker)!r}).touch()"]
    crafted = _rewritten(
        program, tmp_path / "crafted.pt2", {"models/model.json": json.dumps(document).encode()}
    )
    assert _torch_runs_it(crafted, marker)  # .module() execs the guards, a call runs them
    model = load_model(_source(crafted))
    model(torch.zeros(2, 1, 6, 6))
    assert not marker.exists()


@pytest.mark.parametrize(
    "member",
    ["data/aotinductor/model/model.so", "data/constants/custom_obj_0",
     "data/weights/model.pt", "extra/notes.txt"],
)  # fmt: skip
def test_members_beyond_a_plain_program_are_refused(
    program: Path, tmp_path: Path, member: str
) -> None:
    crafted = _rewritten(program, tmp_path / "crafted.pt2", {member: b"\x80\x02N."})
    _refused(crafted, tmp_path / "never", "not part of a plain program")


def test_archive_over_the_size_limit_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pt2"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/data/weights/weight_0", bytes(64 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ModelError, match="over the limit of 1,000,000"):
        check_exported_archive(bomb.read_bytes(), "bomb.pt2", limit=1_000_000)


def test_file_operators_are_every_aten_schema_with_a_filename() -> None:
    named = {
        schema.name.removeprefix("aten::")
        for schema in torch._C._jit_get_all_schemas()
        if schema.name.startswith("aten::")
        and any(argument.name == "filename" for argument in schema.arguments)
    }
    assert named == FILE_OPERATORS


def test_limit_can_be_raised_from_the_environment(tmp_path: Path) -> None:
    code = "from jsma.models._exported import MAX_MODEL_BYTES; print(MAX_MODEL_BYTES)"
    env = {**os.environ, "JSMA_MAX_MODEL_BYTES": "12345"}
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "12345"
