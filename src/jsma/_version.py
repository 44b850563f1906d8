"""The installed package's version, looked up once (what manifests, checkpoints and
the report record)."""

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__ = metadata.version("jsma")
except metadata.PackageNotFoundError:  # pragma: no cover - a source tree never installed
    __version__ = "0.0.0"
