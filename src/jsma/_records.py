"""JSON records: read safely, and compared field by field for messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["loads_json", "record_differences"]


def loads_json(text: str | bytes) -> Any:
    """`json.loads`, with a document nested too deeply for the parser (a hostile file)
    a `ValueError` like any other malformed JSON, not a `RecursionError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


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
