"""Comparing JSON-like records (specs, training settings) field by field, for messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["record_differences"]


def record_differences(stored: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """`field: stored X, asked Y` for each (dotted, nested) field where two records differ."""
    flat_stored, flat_asked = _flatten(stored), _flatten(asked)
    return [
        f"{key}: stored {flat_stored.get(key)!r}, asked {flat_asked.get(key)!r}"
        for key in sorted(flat_stored.keys() | flat_asked.keys())
        if flat_stored.get(key) != flat_asked.get(key)
    ]


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
