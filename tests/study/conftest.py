"""One small study, made once per module from two campaigns; each test gets its own copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jsma.data._sources import IdxDirectorySource
from jsma.study import create_study
from tests.conftest import increasing_and_decreasing, write_idx_directory

COMPLETION_URL = "https://app.prolific.example/submissions/complete?cc=X"


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    dataset = IdxDirectorySource(write_idx_directory(root / "idx"), validation_size=40).load(
        root / "cache"
    )
    campaigns = increasing_and_decreasing(dataset, root / "runs", samples=24, unit_size=12)
    create_study(
        campaigns, dataset, root / "study", per_condition=6, seed=2, completion_url=COMPLETION_URL
    )
    return root / "study"


@pytest.fixture
def study(created: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(created, tmp_path / "study"))
