"""Counter-based randomness: numbers that depend only on their keys (a seed, a sample's
index, a step), the same on every machine and numpy version and in any batch."""

from __future__ import annotations

import numpy as np

__all__ = ["keyed_uniform", "splitmix64"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(values: np.ndarray | np.uint64) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-mixed hash of 64-bit integers."""
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keyed_uniform(keys: np.ndarray, *counters: int, size: int) -> np.ndarray:
    """Uniform floats in [0, 1), shape (len(keys), size): row i depends only on keys[i]
    and `counters` (each a small integer: a step, a purpose)."""
    with np.errstate(over="ignore"):
        state = splitmix64(np.asarray(keys, dtype=np.uint64))
        for counter in counters:
            state = splitmix64(state ^ splitmix64(np.uint64(counter)))
        z = splitmix64(state[:, None] + np.arange(size, dtype=np.uint64)[None, :] * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
