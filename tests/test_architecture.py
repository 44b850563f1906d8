"""The layers of the README's Architecture section: nothing imports upward.

Each module may import its own layer and the layers below, never above. The
check reads every import statement in `src/jsma` (inside functions too, where
the command line imports lazily), leaving out `if TYPE_CHECKING:` blocks,
which only type checkers run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "jsma"

# Bottom to top, as in the README. A module takes the layer of its longest listed prefix.
LAYERS: dict[str, int] = {
    "jsma": 0,  # the package root: errors eagerly, everything else lazily (PEP 562)
    "jsma.errors": 0,
    "jsma.settings": 0,
    "jsma._io": 0,
    "jsma._hashing": 0,
    "jsma._records": 0,
    "jsma._version": 0,
    "jsma.context": 0,
    "jsma.paper": 0,
    "jsma.data": 1,
    "jsma.metrics": 1,
    "jsma.models": 2,
    "jsma.attacks": 2,
    "jsma.plotting": 3,
    "jsma.campaign": 3,
    "jsma.gan": 3,
    "jsma.toy": 3,
    "jsma.defenses": 4,
    "jsma.study": 4,
    "jsma.transfer": 4,
    "jsma.blackbox": 4,
    "jsma.report": 5,
    "jsma.replicate": 6,
    "jsma.cli": 7,
}


def layer(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the README")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str) -> list[str]:
    """The jsma modules `tree` imports, outside `if TYPE_CHECKING:` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("jsma"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jsma"):
            # `from jsma.x import y` may import the submodule jsma.x.y
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = sorted(SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_nothing_imports_upward(path: Path) -> None:
    module = _module_name(path)
    own = layer(module)
    upward = [
        f"{target} (layer {layer(target)})"
        for target in _imports(ast.parse(path.read_text()), module)
        if layer(target) > own
    ]
    assert upward == [], f"{module} (layer {own}) imports upward"


def _dependencies() -> dict[str, set[str]]:
    """Each module's jsma modules that it imports (anywhere, `TYPE_CHECKING` aside)."""
    names = {_module_name(path) for path in MODULES}

    def owner(target: str) -> str:
        parts = target.split(".")
        return next(
            ".".join(parts[:end]) for end in range(len(parts), 0, -1)
            if ".".join(parts[:end]) in names
        )  # fmt: skip

    return {
        _module_name(path): {owner(t) for t in _imports(ast.parse(path.read_text()), "")}
        - {_module_name(path)}
        for path in MODULES
    }


def test_no_module_imports_one_that_imports_it_back() -> None:
    """A package's `__init__` may gather its own modules; otherwise no two modules import
    each other, lazily or not (a circle the code then works around)."""
    dependencies = _dependencies()
    circles = sorted(
        (a, b)
        for a, targets in dependencies.items()
        for b in targets
        if a < b and a in dependencies.get(b, set()) and not b.startswith(f"{a}.")
    )
    assert circles == []


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer(_module_name(path))


def test_the_check_sees_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from jsma.report import write_report\n")
    assert [t for t in _imports(tree, "jsma.attacks.x") if layer(t) > 2] == [
        "jsma.report.write_report"
    ]
    hidden = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jsma.cli\n")
    assert _imports(hidden, "jsma.errors") == []


def _table(path: Path, prefix: str) -> dict[str, int]:
    """The layer table of a Markdown file: each `module` named in a row's modules cell
    (the first words of each name, before any parenthesis), and its layer."""
    rows = re.findall(r"^\| (\d) \| (.*?) \|", path.read_text(), re.M)
    return {
        f"{prefix}{name}": int(number)
        for number, cells in rows
        for name in re.findall(r"(?:^|, )`([\w.]+)`", cells)
    }


@pytest.mark.parametrize(
    ("document", "prefix"), [("README.md", "jsma."), ("docs/architecture.md", "")]
)
def test_the_documented_layer_tables_are_this_one(document: str, prefix: str) -> None:
    """The README's and the architecture page's tables say what `LAYERS` enforces."""
    documented = _table(SOURCE.parents[1] / document, prefix)
    assert documented == {name: n for name, n in LAYERS.items() if name != "jsma"}
