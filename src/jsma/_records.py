"""JSON records: one way to write and read every JSON document jsma makes.

A record is a frozen dataclass with two class attributes, `KIND` (what it is:
"detection", "campaign", ...) and `FORMAT` (an integer raised whenever its layout
changes). `dump` writes its fields under a `{"format": N, "kind": ...}` header;
`load` reads them back by the dataclass's own type hints, checking every field and
naming the one that is wrong (`points[0].threshold: expected a number, got 'x'`).

A document of an older format is first handed to the class's `upgraded(data,
format)` classmethod, which rewrites it into today's layout: that is where what
earlier versions wrote keeps reading (format 0: no `format` key, written before
headers existed, so that every key, `kind` included, is a field).
Strict JSON only: NaN is written as null (read back as NaN where a float is
expected), infinities as "inf" / "-inf".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np

from jsma._io import atomic_write
from jsma.errors import JSMAError

__all__ = [
    "Record",
    "RecordError",
    "decode",
    "dump",
    "dumps",
    "encode",
    "flatten",
    "load",
    "loads_json",
    "read_record",
    "record_differences",
    "write_record",
]

_HEADER = ("format", "kind")


class RecordError(ValueError):
    """A document that is not a valid record of the asked kind; names the field."""


class Record(Protocol):
    KIND: ClassVar[str]
    FORMAT: ClassVar[int]


R = TypeVar("R", bound=Record)
T = TypeVar("T")


def loads_json(text: str | bytes) -> Any:
    """`json.loads`, with a document nested too deeply for the parser (a hostile file)
    a `ValueError` like any other malformed JSON, not a `RecursionError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# --- writing ---------------------------------------------------------------------


def encode(value: Any) -> Any:
    """`value` as strict JSON values: dataclasses as objects of their fields, tuples
    and arrays as lists, paths as strings, NaN as null, infinities as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bool | str | None):
        return value
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    raise TypeError(f"cannot write a {type(value).__name__} into a JSON record")


def dump(record: Record) -> dict[str, Any]:
    """The record as a JSON object: the header, then its fields."""
    kind = type(record)
    fields = encode(record)
    clash = set(_HEADER) & fields.keys()
    if clash:  # a programming error: the header names are reserved
        raise TypeError(f"{kind.__name__} has a field named {sorted(clash)[0]!r}")
    return {"format": kind.FORMAT, "kind": kind.KIND, **fields}


def dumps(record: Record) -> bytes:
    """`dump` as indented UTF-8 JSON text."""
    return json.dumps(dump(record), indent=2, allow_nan=False).encode()


def write_record(path: Path, record: Record) -> Path:
    """Write `record` to `path` atomically (readers never see half a file)."""
    with atomic_write(path) as handle:
        handle.write(dumps(record))
    return path


# --- reading ---------------------------------------------------------------------


def load(cls: type[R], data: Any) -> R:
    """The record of class `cls` that `data` (a parsed JSON object) holds.

    Raises `RecordError` naming the problem: another kind, a format newer than this
    jsma reads, a missing or unexpected field, a value of the wrong type."""
    if not isinstance(data, dict):
        raise RecordError(f"a {cls.KIND} record is a JSON object, not {_shown(data)}")
    kind, current = cls.KIND, cls.FORMAT
    if "format" not in data:  # written before headers: every key is a field
        return typing.cast(R, _decode_dataclass(cls, _upgraded(cls, dict(data), 0), ""))
    version = data["format"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RecordError(f"format must be a whole number, got {_shown(version)}")
    if version > current:
        raise RecordError(
            f"{kind} record of format {version}, written by a newer jsma (this one reads "
            f"formats up to {current}): upgrade jsma"
        )
    if "kind" in data and data["kind"] != kind:
        raise RecordError(f"a {_shown(data['kind'])} record, not a {kind} record")
    if "kind" not in data and version == current:
        raise RecordError(f"no kind in the header (a {kind} record of format {version} has one)")
    fields = {key: value for key, value in data.items() if key not in _HEADER}
    if version < current:
        fields = _upgraded(cls, fields, version)
    return typing.cast(R, _decode_dataclass(cls, fields, ""))


def decode(cls: type[T], data: Any, where: str = "") -> T:
    """The dataclass `cls` from its fields in `data` (no header: a part of a record),
    checked by its type hints like `load`; `where` prefixes the field names in errors."""
    return typing.cast(T, _decode_dataclass(cls, data, where))


def _upgraded(cls: type, fields: dict[str, Any], version: int) -> Any:
    """Older formats' fields in today's layout (as they are, for a class whose layout
    only ever grew fields with defaults)."""
    upgrade = getattr(cls, "upgraded", None)
    return fields if upgrade is None else upgrade(fields, version)


def read_record(cls: type[R], path: Path, *, missing: str) -> R:
    """The record stored at `path`; a `JSMAError` naming the file when it is absent
    (`missing` says what to run to make one) or damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JSMAError(f"{path}: {missing}") from None
    except OSError as error:
        raise JSMAError(f"{path}: unreadable ({error})") from None
    try:
        return load(cls, loads_json(text))
    except ValueError as error:  # RecordError, or malformed JSON
        raise JSMAError(f"{path}: not a valid {cls.KIND} record ({error})") from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecordError(f"{where or 'the record'}: expected an object, got {_shown(data)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unexpected = sorted(data.keys() - fields.keys())
    if unexpected:
        raise RecordError(f"{where}{'.' if where else ''}{unexpected[0]}: unexpected field")
    values = {}
    for name, field in fields.items():
        here = f"{where}.{name}" if where else name
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise RecordError(f"{here}: missing")
            continue
        values[name] = _decode(hints[name], data[name], here)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # the class's own checks (__post_init__)
        raise RecordError(f"{where or cls.__name__}: {error}") from None


def _decode(kind: Any, value: Any, where: str) -> Any:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if kind is type(None):
        if value is not None:
            raise RecordError(f"{where}: expected null, got {_shown(value)}")
        return None
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in arguments:
            if option is type(None):
                continue
            try:
                return _decode(option, value, where)
            except RecordError as error:
                errors.append(str(error))
        raise RecordError(
            errors[0] if len(errors) == 1 else f"{where}: {_shown(value)} fits none of its types"
        )
    if origin is Literal:
        if isinstance(value, bool) or value not in arguments:  # no record has a bool Literal
            raise RecordError(
                f"{where}: expected one of {', '.join(map(repr, arguments))}, got {_shown(value)}"
            )
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where}: expected true or false, got {_shown(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected a whole number, got {_shown(value)}")
        return value
    if kind is float:
        return _float(value, where)
    if kind is str:
        if not isinstance(value, str):
            raise RecordError(f"{where}: expected a string, got {_shown(value)}")
        return value
    if kind is Path:
        return Path(_decode(str, value, where))
    if kind is np.ndarray:
        return np.asarray(_numbers(value, where), dtype=np.float64)
    if origin is tuple:
        items = _decode(list, value, where)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(
                _decode(arguments[0], item, f"{where}[{i}]") for i, item in enumerate(items)
            )
        if len(items) != len(arguments):
            raise RecordError(f"{where}: expected {len(arguments)} values, got {len(items)}")
        return tuple(
            _decode(a, item, f"{where}[{i}]")
            for i, (a, item) in enumerate(zip(arguments, items, strict=True))
        )
    if kind is list or origin in (list, Sequence):
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {_shown(value)}")
        item_kind = arguments[0] if arguments else Any
        return [_decode(item_kind, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict or origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {_shown(value)}")
        item_kind = arguments[1] if arguments else Any
        return {key: _decode(item_kind, item, f"{where}.{key}") for key, item in value.items()}
    if dataclasses.is_dataclass(kind):
        return _decode_dataclass(typing.cast(type, kind), value, where)
    raise TypeError(f"{where}: records cannot hold a {kind!r}")  # a programming error


def _float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}: expected a number, got {_shown(value)}")
    return value  # an int stays an int: what is read writes back the same (digests hold)


def _numbers(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_numbers(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return _float(value, where)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- comparing -------------------------------------------------------------------


def record_differences(stored: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """`field: stored X, asked Y` for each (dotted, nested) field where two records differ."""
    flat_stored, flat_asked = flatten(stored), flatten(asked)
    return [
        f"{key}: stored {flat_stored.get(key)!r}, asked {flat_asked.get(key)!r}"
        for key in sorted(flat_stored.keys() | flat_asked.keys())
        if flat_stored.get(key) != flat_asked.get(key)
    ]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as one level of dotted keys: `{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
