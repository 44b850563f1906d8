"""Loading a `torch.export` `.pt2` archive without running anything it carries.

`torch.export.load` is not safe on a file someone sent (its docstring says so): it
unpickles with `weights_only=False` any weight or constant flagged `use_pickle`, the
sample inputs when the restricted unpickler refuses them, and the members of older
archive layouts; it `sympify`s (Python's `eval`) every symbolic-shape expression; it
`exec`s the program's guard code in `.module()`; it `dlopen`s AOTInductor libraries;
and a graph node may name any attribute of `torch` as the function it calls.

So the archive is read here first, from the bytes that are then loaded (no second
read of the file): only the members of a plain exported program are allowed, no
member may need unpickling, every expression must be arithmetic on shape symbols,
every node must call an ATen or prims operator (none that opens a file), a listed
higher-order operator or plain arithmetic, and the declared sizes must stay under
`MAX_MODEL_BYTES`. Then torch loads it and `.module(check_guards=False)` builds it.
What remains is what any program does: its operators run on your inputs.
"""

from __future__ import annotations

import io
import json
import os
import re
import tokenize
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from jsma.errors import ModelError

__all__: list[str] = []  # internal: `load_model` is the way in

MAX_MODEL_BYTES = int(os.environ.get("JSMA_MAX_MODEL_BYTES", 4 << 30))
"""The most bytes a model archive may unpack to (4 GiB; `JSMA_MAX_MODEL_BYTES` changes it):
a small file that declares more (a zip bomb) is refused before anything is allocated."""

# The members of an archive `torch.export.save` writes for one program (torch 2.5-2.13),
# below its root folder. Anything else (AOTInductor libraries, pickled custom or opaque
# objects, the legacy `weights/model.pt` pickles, the pre-2.8 layout) is refused by name.
_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/sample_inputs/model\.pt"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+)"
)

# ATen operators that open a file by name (every schema with a `filename` argument in
# torch 2.13; tests/models check the list against the running torch).
FILE_OPERATORS = frozenset({"from_file", "save"})

_HIGHER_ORDER = frozenset(
    {"cond", "while_loop", "map_impl", "scan", "associative_scan", "wrap_with_set_grad_enabled",
     "wrap_with_autocast"}
)  # fmt: skip
_OPERATOR = frozenset(
    {"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs",
     "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift",
     "rshift"}
)  # fmt: skip
_TORCH = frozenset(
    {"sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_sqrt", "sym_ite", "sym_sum",
     "_check", "_check_is_size"}
)  # fmt: skip

# What a symbolic-shape expression may name: sympy's constructors and relations, the
# functions torch registers for shapes, and the shape symbols themselves (s0, u12, ...).
_EXPRESSION_NAMES = frozenset(
    {"Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs",
     "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "LessThan", "StrictGreaterThan",
     "GreaterThan", "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "ITE",
     "floor", "ceiling", "sqrt", "oo", "zoo", "nan", "true", "false", "True", "False", "None",
     "integer", "positive", "negative", "nonnegative", "nonpositive", "real", "finite",
     "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
     "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
     "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt",
     "RoundToInt", "RoundDecimal", "ToFloat", "Identity"}
)  # fmt: skip
_SHAPE_SYMBOL = re.compile(r"[a-z]{1,8}\d+")
_QUOTED_SYMBOL = re.compile(r"'[a-z]{1,8}\d+'|\"[a-z]{1,8}\d+\"")
_EXPRESSION_OPERATORS = frozenset(
    {"+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "=", "<", ">", "<=", ">=", "==", "!=",
     "&", "|", "~"}
)  # fmt: skip


def _refuse(name: str, why: str) -> ModelError:
    return ModelError(
        f"{name}: {why}; jsma loads only a plain torch.export program that needs no "
        "unpickling (save it again with torch.export.save from torch 2.5 or later)"
    )


def _is_expression_name(name: str) -> bool:
    return name in _EXPRESSION_NAMES or _SHAPE_SYMBOL.fullmatch(name) is not None


def _check_expression(text: str, name: str) -> None:
    """Refuse a shape expression that is not arithmetic on symbols: sympy evaluates it
    with Python's `eval`, so any name or attribute there could run code."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        raise _refuse(name, f"a shape expression that does not parse: {text[:80]!r}") from None
    for token in tokens:
        value = token.string
        allowed = (
            token.type in (tokenize.NUMBER, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.NL)
            or (token.type == tokenize.OP and value in _EXPRESSION_OPERATORS)
            or (token.type == tokenize.NAME and _is_expression_name(value))
            or (token.type == tokenize.STRING and _QUOTED_SYMBOL.fullmatch(value) is not None)
        )
        if not allowed:
            raise _refuse(
                name, f"a shape expression that is not arithmetic on shape symbols ({value!r} "
                f"in {text[:80]!r})"
            )  # fmt: skip


def _check_target(target: str, name: str) -> None:
    """Refuse a graph node that calls anything but an operator the list above allows."""
    parts = target.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) >= 4:
        namespace, operator = parts[2], parts[3]
        if namespace in ("aten", "prims") and operator not in FILE_OPERATORS:
            return
        if namespace == "higher_order" and operator in _HIGHER_ORDER and len(parts) == 4:
            return
        if namespace == "aten":
            raise _refuse(name, f"its graph calls {target}, which opens a file")
    elif len(parts) == 2 and (
        (parts[0] == "_operator" and parts[1] in _OPERATOR)
        or (parts[0] == "math" and parts[1].isidentifier() and not parts[1].startswith("_"))
        or (parts[0] == "torch" and parts[1] in _TORCH)
    ):
        return
    raise _refuse(name, f"its graph calls {target!r}, which is not an ATen operator")


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                yield key, inner
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _check_program(document: Any, name: str) -> None:
    for key, value in _walk(document):
        if key == "expr_str":
            if not isinstance(value, str):
                raise _refuse(name, "a shape expression that is not text")
            _check_expression(value, name)
        elif key == "target" and isinstance(value, str):
            _check_target(value, name)


def _check_payloads(config: Any, name: str, member: str) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(name, f"{member} is not a payload list")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("use_pickle") is not False:
            raise _refuse(name, f"{fqn} is stored pickled (use_pickle), which jsma never loads")
        path = entry.get("path_name")
        if not isinstance(path, str) or not re.fullmatch(r"(weight|tensor)_\d+", path):
            raise _refuse(name, f"{fqn} is stored as {path!r}, not as raw tensor bytes")


def check_exported_archive(blob: bytes, name: str, *, limit: int | None = None) -> None:
    """Refuse (`ModelError`, naming `name` and the reason) a `.pt2` archive that loading
    could make run code, unpickle, or unpack to more than `limit` bytes."""
    limit = MAX_MODEL_BYTES if limit is None else limit
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ModelError(f"{name}: not a readable .pt2 archive ({error})") from None
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise ModelError(
            f"{name}: unpacks to {total:,} bytes, over the limit of {limit:,} "
            "(JSMA_MAX_MODEL_BYTES raises it)"
        )
    roots = {info.filename.partition("/")[0] for info in infos}
    if len(roots) != 1:
        raise _refuse(name, "its members are not under one root folder")
    members = {info.filename.partition("/")[2]: info.filename for info in infos}
    for member in members:
        if not _MEMBERS.fullmatch(member):
            raise _refuse(name, f"it carries {member!r}, which is not part of a plain program")
    for needed in ("models/model.json", "archive_version", "data/sample_inputs/model.pt"):
        if needed not in members:
            raise _refuse(name, f"it has no {needed}")

    def document(member: str) -> Any:
        try:
            return json.loads(archive.read(members[member]))
        except (ValueError, zipfile.BadZipFile, OSError) as error:
            raise _refuse(name, f"{member} is not readable JSON ({error})") from None

    for config in ("data/weights/model_weights_config.json",
                   "data/constants/model_constants_config.json"):  # fmt: skip
        if config in members:
            _check_payloads(document(config), name, config)
    _check_program(document("models/model.json"), name)
    # The sample inputs: torch retries a refused restricted load with full unpickling,
    # so the restricted load must succeed here, on the same bytes.
    try:
        torch.load(
            io.BytesIO(archive.read(members["data/sample_inputs/model.pt"])),
            map_location="cpu", weights_only=True,
        )  # fmt: skip
    except Exception as error:  # an UnpicklingError for anything but tensors
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise _refuse(name, f"its sample inputs need unpickling ({first[:200]})") from None


def load_exported(blob: bytes, name: str) -> nn.Module:
    """The module of the `.pt2` program in `blob`, checked first (`check_exported_archive`),
    its guards left unbuilt (torch would `exec` their code)."""
    check_exported_archive(blob, name)
    try:
        program = torch.export.load(io.BytesIO(blob))
        module: nn.Module = program.module(check_guards=False)
    except Exception as error:  # torch raises many kinds here
        raise ModelError(f"{name}: not a loadable .pt2 program ({error})") from None
    return module
