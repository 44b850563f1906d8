"""The public API is a promise: changing it must be a deliberate edit here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

import jsma
import jsma.models
from jsma.settings import RECIPE_NAMES


def test_top_level_api() -> None:
    assert sorted(jsma.__all__) == [
        "AndNet",
        "AttackResult",
        "Campaign",
        "CampaignError",
        "CheckpointError",
        "CheckpointInfo",
        "ConfigurationError",
        "DataError",
        "DataRef",
        "Dataset",
        "InputTypeError",
        "Interrupted",
        "JSMA",
        "JSMAError",
        "LeNet",
        "MissingDependencyError",
        "ModelError",
        "ModelRef",
        "ModelSpec",
        "SampleResult",
        "Split",
        "StopReason",
        "StorageError",
        "TorchattacksJSMA",
        "TrainingError",
        "__version__",
        "attack",
        "evaluate",
        "forward_derivative",
        "frozen_eval",
        "load_checkpoint",
        "load_mnist",
        "pretrained",
        "saliency_map",
        "save_checkpoint",
        "select_pair",
        "target_derivatives",
        "train",
    ]


def _public_modules() -> list[str]:
    return ["jsma"] + [
        info.name
        for info in pkgutil.walk_packages(jsma.__path__, "jsma.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]


@pytest.mark.parametrize("name", _public_modules())
def test_all_lists_exactly_the_public_names(name: str) -> None:
    """`__all__` names what exists, and nothing public is left out of it.

    A package's public names are every non-underscore attribute but its submodules
    (what `__init__` imports is exported on purpose); a module's are the classes and
    functions it defines. A leaked helper fails here until it is listed or renamed.
    """
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
    if hasattr(module, "__path__"):
        names = dir(module) if module is jsma else list(vars(module))
        public = {
            n
            for n in names
            if (not n.startswith("_") or n == "__version__")
            and n != "annotations"  # the `from __future__` feature object
            and not isinstance(getattr(module, n), types.ModuleType)
        }
    else:
        public = {
            n
            for n, value in vars(module).items()
            if not n.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == name
        }
    assert sorted(public - set(module.__all__)) == []


def test_recipe_names_match_the_recipes() -> None:
    from jsma.models._training import RECIPES

    assert sorted(RECIPES) == sorted(RECIPE_NAMES)
    assert all(recipe.name == name for name, recipe in RECIPES.items())


def test_import_jsma_is_light() -> None:
    script = "import sys, jsma; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "JSMA" in dir(jsma)


def test_errors_share_one_base() -> None:
    for error in (
        jsma.CampaignError,
        jsma.CheckpointError,
        jsma.ConfigurationError,
        jsma.DataError,
        jsma.InputTypeError,
        jsma.MissingDependencyError,
        jsma.ModelError,
        jsma.StorageError,
    ):
        assert issubclass(error, jsma.JSMAError)
    assert issubclass(jsma.DataError, ValueError)


@pytest.mark.parametrize("name", _public_modules())
def test_public_names_have_docstrings(name: str) -> None:
    """The API reference is generated from docstrings: a public name without one
    would be a blank entry on the site."""
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name} has no module docstring"
    undocumented = []
    for attribute in module.__all__:
        value = getattr(module, attribute)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not (value.__module__ or "").startswith("jsma"):
            continue
        doc = value.__doc__ or ""
        # A dataclass without a docstring gets its signature as one.
        if not doc.strip() or (inspect.isclass(value) and doc.startswith(f"{value.__name__}(")):
            undocumented.append(attribute)
    assert undocumented == []


def _private_modules() -> list[str]:
    names = []
    for package in _public_modules()[1:]:  # the root's private modules serve every package
        module = importlib.import_module(package)
        if hasattr(module, "__path__"):
            names += [
                f"{package}.{info.name}"
                for info in pkgutil.iter_modules(module.__path__)
                if info.name.startswith("_") and not info.ispkg and info.name != "__main__"
            ]
    return names


@pytest.mark.parametrize("name", _private_modules())
def test_a_private_module_lists_only_what_its_package_exports(name: str) -> None:
    """Implementation modules are private; what one offers its users, its package
    exports (the rest it keeps to the package: not in its `__all__`)."""
    module = importlib.import_module(name)
    package = importlib.import_module(name.rsplit(".", 1)[0])
    assert sorted(set(getattr(module, "__all__", [])) - set(package.__all__)) == []
