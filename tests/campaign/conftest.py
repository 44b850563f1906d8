"""Helpers shared by the campaign tests."""

from __future__ import annotations

import pytest

import jsma.campaign.runner as runner


@pytest.fixture
def units_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the units the campaign runner attacks from now on, in order."""
    done: list[str] = []
    original = runner.run_unit

    def counting(*args):  # type: ignore[no-untyped-def]
        done.append(args[3].name)
        return original(*args)

    monkeypatch.setattr(runner, "run_unit", counting)
    return done
