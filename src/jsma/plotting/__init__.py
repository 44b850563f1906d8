"""Plotting, in one place: the shared helpers (images, class matrices, PNG output) and
the figures of single attacks. Everything draws on matplotlib `Figure` objects, never
pyplot's global state, so figures can be made from any thread or process.

The API is what `__all__` lists; the rest of `_plotting` is private.
"""

from jsma.plotting._plotting import attack_figure, save_figure, show_image, targets_figure

__all__ = [
    "attack_figure",
    "save_figure",
    "show_image",
    "targets_figure",
]
