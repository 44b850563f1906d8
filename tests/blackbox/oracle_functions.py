"""Functions that tests name as oracles (`fn:tests.blackbox.oracle_functions:...`)."""

from __future__ import annotations

import numpy as np

CALLS: list[int] = []


def first_pixel_labels(inputs: np.ndarray) -> np.ndarray:
    """Labels only: 1 where the first value is above one half."""
    CALLS.append(len(inputs))
    return (inputs.reshape(len(inputs), -1)[:, 0] > 0.5).astype(np.int64)


def wrong_shape(inputs: np.ndarray) -> np.ndarray:
    return np.zeros((len(inputs), 2, 2))


NOT_CALLABLE = 3


def recording(inputs: np.ndarray) -> np.ndarray:
    """Labels, after writing a digest of each input it was sent to JSMA_TEST_RECEIVED
    (durably, before answering: what a server counts)."""
    import hashlib
    import os

    lines = "".join(hashlib.sha256(row.tobytes()).hexdigest() + "\n" for row in inputs)
    with open(os.environ["JSMA_TEST_RECEIVED"], "a") as handle:
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())
    return (inputs.reshape(len(inputs), -1).sum(axis=1) > inputs[0].size / 2).astype(np.int64)
