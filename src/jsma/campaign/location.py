"""Where a campaign's files live: a local directory, or an object store through `pyarrow.fs`.

A campaign needs few things of its storage: read a file whole or by ranges
(Parquet footers), write a file so that readers see all of it or none, list
and delete leftovers, and keep a second driver out. `Folder` is that, twice:

- `LocalFolder`: a directory of this machine (or a shared file system):
  temporary file, fsync, rename; the lock is a `flock` the kernel drops when
  its holder dies.
- `ArrowFolder`: any `pyarrow.fs.FileSystem` (`s3://`, `gs://`, `hdfs://`,
  `file://` URIs): a temporary object moved into place (a rename, or a copy,
  which object stores make atomic); the lock is a lease object (`.lock`) that
  its holder renews while it runs and that expires when a killed holder stops
  renewing it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from jsma._io import atomic_write, ensure_writable
from jsma._records import dumps, load, loads_json
from jsma.errors import CampaignError, ConfigurationError, StorageError

__all__ = [
    "LOCK_NAME",
    "ArrowFolder",
    "Folder",
    "Lease",
    "LocalFolder",
    "folder_at",
]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Lease:
    """Who holds a bucket prefix's lock, the token that proves it, and until when."""

    KIND: ClassVar[str] = "campaign-lease"
    FORMAT: ClassVar[int] = 1  # 0: 0.2.0 (the same fields, no header)

    holder: str
    token: str
    expires: float  # seconds since the epoch


class Folder(Protocol):
    """A campaign's storage, addressed by names relative to its root (`units/x.parquet`)."""

    @property
    def name(self) -> str:
        """The last component of the root, for file names in reports."""
        ...

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        ...

    def open(self, name: str) -> pa.NativeFile:
        """The file for random access (Parquet readers fetch the footer alone)."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Put `data` at `name` atomically: readers see the old file or the whole new one."""
        ...

    def temporaries(self, folder: str) -> list[str]:
        """Names of the temporary files killed writers left in `folder`."""
        ...

    def delete(self, name: str) -> None: ...

    def check(self) -> None:
        """Raise `CampaignError` if the root is something other than a folder."""
        ...

    def ensure_writable(self, *folders: str) -> None:
        """Prove the root and `folders` take a file, or raise `StorageError` naming them."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the campaign's exclusive lock, or fail at once saying who holds it."""
        ...


def _holder() -> str:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()}, since {started}"


def _busy(where: object, holder: str, detail: str = "") -> CampaignError:
    return CampaignError(
        f"{where}: another run is using this campaign ({holder}); wait for it to finish or "
        f"stop it, then resume{detail}"
    )


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


@dataclass(frozen=True)
class LocalFolder:
    """A directory on this machine (or on a file system every worker mounts)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self, name: str) -> bool:
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def open(self, name: str) -> pa.NativeFile:
        return pa.OSFile(str(self.path / name))

    def write(self, name: str, data: bytes) -> None:
        with atomic_write(self.path / name) as handle:
            handle.write(data)

    def temporaries(self, folder: str) -> list[str]:
        where = self.path / folder
        found = where.glob(".*.tmp") if where.is_dir() else []
        return [f"{folder}/{path.name}" for path in found]

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise CampaignError(f"{self.path}: exists and is not a directory")

    def ensure_writable(self, *folders: str) -> None:
        ensure_writable(self.path, *(self.path / folder for folder in folders))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        # An advisory `flock` on `DIR/.lock`: the kernel drops it when its holder
        # exits, however it exits, so a killed run never leaves a stale lock.
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 1024, 0).decode(errors="replace").strip()
                raise _busy(self.path, holder or "another process") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder().encode(), 0)
            yield
        finally:
            os.close(fd)


@dataclass(frozen=True)
class ArrowFolder:
    """A folder of a `pyarrow.fs` file system: an object store bucket prefix, HDFS, ...

    `root` is the path inside `filesystem` (`bucket/prefix` for S3); `uri` is what
    people are shown. The lock is a lease of `lease_seconds`, renewed every third
    of it: a second driver is refused while the lease is fresh and takes over a
    lease its holder stopped renewing (killed). Writers that start within
    `settle_seconds` of each other are told apart by reading the lease back
    after that delay: the later one wins, the other is refused.
    """

    filesystem: pafs.FileSystem
    root: str
    uri: str = ""
    lease_seconds: float = 60.0
    settle_seconds: float = 1.0

    def __str__(self) -> str:
        return self.uri or f"{self.filesystem.type_name}:{self.root}"

    @property
    def name(self) -> str:
        return self.root.rstrip("/").rsplit("/", 1)[-1]

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def _io(self, doing: str, name: str, error: OSError) -> StorageError:
        return StorageError(f"{self}/{name}: cannot {doing} ({error})")

    def exists(self, name: str) -> bool:
        try:
            info = self.filesystem.get_file_info(self._path(name))
        except OSError as error:
            raise self._io("look up", name, error) from None
        return bool(info.type == pafs.FileType.File)

    def read(self, name: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(self._path(name)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._io("read", name, error) from None

    def open(self, name: str) -> pa.NativeFile:
        try:
            return self.filesystem.open_input_file(self._path(name))
        except FileNotFoundError:
            raise  # the caller's "absent" case, not a storage failure
        except OSError as error:
            raise self._io("read", name, error) from None

    def write(self, name: str, data: bytes) -> None:
        folder, _, base = name.rpartition("/")
        temporary = f"{folder + '/' if folder else ''}.{base}.{uuid.uuid4().hex}.tmp"
        try:
            self.filesystem.create_dir(self._path(folder) if folder else self.root, recursive=True)
            # The bytes are whole before the stream opens: a stream closed by an
            # exception would otherwise store what it had.
            with self.filesystem.open_output_stream(self._path(temporary)) as stream:
                stream.write(data)
            self.filesystem.move(self._path(temporary), self._path(name))
        except OSError as error:
            with contextlib.suppress(OSError):
                self.filesystem.delete_file(self._path(temporary))
            raise self._io("write", name, error) from None

    def temporaries(self, folder: str) -> list[str]:
        selector = pafs.FileSelector(self._path(folder), allow_not_found=True)
        try:
            infos = self.filesystem.get_file_info(selector)
        except OSError as error:
            raise self._io("list", folder, error) from None
        return [f"{folder}/{info.base_name}" for info in infos if _is_temporary(info.base_name)]

    def delete(self, name: str) -> None:
        try:
            self.filesystem.delete_file(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise self._io("delete", name, error) from None

    def check(self) -> None:
        try:
            info = self.filesystem.get_file_info(self.root)
        except OSError as error:
            raise StorageError(f"{self}: cannot be reached ({error})") from None
        if info.type == pafs.FileType.File:
            raise CampaignError(f"{self}: exists and is a file, not a folder")

    def ensure_writable(self, *folders: str) -> None:
        probe = f".jsma-probe-{uuid.uuid4().hex}"
        try:
            self.filesystem.create_dir(self.root, recursive=True)
            for folder in folders:
                self.filesystem.create_dir(self._path(folder), recursive=True)
            with self.filesystem.open_output_stream(self._path(probe)) as stream:
                stream.write(b"")
            self.filesystem.delete_file(self._path(probe))
        except OSError as error:
            raise StorageError(f"{self}: results cannot be written there ({error})") from None

    # --- the lease -----------------------------------------------------------------

    def _lease(self) -> Lease | None:
        data = self.read(LOCK_NAME)
        if data is None:
            return None
        try:
            return load(Lease, loads_json(data))
        except ValueError:  # malformed JSON, or a field missing or of the wrong type
            logger.warning("%s/%s: unreadable lease; taking it over", self, LOCK_NAME)
            return None

    def _put_lease(self, holder: str, token: str) -> None:
        self.write(LOCK_NAME, dumps(Lease(holder, token, time.time() + self.lease_seconds)))

    def _refuse_unless_free(self, token: str) -> None:
        lease = self._lease()
        if lease and lease.token != token and lease.expires > time.time():
            left = lease.expires - time.time()
            raise _busy(
                self, lease.holder, f" (if that run was killed, its lease ends in {left:.0f} s)"
            )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            # A directory of this machine: the kernel's lock, the one a driver given the
            # same directory as a plain path takes, so `DIR` and `file://DIR` exclude
            # each other (a lease and a flock would not see each other).
            with LocalFolder(Path(self.root)).lock():
                yield
            return
        token, holder = uuid.uuid4().hex, _holder()
        self._refuse_unless_free(token)
        self._put_lease(holder, token)
        time.sleep(self.settle_seconds)
        self._refuse_unless_free(token)  # another driver wrote after us: it holds the lease
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(holder, token, stop), name="jsma-lease", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            lease = self._lease()
            if lease and lease.token == token:
                self.delete(LOCK_NAME)

    def _renew(self, holder: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                lease = self._lease()
                if lease and lease.token != token:
                    logger.error("%s: another run took over this campaign's lease", self)
                    return
                self._put_lease(holder, token)
            except StorageError as error:  # a network hiccup: try again at the next turn
                logger.warning("%s: lease not renewed (%s)", self, error)


# The schemes `pyarrow.fs` opens; `file:/x` (no `//`) is a URI too, not a folder `file:`.
_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "mock")


def _is_uri(where: str) -> bool:
    scheme, colon, _ = where.partition(":")
    return "://" in where or (bool(colon) and scheme.lower() in _SCHEMES)


def folder_at(where: str | os.PathLike[str] | Folder) -> Folder:
    """The storage of a campaign at `where`: a `Folder` as is, a URI with a scheme
    (`s3://bucket/prefix`, `gs://...`, `file:///...`) through `pyarrow.fs`, anything
    else a local directory.

    A URI is taken exactly or refused: a `#` (which would cut the path short) or a
    query on a `file:` URI (which pyarrow drops) is a `ConfigurationError`; write
    `%23` for a `#` in a name.
    """
    if isinstance(where, os.PathLike):
        return LocalFolder(Path(where))
    if not isinstance(where, str):
        return where
    if not _is_uri(where):
        return LocalFolder(Path(where))
    if "#" in where:
        raise ConfigurationError(
            f"{where}: a storage URI has no '#' part (it would cut the path short); "
            "write %23 for a '#' in a name"
        )
    if where.lower().startswith("file:") and "?" in where:
        raise ConfigurationError(
            f"{where}: a file: URI takes no '?' options; write %3F for a '?' in a name"
        )
    try:
        filesystem, root = pafs.FileSystem.from_uri(where)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as error:
        raise ConfigurationError(
            f"{where}: not a storage URI pyarrow can open ({error}); use a local path or "
            "an s3://, gs://, hdfs:// or file:// URI"
        ) from None
    except OSError as error:  # a well-formed URI whose store cannot be reached
        raise StorageError(f"{where}: cannot be reached ({error})") from None
    return ArrowFolder(filesystem, root, uri=where.rstrip("/"))
