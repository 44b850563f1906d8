"""DataRef: one parse of every form `--data` takes, and the data it loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jsma.data import DataRef
from jsma.data._sources import DownloadSource, EmbeddedSource, IdxDirectorySource
from jsma.errors import DataError
from tests.conftest import write_idx_directory


def test_every_form_parses(tmp_path: Path) -> None:
    assert DataRef.parse() == DataRef(location="mnist")
    assert isinstance(DataRef.parse("MNIST").mnist_source, EmbeddedSource)
    assert isinstance(DataRef.parse("mnist:download").mnist_source, DownloadSource)
    idx = DataRef.parse(f"idx:{tmp_path}")
    assert isinstance(idx.mnist_source, IdxDirectorySource)
    assert idx.is_mnist
    assert str(idx) == f"idx:{tmp_path.resolve()}"
    table = DataRef.parse(tmp_path / "t.parquet", bounds=(-1, 1))
    assert (table.location, table.bounds, table.is_mnist) == (
        str(tmp_path / "t.parquet"), (-1.0, 1.0), False,
    )  # fmt: skip
    assert table.mnist_source is None
    assert DataRef.parse(table) is table


def test_bad_references_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a directory of IDX files"):
        DataRef.parse(f"idx:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="low < high"):
        DataRef.parse("x.npz", bounds=(1.0, 0.0))
    with pytest.raises(DataError, match="low < high"):
        DataRef.parse("x.npz", bounds=(0.0, float("nan")))
    with pytest.raises(DataError, match="no such file or directory"):
        DataRef.parse(tmp_path / "missing.npz").load()


def test_it_loads_what_it_names(tmp_path: Path) -> None:
    idx = write_idx_directory(tmp_path / "idx", train=10_010, test=8)
    data = DataRef.parse(f"idx:{idx}").load(cache_dir=tmp_path / "cache")
    assert (len(data.train), len(data.validation), len(data.test)) == (10, 10_000, 8)
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "f.npz",
        x_train=rng.uniform(-1, 1, (6, 4)).astype(np.float32), y_train=np.arange(6) % 2,
        x_test=rng.uniform(-1, 1, (4, 4)).astype(np.float32), y_test=np.arange(4) % 2,
    )  # fmt: skip
    features = DataRef.parse(tmp_path / "f.npz", bounds=(-2, 2)).load()
    assert features.bounds == (-2.0, 2.0)
    assert features.input_shape == (4,)
