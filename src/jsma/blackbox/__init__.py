"""Black-box attacks: a model you can only query.

Oracles answer queries (a model jsma loads, run without gradients; an ONNX file in ONNX
Runtime; an inference server speaking the Open Inference Protocol; a function of yours),
named by an `OracleRef`. A `QueryLedger` puts a budget and a durable log in front of
any of them: the log is the cache, so no input is sent twice, and the budget holds
across kills and resumes. `train_substitute` trains a substitute of an oracle by
Jacobian-based dataset augmentation (Papernot et al. 2017), and `sparse_rs` searches
for sparse adversarial samples from the oracle's scores alone (Croce et al. 2022).

The API is what `__all__` lists; the modules starting with `_` are private.
"""

from jsma.blackbox._http import HttpOracle
from jsma.blackbox._ledger import QueryLedger, read_query_log
from jsma.blackbox._oracles import FunctionOracle, ModelOracle, OnnxOracle, Oracle, OracleAnswer
from jsma.blackbox._reference import OracleRef
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

__all__ = [
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
    "read_query_log",
    "run_sparse_rs",
    "sparse_rs",
    "train_substitute",
]
