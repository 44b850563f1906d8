"""The Ray engine on a Ray started here, on 127.0.0.1 only, and stopped after the module."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from jsma.campaign.ray_engine import LOCAL_ADDRESS, LOOPBACK_ONLY, RayEngine

os.environ.update(LOOPBACK_ONLY)  # before Ray is imported: it reads this then
import ray

from jsma.campaign import Campaign, InProcess, LocalPool
from jsma.cli import main
from jsma.data import Dataset
from jsma.errors import ConfigurationError, ModelError
from jsma.models import save_checkpoint
from jsma.models._checkpoint import CheckpointInfo
from tests.campaign.conftest import MODEL_SPEC, Recording, _comparable, _model
from tests.campaign.test_engines import SPEC, DiesOnce, NotFinite
from tests.conftest import write_idx_directory


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(
        num_cpus=2, _node_ip_address=LOCAL_ADDRESS, include_dashboard=False,
        log_to_driver=False, logging_level=logging.WARNING,
    )  # fmt: skip
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def reference(tiny_dataset: Dataset, tmp_path: Path) -> list[dict[str, object]]:
    Campaign.run(tmp_path / "reference", SPEC, _model(), tiny_dataset, engine=InProcess())
    return _comparable(Campaign.open(tmp_path / "reference").results())


@pytest.mark.slow
def test_ray_listens_on_127_0_0_1_only() -> None:
    ss = shutil.which("ss")
    assert ss, "the check needs `ss` (iproute2)"
    listening = subprocess.run([ss, "-ltnpH"], capture_output=True, text=True, check=True)
    ray_sockets = [
        line.split()[3]
        for line in listening.stdout.splitlines()
        if any(name in line for name in ("gcs_server", "raylet", "ray::", f"pid={os.getpid()},"))
    ]
    assert ray_sockets, "no Ray process is listening: the check would prove nothing"
    local = [a for a in ray_sockets if a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:"))]
    assert local == ray_sockets


def test_ray_gives_the_rows_of_one_process(
    tiny_dataset: Dataset, tmp_path: Path, reference: list[dict[str, object]]
) -> None:
    engine = RayEngine(workers=2)
    assert Campaign.run(tmp_path / "run", SPEC, _model(), tiny_dataset, engine=engine).complete
    assert _comparable(Campaign.open(tmp_path / "run").results()) == reference
    assert ray.is_initialized()  # a Ray it did not start is left running


@pytest.mark.slow
def test_engines_resume_each_others_campaigns(
    tiny_dataset: Dataset,
    tmp_path: Path,
    reference: list[dict[str, object]],
    recording: Recording,
) -> None:
    directory = tmp_path / "run"
    Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=LocalPool(2))
    units = sorted((directory / "units").glob("*.parquet"))
    for unit in units[:2]:
        unit.unlink()
    Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=RayEngine())
    assert _comparable(Campaign.open(directory).results()) == reference
    for unit in units[2:]:
        unit.unlink()
    Campaign.run(directory, SPEC, _model(), tiny_dataset, engine=recording)
    assert recording.units == [unit.stem for unit in units[2:]]
    assert _comparable(Campaign.open(directory).results()) == reference


def test_a_ray_worker_killed_mid_unit_is_retried(
    tiny_dataset: Dataset, tmp_path: Path, reference: list[dict[str, object]]
) -> None:
    # Into a storage URI: the tasks write through pyarrow.fs, as on s3://.
    uri = f"file://{tmp_path}/bucket/run"
    model = DiesOnce(_model(), tmp_path / "killed")
    status = Campaign.run(uri, SPEC, model, tiny_dataset, engine=RayEngine())
    assert (tmp_path / "killed").exists()  # a worker did die
    assert status.complete
    assert _comparable(Campaign.open(uri).results()) == reference


def test_a_tasks_error_reaches_the_caller(tiny_dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="outputs are NaN or infinite"):
        Campaign.run(tmp_path / "run", SPEC, NotFinite(), tiny_dataset, engine=RayEngine())
    assert Campaign.open(tmp_path / "run").status().units_done == 0


def test_ray_engine_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="workers must be at least 1, got 0"):
        RayEngine(workers=0)
    with pytest.raises(ConfigurationError, match="threads must be at least 1"):
        RayEngine(gpus_per_worker=-0.5)


def test_the_command_line_runs_on_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, _model(), CheckpointInfo(spec=MODEL_SPEC))
    options = [
        "--data", f"idx:{write_idx_directory(tmp_path / 'idx', train=10_010)}",
        "--cache-dir", str(tmp_path / "cache"), "--model", str(checkpoint),
        "--allow-weak-model",  # an untrained LeNet
    ]  # fmt: skip
    run = ["campaign", "run", str(tmp_path / "run"), *options, "--samples", "4", "--unit-size", "2"]
    assert main([*run, "--engine", "ray", "--workers", "2"]) == 0
    assert "attacks:    12 / 12" in capsys.readouterr().out
    assert main([*run, "--address", "auto"]) == 2
    assert "--address and --gpus-per-worker go with --engine ray" in capsys.readouterr().err
    # The model on CUDA and tasks given no GPU: refused before data, model or directory.
    assert (
        main([*run[:2], str(tmp_path / "cuda"), *run[3:], "--engine", "ray", "--device", "cuda"])
        == 2
    )
    assert "give each task a share of a GPU with --gpus-per-worker" in capsys.readouterr().err
    assert not (tmp_path / "cuda").exists()


class RecordsDevice(torch.nn.Module):
    """A model that notes, in a file, the device of every batch it sees."""

    def __init__(self, inner: torch.nn.Module, marker: Path) -> None:
        super().__init__()
        self.inner, self.marker = inner, str(marker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with open(self.marker, "a") as notes:
            notes.write(f"{x.device.type}\n")
        out: torch.Tensor = self.inner(x)
        return out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpus_per_worker_runs_units_on_the_gpu(tiny_dataset: Dataset, tmp_path: Path) -> None:
    marker = tmp_path / "devices"
    model = RecordsDevice(_model(), marker)
    engine = RayEngine(workers=2, gpus_per_worker=0.5)
    assert Campaign.run(tmp_path / "run", SPEC, model, tiny_dataset, engine=engine).complete
    assert set(marker.read_text().split()) == {"cuda"}
    # The same GPU in this process: the rows agree (kernels, not the engine, set the bits).
    reference = tmp_path / "reference"
    Campaign.run(reference, SPEC, _model().cuda(), tiny_dataset, engine=InProcess())
    ours, theirs = Campaign.open(tmp_path / "run").results(), Campaign.open(reference).results()
    agree = [
        a == b
        for a, b in zip(ours["success"].to_pylist(), theirs["success"].to_pylist(), strict=True)
    ]
    assert sum(agree) >= 0.95 * len(agree)


def test_storage_tasks_cannot_reach_is_refused_at_once(tiny_dataset: Dataset) -> None:
    from tests.campaign.test_location import _memory

    with pytest.raises(ConfigurationError, match="cannot be sent to worker processes"):
        Campaign.run(_memory(), SPEC, _model(), tiny_dataset, engine=RayEngine())


@pytest.mark.slow
def test_ray_tasks_receive_the_program_not_a_pickled_module(tmp_path: Path) -> None:
    # An exported program's module cannot be pickled at all: the tasks rebuild it from
    # the program's bytes.
    from jsma.campaign import Campaign, CampaignSpec
    from jsma.data import load_data
    from tests.userdata import (
        load_model,
        outside_source,
        save_model_forms,
        trained_small_cnn,
        write_npz,
    )

    data = load_data(write_npz(tmp_path / "small.npz", train=32, test=8))
    forms = save_model_forms(trained_small_cnn(*data.train.tensors(), steps=20), tmp_path / "m")
    source = outside_source(str(forms["exported"]))
    spec = CampaignSpec(splits=("test",), samples=8, unit_size=4)
    Campaign.run(tmp_path / "here", spec, load_model(source), data, engine=InProcess())
    engine = RayEngine(workers=2)
    assert Campaign.run(tmp_path / "ray", spec, load_model(source), data, engine=engine).complete
    rows = _comparable(Campaign.open(tmp_path / "ray").results())
    assert rows == _comparable(Campaign.open(tmp_path / "here").results())
