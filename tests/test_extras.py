"""Each extra carries what its commands import, and a missing one is one line naming it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from jsma.cli import main

ROOT = Path(__file__).parents[1]
# The modules an extra serves: their third-party imports may come from that extra.
EXTRA_MODULES = {
    "study": {"jsma.study.server", "jsma.study.simulate", "jsma.cli.study"},
    "ray": {"jsma.campaign.ray_engine"},
    "blackbox": {"jsma.blackbox._oracles", "jsma.blackbox._http", "jsma.models._onnx"},
}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {
        n for n in names if n not in sys.stdlib_module_names and n not in ("jsma", "__future__")
    }


def test_every_import_comes_from_the_core_or_the_modules_extra() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_requirement_name(r) for r in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for path in sorted((ROOT / "src" / "jsma").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
        allowed = set(core)
        for extra, modules in EXTRA_MODULES.items():
            if module in modules:
                allowed |= extras[extra]
        for name in _third_party_imports(path):
            provided = {d.lower() for d in distributions.get(name, [name])}
            if not provided & allowed:
                problems.append(
                    f"{module} imports {name}, which neither the core nor its extra has"
                )
    assert not problems, problems


def test_a_missing_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in [m for m in sys.modules if m.startswith("jsma.study.s")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "httpx", None)  # importing it now fails
    assert main(["study", "simulate", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "jsma study simulate needs the `study` extra (httpx is missing)" in error
    assert "pip install 'jsma[study]'" in error
