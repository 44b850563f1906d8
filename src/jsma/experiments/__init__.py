"""Deprecated: the paper's experiments now have their own homes, `jsma.toy` (the toy
AND network, beside the campaigns) and `jsma.replicate` (the whole evaluation, above
the report); `jsma.experiments.toy` and `jsma.experiments.replicate` still import,
with a `DeprecationWarning`, until jsma 0.4."""

__all__: list[str] = []
