"""Deprecated: this module is `jsma.toy` since jsma 0.3; import it from there."""

import warnings

from jsma.toy import *  # noqa: F403
from jsma.toy import __all__  # noqa: F401

warnings.warn(
    "jsma.experiments.toy is now jsma.toy; this alias goes in jsma 0.4",
    DeprecationWarning,
    stacklevel=2,
)
