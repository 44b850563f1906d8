"""The paper's experiments, each run end to end: the toy AND network (`toy`) and the
whole evaluation (`replicate`).

Import the modules themselves (`jsma.experiments.toy`, `jsma.experiments.replicate`):
they sit at different layers (the report reads the toy's stored results; `replicate`
writes a report), so this package imports neither.
"""

__all__: list[str] = []
