"""Transferability: do adversarial samples crafted on one model fool another?

The API is what `__all__` lists; the rest of `_transfer` is private.
"""

from jsma.transfer._transfer import (
    TransferResult,
    read_transfer,
    transfer,
    transfer_figure,
    write_transfer,
)

__all__ = [
    "TransferResult",
    "read_transfer",
    "transfer",
    "transfer_figure",
    "write_transfer",
]
