"""An unpickler that rebuilds numpy arrays and nothing else.

The classic `mnist.pkl.gz` is a pickle, and a pickle can name any callable to
run. This loader resolves only the three globals that numpy arrays need, so a
file that tries to call `os.system` (or anything else) is refused.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from typing import Any

import numpy as np

from jsma.errors import DataError


def _numpy_reconstruct() -> Any:
    # numpy 2 moved numpy.core to numpy._core; pickles from either era name one.
    try:
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy < 1.26
        module = importlib.import_module("numpy.core.multiarray")
    return module._reconstruct


__all__: list[str] = []  # internal to the package

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes the raw bytes of an array at protocol 2 as
    # _codecs.encode(text, "latin1"); it only turns text into bytes.
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed"
            ) from None


def safe_load_arrays(payload: bytes, *, origin: str) -> Any:
    """Unpickle `payload`, allowing only numpy array reconstruction.

    `origin` names the file in error messages. Python 2 pickles (like the
    classic MNIST file) are read with the latin-1 encoding that numpy needs.
    """
    try:
        return _ArrayUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{origin}: unsafe or invalid pickle: {error}") from error
    except (EOFError, ValueError, TypeError, IndexError, AttributeError) as error:
        raise DataError(f"{origin}: damaged pickle data ({error})") from error
