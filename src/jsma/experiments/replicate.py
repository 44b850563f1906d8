"""Deprecated: this module is `jsma.replicate` since jsma 0.3; import it from there."""

import warnings

from jsma.replicate import *  # noqa: F403
from jsma.replicate import __all__  # noqa: F401

warnings.warn(
    "jsma.experiments.replicate is now jsma.replicate; this alias goes in jsma 0.4",
    DeprecationWarning,
    stacklevel=2,
)
