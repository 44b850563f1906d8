"""The exceptions that `jsma` raises, in one place.

Every error derives from `JSMAError`, so a caller can catch the library's own
failures without catching programming errors. Each also derives from the
builtin that describes it best (`ValueError`, `FileNotFoundError`), so code
that already handles those keeps working.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "DataError", "JSMAError", "MissingDependencyError"]


class JSMAError(Exception):
    """Base class of every error raised by `jsma`."""


class DataError(JSMAError, ValueError):
    """A data file is missing, damaged or not what it claims to be.

    The message names the file and the problem.
    """


class CheckpointError(JSMAError, ValueError):
    """A model checkpoint cannot be read or does not fit the architecture."""


class MissingDependencyError(JSMAError, ImportError):
    """An optional dependency that this feature needs is not installed."""
