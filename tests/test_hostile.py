"""Hostile files and options (issue 34, items 19-21, 27): each gets one line naming the
problem, never a traceback, a hang or gigabytes of memory."""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from jsma.cli import main
from jsma.data import load_data
from jsma.errors import DataError, ModelError
from tests.conftest import popen_as_from_a_terminal
from tests.userdata import write_image_folder, write_npz


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images") / "images", train=8, test=4)


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "images"))


def _some_image(folder: Path) -> Path:
    return next((folder / "train").glob("*/*.png"))


def test_a_fifo_named_like_an_image_is_refused_not_waited_on(folder: Path, tmp_path: Path) -> None:
    copy = _copy(folder, tmp_path)
    os.mkfifo(_some_image(copy).with_name("blocking.png"))
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            load_data(copy, cache_dir=tmp_path / "cache")
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "reading blocked on the FIFO"
    assert isinstance(outcome[0], DataError)
    assert "blocking.png: not a regular file" in str(outcome[0])


def test_a_link_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    copy = _copy(folder, tmp_path)
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(_some_image(copy).read_bytes())
    _some_image(copy).with_name("linked.png").symlink_to(outside)
    with pytest.raises(DataError, match="a link out of the image folder"):
        load_data(copy, cache_dir=tmp_path / "cache")


def test_images_over_the_pixel_limit_and_bombs_are_named(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import PIL.Image

    import jsma.data._images as images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)  # the images are 16 x 16
    with pytest.raises(DataError, match="over the limit of 100 pixels an image"):
        load_data(_copy(folder, tmp_path), cache_dir=tmp_path / "cache")
    monkeypatch.undo()
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 10)  # Pillow's own bomb check
    with pytest.raises(DataError, match=r"not a readable image .*decompression bomb"):
        load_data(folder, cache_dir=tmp_path / "cache2")


def test_a_truncated_npz_is_named(tmp_path: Path) -> None:
    whole = write_npz(tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut.npz: not a readable \.npz file"):
        load_data(tmp_path / "cut.npz")


def test_an_npz_declaring_a_huge_array_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("x.npy", "w") as member:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
        np.lib.format.write_array_header_1_0(member, header)  # and no data at all
    with zipfile.ZipFile(path, "a") as archive, archive.open("y.npy", "w") as member:
        np.lib.format.write_array(member, np.zeros(3, np.int64))
    assert path.stat().st_size < 4096
    with pytest.raises(DataError, match="declare 4,000,000,000,024 bytes, over the limit"):
        load_data(path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(np.array([0, 1, 10**9] * 4), "label 1000000000 would make 1,000,000,001 classes"),
     (np.array([0, 1, 2**64 - 1] * 4, dtype=np.uint64), "label 18446744073709551615")],
)  # fmt: skip
def test_labels_that_would_make_too_many_classes_are_named(
    tmp_path: Path, labels: np.ndarray, message: str
) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((12, 1, 16, 16), np.uint8), y=labels)
    with pytest.raises(DataError, match=message):
        load_data(tmp_path / "d.npz")


def test_a_device_that_computes_nothing_is_refused() -> None:
    from jsma.models._external import resolve_device

    with pytest.raises(ModelError, match="unknown device 'meta'"):
        resolve_device("meta")


@pytest.mark.parametrize("option", [["--width", "100000"], ["--batch-size", "1000000000"]])
def test_gan_sizes_that_exhaust_memory_are_refused(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["gan", "train", "--out", "x", *option])
    assert stopped.value.code == 2
    assert "must be 1 to" in capsys.readouterr().err


def test_an_output_that_is_a_dangling_link_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "study").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SystemExit):
        main(["study", "create", str(tmp_path), "--out", str(tmp_path / "study")])
    assert "a link to nothing" in capsys.readouterr().err


class _Spinning(torch.nn.Module):
    """Its forward never returns to Python: a TorchScript loop in native code."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.sum()
        while bool(total > -1.0):
            total = total + 1.0
        return x.flatten(1)[:, :4]


@pytest.mark.slow  # a whole jsma process, signalled
def test_a_second_ctrl_c_stops_a_model_that_never_returns(tmp_path: Path) -> None:
    import signal
    import sys
    import time

    data = write_npz(tmp_path / "d.npz")
    torch.jit.script(_Spinning()).save(str(tmp_path / "spin.pt"))
    command = [sys.executable, "-m", "jsma.cli", "eval", "--data", str(data),
               "--model", str(tmp_path / "spin.pt")]  # fmt: skip
    process = popen_as_from_a_terminal(command)
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the data is read, the model comes next
            if line.startswith("classes:"):
                break
        time.sleep(4)  # loading the model, then spinning in the fit check
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        time.sleep(3)
        assert process.poll() is None  # Python's handler cannot run in native code
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Ctrl-C again stops at once" in err
    assert "stopped at once" in err


def test_a_one_class_npz_is_named_as_such(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", x=np.zeros((4, 1, 16, 16), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="every label is 0, one class"):
        load_data(tmp_path / "one.npz")


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--normalize", "0.5", "--std", "inf"], "--std positive ones"),
     (["--normalize", "nan", "--std", "1"], "finite values")],
)  # fmt: skip
def test_normalisation_must_be_finite(options: list[str], message: str) -> None:
    from jsma.models import ModelRef

    mean, std = float(options[1]), float(options[3])
    with pytest.raises(ModelError, match=message):
        ModelRef.parse("tests.userdata:build_small_cnn", mean=(mean,), std=(std,))


def test_a_complex_mask_is_not_a_mask(tmp_path: Path) -> None:
    import argparse

    from jsma.cli._common import feature_mask
    from jsma.errors import JSMAError

    np.save(tmp_path / "mask.npy", np.ones((1, 16, 16), np.complex64))
    with pytest.raises(JSMAError, match="expected bools"):
        feature_mask(argparse.Namespace(mask=tmp_path / "mask.npy"), (1, 16, 16))


def test_binary_campaigns_name_the_sample_not_the_batch_row(tmp_path: Path) -> None:
    from jsma.campaign import AttackSettings, Campaign, CampaignSpec
    from jsma.errors import ConfigurationError
    from tests.userdata import binary_features

    vectors, labels = binary_features(24, 0)
    vectors = vectors.astype(np.float32)
    vectors[13, 5] = 0.5  # the 14th sample: row 1 of the second unit of 12
    np.savez(tmp_path / "f.npz", x=vectors, y=labels)
    data = load_data(tmp_path / "f.npz")
    model = torch.nn.Sequential(torch.nn.Linear(vectors.shape[1], int(labels.max()) + 1))
    spec = CampaignSpec(samples=24, unit_size=12, attack=AttackSettings(binary=True))
    with pytest.raises(ConfigurationError, match=r"test sample 13 has feature 5 = 0\.5"):
        Campaign.run(tmp_path / "run", spec, model, data)
    assert not (tmp_path / "run").exists()


def test_a_mask_declaring_a_huge_shape_is_refused_unread(tmp_path: Path) -> None:
    import argparse

    from jsma.cli._common import feature_mask
    from jsma.errors import JSMAError

    def mask_file(shape: tuple[int, ...], data: int) -> argparse.Namespace:
        with (tmp_path / "mask.npy").open("wb") as handle:
            header = {"descr": "|b1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(handle, header)
            handle.write(b"\x01" * data)
        return argparse.Namespace(mask=tmp_path / "mask.npy")

    with pytest.raises(JSMAError, match=r"not a readable \.npy array"):  # 10**12 declared
        feature_mask(mask_file((10**6, 10**6), 64), (1, 16, 16))
    with pytest.raises(JSMAError, match="holds more values than one input"):
        feature_mask(mask_file((1000, 1000), 10**6), (1, 16, 16))


def test_null_labels_are_named_as_missing(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"x": [[0.5] * 4] * 4, "label": pa.array([0, 1, None, 1])})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(
        DataError, match=r"labels must be whole numbers, got missing values \(null\)"
    ):
        load_data(tmp_path / "t.parquet")


def test_a_data_location_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    # What a received campaign's manifest may name as its data: never waited on.
    os.mkfifo(tmp_path / "data.npz")
    with pytest.raises(DataError, match="not a regular file"):
        load_data(tmp_path / "data.npz")
