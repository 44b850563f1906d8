"""Black-box attacks: a model you can only query.

Oracles answer queries (a model jsma loads, run without gradients; an ONNX file in ONNX
Runtime; an inference server speaking the Open Inference Protocol; a function of yours),
named by an `OracleRef`. A `QueryLedger` puts a budget and a durable log in front of
any of them: the log is the cache, so no input is sent twice, and the budget holds
across kills and resumes. `train_substitute` trains a substitute of an oracle by
Jacobian-based dataset augmentation (Papernot et al. 2017), and `sparse_rs` searches
for sparse adversarial samples from the oracle's scores alone (Croce et al. 2022).

The API is what `__all__` lists; the modules starting with `_` are private. Names load
on first use (PEP 562): an HTTP oracle does not import the campaign engine.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

_LAZY = {
    "_http": ("HttpOracle",),
    "_ledger": ("QueryLedger", "read_query_log"),
    "_oracles": ("FunctionOracle", "ModelOracle", "OnnxOracle", "Oracle", "OracleAnswer"),
    "_reference": ("OracleRef",),
    "_runs": ("BlackboxRun", "blackbox_figure", "read_blackbox_run"),
    "_sparse_rs": (
        "SparseRsOutcome", "SparseRsResult", "SparseRsSettings", "run_sparse_rs", "sparse_rs",
    ),
    "_substitute": (
        "SubstituteEpoch", "SubstituteRecord", "SubstituteSettings", "train_substitute",
    ),
    "_transfer": ("TransferAttack", "TransferOutcome", "attack_through_substitute"),
}  # fmt: skip
_HOME = {name: module for module, names in _LAZY.items() for name in names}

if _typing.TYPE_CHECKING:
    from jsma.blackbox._http import HttpOracle
    from jsma.blackbox._ledger import QueryLedger, read_query_log
    from jsma.blackbox._oracles import (
        FunctionOracle,
        ModelOracle,
        OnnxOracle,
        Oracle,
        OracleAnswer,
    )
    from jsma.blackbox._reference import OracleRef
    from jsma.blackbox._runs import BlackboxRun, blackbox_figure, read_blackbox_run
    from jsma.blackbox._sparse_rs import (
        SparseRsOutcome,
        SparseRsResult,
        SparseRsSettings,
        run_sparse_rs,
        sparse_rs,
    )
    from jsma.blackbox._substitute import (
        SubstituteEpoch,
        SubstituteRecord,
        SubstituteSettings,
        train_substitute,
    )
    from jsma.blackbox._transfer import TransferAttack, TransferOutcome, attack_through_substitute


if not _typing.TYPE_CHECKING:  # hidden from mypy, which would read any attribute as Any

    def __getattr__(name: str) -> _typing.Any:
        if name not in _HOME:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value  # once: later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BlackboxRun",
    "FunctionOracle",
    "HttpOracle",
    "ModelOracle",
    "OnnxOracle",
    "Oracle",
    "OracleAnswer",
    "OracleRef",
    "QueryLedger",
    "SparseRsOutcome",
    "SparseRsResult",
    "SparseRsSettings",
    "SubstituteEpoch",
    "SubstituteRecord",
    "SubstituteSettings",
    "TransferAttack",
    "TransferOutcome",
    "attack_through_substitute",
    "blackbox_figure",
    "read_blackbox_run",
    "read_query_log",
    "run_sparse_rs",
    "sparse_rs",
    "train_substitute",
]
