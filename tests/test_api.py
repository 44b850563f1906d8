"""The public API is a promise: changing it must be a deliberate edit here."""

from __future__ import annotations

import jsma
import jsma.attacks
import jsma.data
import jsma.models


def test_top_level_api() -> None:
    assert sorted(jsma.__all__) == [
        "AndNet",
        "AttackResult",
        "CampaignError",
        "CheckpointError",
        "CheckpointInfo",
        "ConfigurationError",
        "DataError",
        "Dataset",
        "InputTypeError",
        "JSMA",
        "JSMAError",
        "LeNet",
        "MissingDependencyError",
        "ModelError",
        "ModelSpec",
        "SampleResult",
        "Split",
        "StopReason",
        "StorageError",
        "TorchattacksJSMA",
        "__version__",
        "attack",
        "evaluate",
        "forward_derivative",
        "frozen_eval",
        "load_checkpoint",
        "load_mnist",
        "saliency_map",
        "save_checkpoint",
        "select_pair",
        "target_derivatives",
        "train",
    ]


def test_every_exported_name_exists() -> None:
    for module in (jsma, jsma.attacks, jsma.data, jsma.models):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


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
