"""Every code block of the README and docs/ runs as written: the Python ones are
executed, each `jsma` command line of the shell ones is parsed by the real parser."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(language: str) -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[: match.start()].count("\n") + 1
                found.append((str(page.relative_to(ROOT)), line, match.group(2)))
    return found


def _prepare(page: str, where: Path) -> None:
    """What the page's earlier commands leave behind, for the block to read."""
    if page == "docs/campaigns.md":  # after `jsma campaign run runs/test-increasing`
        fixture = ROOT / "tests" / "fixtures" / "v0.1.0" / "increasing"
        shutil.copytree(fixture, where / "runs" / "test-increasing")


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "line", "code"),
    [pytest.param(*block, id=f"{block[0]}:{block[1]}") for block in _blocks("python")],
)
def test_python_blocks_run(
    page: str, line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _prepare(page, tmp_path)
    exec(compile(code, f"{page}:{line}", "exec"), {"__name__": "__docs__"})


def _command_lines(code: str) -> list[str]:
    joined = code.replace("\\\n", " ")
    lines = []
    for raw in joined.splitlines():
        text = raw.split(" #", 1)[0].strip()
        for part in re.split(r"&&|\|\||;|\|", text):
            words = part.strip()
            if re.match(r"^(\S*/)?jsma\s", words):
                lines.append(words)
    return lines


COMMANDS = [
    (page, line, command)
    for page, line, code in _blocks("bash")
    for command in _command_lines(code)
]


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(
    ("page", "line", "command"),
    [pytest.param(*entry, id=f"{entry[0]}:{entry[1]}:{entry[2][:40]}") for entry in COMMANDS],
)
def test_documented_commands_parse(page: str, line: int, command: str) -> None:
    from jsma.cli._main import build_parser

    words = shlex.split(command)[1:]
    code = 0
    try:
        build_parser().parse_args(words)
    except SystemExit as exited:  # --help and --version exit 0; an error exits 2
        code = int(exited.code or 0)
    assert code == 0, f"{page}:{line}: `{command}` does not parse"
