"""The paper's toy example (Section III): a tiny network learns the Boolean AND.

The API is what `__all__` lists; the rest of `_toy` is private.
"""

from jsma.toy._toy import (
    ToyRecord,
    craft_toy,
    read_toy,
    run_toy,
    toy_figure,
    toy_surfaces,
    train_and_network,
)

__all__ = [
    "ToyRecord",
    "craft_toy",
    "read_toy",
    "run_toy",
    "toy_figure",
    "toy_surfaces",
    "train_and_network",
]
