"""A user's own data: `.npz` files, image folders and Parquet tables, each read as the
same `Dataset`, every conversion said, every bad input one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from jsma.data import load_data
from jsma.data._files import read_npz
from jsma.data._sources import CACHE_ENV_VAR
from jsma.errors import DataError
from tests.userdata import (
    CLASS_NAMES,
    binary_features,
    colour_images,
    write_image_folder,
    write_npz,
    write_parquet,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image folders are cached in the jsma cache: each test has its own."""
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))


def test_a_npz_of_named_colour_images(tmp_path: Path) -> None:
    data = load_data(write_npz(tmp_path / "small.npz"))
    assert data.input_shape == (3, 16, 16)
    assert data.is_images
    assert data.class_names == CLASS_NAMES
    assert data.num_classes == 4
    assert data.bounds == (0.0, 1.0)
    assert (len(data.train), len(data.validation), len(data.test)) == (64, 0, 16)
    x, y = data.test.tensors()
    images, labels = colour_images(16, 2)
    assert torch.equal(x, torch.from_numpy(images).float() / 255)  # k / 255, not MNIST's 256
    assert torch.equal(y, torch.from_numpy(labels))
    assert data.location == str((tmp_path / "small.npz").resolve())
    shown = "\n".join(data.describe())
    assert "3,072 features" not in shown
    assert "768 features" in shown
    assert "classes: 4 (cat, dog, frog, ship)" in shown
    assert "8-bit values k read as k / 255" in shown


def test_layouts_and_value_ranges_are_converted_and_said(tmp_path: Path) -> None:
    images, labels = colour_images(8, 3)
    signed = images.transpose(0, 2, 3, 1).astype(np.float32) / 127.5 - 1  # NHWC in [-1, 1]
    np.savez(tmp_path / "nhwc.npz", x=signed, y=labels)
    data = load_data(tmp_path / "nhwc.npz")
    assert data.input_shape == (3, 16, 16)
    assert data.bounds == (-1.0, 1.0)
    assert np.array_equal(data.test.images, signed.transpose(0, 3, 1, 2))
    assert len(data.train) == 0
    assert data.class_names is None
    notes = " ".join(data.notes)
    assert "channels-last" in notes
    assert "bounds [-1, 1]" in notes
    assert "test split" in notes

    np.savez(tmp_path / "gray.npz", x_train=images[:, 0], y_train=labels)
    assert load_data(tmp_path / "gray.npz").input_shape == (1, 16, 16)

    wide = images.astype(np.float32)  # 0..255 as floats: not guessed
    np.savez(tmp_path / "wide.npz", x=wide, y=labels)
    with pytest.raises(DataError, match=r"values span \[0, 2\d\d\].*--bounds LO HI"):
        load_data(tmp_path / "wide.npz")
    assert load_data(tmp_path / "wide.npz", bounds=(0.0, 255.0)).bounds == (0.0, 255.0)
    raw = load_data(write_npz(tmp_path / "raw.npz"), bounds=(0.0, 255.0))
    assert torch.equal(raw.test.tensors()[0], torch.from_numpy(colour_images(16, 2)[0]).float())


def test_binary_feature_vectors(tmp_path: Path) -> None:
    vectors, labels = binary_features(40, 0)
    np.savez(
        tmp_path / "features.npz", x_train=vectors, y_train=labels, x_test=vectors, y_test=labels
    )
    data = load_data(tmp_path / "features.npz")
    assert data.input_shape == (64,)
    assert not data.is_images
    assert data.num_classes == 2
    x, _ = data.train.tensors()
    assert x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert "boolean features read as 0 and 1" in data.notes


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 8), np.float32), "y": np.array([0, 1, 2, 5]),
          "class_names": np.array(["a", "b", "c"])},
         r"label 5 is out of range for 3 classes \(0 to 2\)"),
        ({"x": np.full((4, 8), np.nan, np.float32), "y": np.arange(4)},
         r"\(test\): sample 0 has NaN or infinite values \(4 such samples\)"),
        ({"x": np.zeros((4, 8), np.float32), "y": np.array([0.0, 1, 1, 0])},
         "labels must be whole numbers"),
        ({"x": np.zeros((4, 8), np.float32), "y": np.arange(3)},
         r"\(3,\) labels for 4 inputs"),
        ({"x_train": np.zeros((4, 8), np.float32), "y_train": np.arange(4),
          "x_extra": np.zeros((4, 8))},
         "x_extra: not a split jsma knows"),
        ({"x_train": np.zeros((4, 8), np.float32), "y_train": np.arange(4),
          "x_test": np.zeros((4, 9), np.float32), "y_test": np.arange(4)},
         r"inputs of shape \(9,\), the other splits' are \(8,\)"),
        ({"x": np.zeros((4, 5, 5, 5), np.float32), "y": np.arange(4)},
         "neither 1, 3 nor 4 channels"),
    ],
)  # fmt: skip
def test_bad_arrays_each_give_one_clear_error(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=message):
        read_npz(tmp_path / "bad.npz")


def test_a_npz_that_needs_unpickling_is_refused(tmp_path: Path) -> None:
    names = np.array(["a", "b", {"not": "a string"}], dtype=object)
    np.savez(tmp_path / "objects.npz", x=np.zeros((3, 4)), y=np.arange(3), class_names=names)
    with pytest.raises(DataError, match="holds Python objects, which jsma never unpickles"):
        load_data(tmp_path / "objects.npz")


def test_an_image_folder_reads_as_the_npz_does(tmp_path: Path) -> None:
    from_folder = load_data(write_image_folder(tmp_path / "folder"))
    from_npz = load_data(write_npz(tmp_path / "same.npz"))
    assert from_folder.class_names == CLASS_NAMES  # from the folder names, sorted
    for split in ("train", "test"):
        # PNGs in class order: the same samples, grouped by class.
        a, b = from_folder.split(split), from_npz.split(split)
        order = np.argsort(b.labels, kind="stable")
        assert np.array_equal(a.images, b.images[order])
        assert np.array_equal(a.labels, b.labels[order])
    assert from_folder.bounds == (0.0, 1.0)
    assert from_folder.test.scale == 255


def test_an_image_folder_is_decoded_once_while_its_files_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_image_folder(tmp_path / "mixed", train=8, test=4)
    Image.new("L", (16, 16), 100).save(folder / "test" / "cat" / "gray.png")
    first = load_data(folder)
    entries = sorted((tmp_path / "cache" / "image-folders").glob("*.npz"))
    assert len(entries) == 2  # one per split

    opened: list[object] = []
    original = Image.open

    def spy(*args: object, **kwargs: object) -> object:
        opened.append(args[0])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", spy)
    again = load_data(folder)
    assert opened == []  # read from the cache
    assert again.notes == first.notes  # the decoding's notes come back with it
    for split in ("train", "test"):
        assert np.array_equal(again.split(split).images, first.split(split).images)
        assert np.array_equal(again.split(split).labels, first.split(split).labels)

    # A changed file is a new key: its split is decoded again, with the new pixels.
    Image.new("L", (16, 16), 7).save(folder / "test" / "cat" / "gray.png")
    changed = load_data(folder)
    assert len(opened) == 5  # the test split's 4 + 1 files; train still cached
    assert not np.array_equal(changed.test.images, first.test.images)

    # A damaged entry is decoded again and rewritten, not trusted.
    opened.clear()
    for entry in (tmp_path / "cache" / "image-folders").glob("*.npz"):
        entry.write_bytes(b"not a zip")
    repaired = load_data(folder)
    assert len(opened) == 13
    assert np.array_equal(repaired.train.images, first.train.images)
    assert load_data(folder).describe() == repaired.describe()
    assert len(opened) == 13  # rewritten: the third read decoded nothing


def test_bad_image_folders(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "sizes", train=8, test=4)
    Image.new("RGB", (17, 16)).save(folder / "train" / "dog" / "odd.png")
    with pytest.raises(
        DataError, match=r"images of different sizes: .*16x16, train/dog/odd.png is 17x16"
    ):
        load_data(folder)

    lonely = tmp_path / "one-class"
    (lonely / "train" / "cat").mkdir(parents=True)
    Image.new("L", (8, 8)).save(lonely / "train" / "cat" / "a.png")
    with pytest.raises(DataError, match=r"needs at least two class folders.*only 'cat'"):
        load_data(lonely)

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds train/, test/"):
        load_data(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file or directory"):
        load_data(tmp_path / "nowhere")


def test_gray_beside_colour_is_converted_and_said(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "mixed", train=8, test=4)
    Image.new("L", (16, 16), 100).save(folder / "test" / "cat" / "gray.png")
    data = load_data(folder)
    assert data.input_shape == (3, 16, 16)
    assert any("grayscale images converted to RGB" in note for note in data.notes)


def test_a_parquet_table_as_hubs_store_it(tmp_path: Path) -> None:
    data = load_data(write_parquet(tmp_path / "table.parquet"))
    npz = load_data(write_npz(tmp_path / "same.npz"))
    assert data.class_names == CLASS_NAMES  # from the hub's metadata
    assert np.array_equal(data.train.images, npz.train.images)
    assert np.array_equal(data.test.labels, npz.test.labels)


def test_a_parquet_folder_of_split_files_with_array_columns(tmp_path: Path) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    for split, seed in (("train", 1), ("test", 2)):
        vectors, labels = binary_features(10, seed)
        table = pa.table({"features": vectors.astype(np.float32).tolist(), "label": labels})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    data = load_data(folder)
    assert data.input_shape == (64,)
    assert (len(data.train), len(data.test)) == (10, 10)
    pq.write_table(pa.table({"pixels": [[0.0]], "name": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="needs a label column"):
        load_data(tmp_path / "bad.parquet")


def test_decoding_images_shows_a_bar_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_image_folder(tmp_path / "folder", train=8, test=4)
    load_data(folder, cache_dir=tmp_path / "one")
    assert "image" not in capsys.readouterr().err
    load_data(folder, progress=True, cache_dir=tmp_path / "two")
    assert "reading train" in capsys.readouterr().err
