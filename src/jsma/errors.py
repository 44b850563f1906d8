"""The exceptions that `jsma` raises, in one place.

Every error derives from `JSMAError`, so a caller can catch the library's own
failures without catching programming errors. Each also derives from the
builtin that describes it best (`ValueError`, `FileNotFoundError`), so code
that already handles those keeps working.
"""

from __future__ import annotations

__all__ = [
    "CampaignError",
    "CheckpointError",
    "ConfigurationError",
    "DataError",
    "InputTypeError",
    "Interrupted",
    "JSMAError",
    "MissingDependencyError",
    "ModelError",
    "OracleError",
    "QueryBudgetError",
    "StorageError",
    "TrainingError",
]


class JSMAError(Exception):
    """Base class of every error raised by `jsma`."""


class DataError(JSMAError, ValueError):
    """A data file is missing, damaged or not what it claims to be.

    The message names the file and the problem.
    """


class ConfigurationError(JSMAError, ValueError):
    """A setting, argument or option value that is not allowed; the message says which."""


class InputTypeError(JSMAError, TypeError):
    """An argument of the wrong type (a tensor's dtype, a model's output); the message says
    what is accepted."""


class CampaignError(JSMAError, ValueError):
    """A campaign directory that cannot be used as asked (absent, mismatched, damaged, busy)."""


class CheckpointError(JSMAError, ValueError):
    """A model checkpoint cannot be read or does not fit the architecture."""


class ModelError(JSMAError, ValueError):
    """The model under attack misbehaves: outputs or derivatives that are not finite.

    `rows` are the batch rows where it happened (empty when not row-specific).
    """

    def __init__(self, problem: str, rows: tuple[int, ...] = ()) -> None:
        self.problem, self.rows = problem, rows
        where = ""
        if rows:
            shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
            where = f" for batch rows {shown} ({len(rows)} in all)"
        super().__init__(f"{problem}{where}")

    def at(self, rows: tuple[int, ...]) -> ModelError:
        """The same error, its rows renamed (rows[i] for each stored row i)."""
        return ModelError(self.problem, tuple(rows[i] for i in self.rows))


class TrainingError(JSMAError, RuntimeError):
    """Training ended with a model that did not learn (about chance accuracy)."""


class StorageError(JSMAError, OSError):
    """A directory where results must go cannot be written (checked before the work)."""


class OracleError(JSMAError, RuntimeError):
    """An oracle (a model answering queries) that cannot be reached, refused a query, or
    answered with something jsma cannot read; the message names the oracle and why."""


class QueryBudgetError(OracleError):
    """More queries asked than the budget has left; nothing was sent."""


class MissingDependencyError(JSMAError, ImportError):
    """An optional dependency that this feature needs is not installed."""


class Interrupted(KeyboardInterrupt):
    """Long work stopped by Ctrl-C; the message says what was kept and how to go on.

    A `KeyboardInterrupt`, not a `JSMAError`: code that catches the library's errors
    does not swallow the user's Ctrl-C.
    """
