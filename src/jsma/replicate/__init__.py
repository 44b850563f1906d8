"""`jsma replicate`: the paper's evaluation end to end, in one call.

The API is what `__all__` lists; the rest of `_replicate` is private.
"""

from jsma.replicate._replicate import Replication, replicate

__all__ = [
    "Replication",
    "replicate",
]
