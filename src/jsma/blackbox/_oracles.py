"""Oracles: what answers an adversary's queries when the weights are out of reach.

An oracle takes a batch of inputs (in the data's own bounds) and gives a label per
input, and the scores where it has them. Nothing here differentiates: that is the
point. The forms: a model jsma loads (run without gradients), an ONNX file run by ONNX
Runtime, a function of yours, and (in `_http`) an inference server speaking the Open
Inference Protocol. `jsma.blackbox.QueryLedger` puts a budget and a durable log in
front of any of them.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from jsma.errors import MissingDependencyError, OracleError

__all__ = ["FunctionOracle", "ModelOracle", "OnnxOracle", "Oracle", "OracleAnswer"]


class OracleAnswer:
    """What an oracle said about a batch: a label per input (int64) and, where it gives
    them, its scores (float32, one row per input, one column per class: logits or
    probabilities, whatever it returns). `answered` is False for an input whose answer
    was lost (asked, then the process was killed before the answer was written): its
    label is -1 and its scores NaN, and it is never asked again."""

    __slots__ = ("answered", "labels", "scores")

    def __init__(
        self, labels: Any, scores: np.ndarray | None = None, answered: np.ndarray | None = None
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.scores = scores
        self.answered = (
            np.ones(len(self.labels), dtype=bool) if answered is None else answered.astype(bool)
        )
        if scores is not None and (scores.ndim != 2 or len(scores) != len(self.labels)):
            raise OracleError(f"scores of shape {scores.shape} for {len(self.labels)} labels")
        if len(self.answered) != len(self.labels):
            raise OracleError(f"{len(self.answered)} answered flags for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_outputs(cls, outputs: Any, count: int, *, oracle: str) -> OracleAnswer:
        """Read an oracle's raw output for `count` inputs: floats of shape (count,
        classes) are scores (the label is the highest), integers of shape (count,) or
        (count, 1) are labels."""
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.detach().cpu().numpy()
        array = np.asarray(outputs)
        if array.dtype.kind in "iu" and array.shape in ((count,), (count, 1)):
            return cls(labels=array.reshape(-1).astype(np.int64))
        if array.dtype.kind == "f" and array.ndim == 2 and len(array) == count:
            scores = array.astype(np.float32)
            if not np.isfinite(scores).all():
                raise OracleError(f"{oracle} answered NaN or infinite scores")
            return cls(labels=scores.argmax(axis=1), scores=scores)
        raise OracleError(
            f"{oracle} answered {array.dtype} values of shape {array.shape} for {count} "
            f"inputs; jsma reads scores (floats, ({count}, classes)) or labels (integers, "
            f"({count},))"
        )

    @staticmethod
    def join(parts: list[OracleAnswer]) -> OracleAnswer:
        """One answer of several, in order (scores kept only when every part has them)."""
        if not parts:
            return OracleAnswer(labels=np.zeros(0, dtype=np.int64))
        has_scores = all(part.scores is not None for part in parts)
        widths = {part.scores.shape[1] for part in parts if part.scores is not None}
        return OracleAnswer(
            labels=np.concatenate([part.labels for part in parts]),
            scores=np.concatenate([p.scores for p in parts if p.scores is not None])
            if has_scores and len(widths) == 1
            else None,
            answered=np.concatenate([part.answered for part in parts]),
        )


class Oracle(abc.ABC):
    """Answers batches of inputs; subclasses answer one batch of at most `max_batch`.

    `identity` names what answers (a model's fingerprint, an ONNX file's digest, a
    server's model URL, a function's name): a query log holds the answers of one oracle
    and refuses another's. Oracles are context managers (`close` frees a connection).
    """

    max_batch: int = 256

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """What answers, stably across runs (stored in query logs; never a secret)."""

    def describe(self) -> str:
        """In words: which oracle this is."""
        return self.identity

    @abc.abstractmethod
    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer: ...

    def answer(self, inputs: np.ndarray | torch.Tensor) -> OracleAnswer:
        """The oracle's answer for each input of the batch, asked `max_batch` at a time."""
        batch = as_queries(inputs)
        parts = [
            self._answer_batch(batch[start : start + self.max_batch])
            for start in range(0, len(batch), self.max_batch)
        ]
        answer = OracleAnswer.join(parts)
        if len(answer) != len(batch):
            raise OracleError(f"{self.describe()} gave {len(answer)} answers for {len(batch)}")
        return answer

    def close(self) -> None:  # noqa: B027 (most oracles hold nothing to free)
        """Free what the oracle holds (a connection); it answers no more."""

    def __enter__(self) -> Oracle:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def as_queries(inputs: np.ndarray | torch.Tensor) -> np.ndarray:
    """A batch as the float32, C-ordered array every oracle and log takes; finite."""
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    batch = np.ascontiguousarray(inputs, dtype=np.float32)
    if batch.ndim < 2:
        raise OracleError(f"queries are a batch (inputs, *shape); got shape {batch.shape}")
    if not np.isfinite(batch).all():
        raise OracleError("a query holds NaN or infinite values")
    return batch


def query_digests(batch: np.ndarray) -> list[bytes]:
    """SHA-256 of each input's float32 bytes and shape: what the query log keys on."""
    shape = repr(batch.shape[1:]).encode()
    little = batch.astype("<f4", copy=False)
    return [hashlib.sha256(shape + row.tobytes()).digest() for row in little]


class ModelOracle(Oracle):
    """A PyTorch model answering queries without gradients: the model's scores, as an
    API would give them."""

    def __init__(
        self, model: nn.Module, *, identity: str, device: str | torch.device | None = None,
        max_batch: int = 256, description: str | None = None,
    ) -> None:  # fmt: skip
        parameter = next(model.parameters(), None)
        self._device = torch.device(device) if device is not None else (
            parameter.device if parameter is not None else torch.device("cpu")
        )  # fmt: skip
        self._model = model.to(self._device).eval()
        self._identity = identity
        self._description = description
        self.max_batch = max_batch

    @property
    def identity(self) -> str:
        return self._identity

    def describe(self) -> str:
        return self._description or self._identity

    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer:
        with torch.no_grad():
            outputs = self._model(torch.from_numpy(inputs).to(self._device))
        return OracleAnswer.from_outputs(outputs, len(inputs), oracle=self.describe())


class OnnxOracle(Oracle):
    """An ONNX model run by ONNX Runtime (the `blackbox` extra): no gradient exists.

    The model's first input takes the queries, reshaped to its declared shape when only
    the layout differs (a model of flat vectors given images); its first output, or the
    one named `output`, is read as scores or labels. A fixed batch size is honoured.
    """

    def __init__(
        self, path: str | Path, *, output: str | None = None, max_batch: int = 256,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:  # fmt: skip
        try:
            import onnxruntime
        except ImportError:
            raise MissingDependencyError(
                "an ONNX oracle needs ONNX Runtime: pip install 'jsma[blackbox]'"
            ) from None
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise OracleError(f"{self.path}: ONNX model not found")
        data = self.path.read_bytes()
        self._digest = hashlib.sha256(data).hexdigest()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        try:
            self._session = onnxruntime.InferenceSession(
                data, sess_options=options, providers=list(providers)
            )
        except Exception as error:  # onnxruntime's own exception types
            raise OracleError(f"{self.path}: ONNX Runtime cannot load it ({error})") from None
        first = self._session.get_inputs()[0]
        self._input = first.name
        self._shape = [d if isinstance(d, int) else None for d in first.shape]
        self._dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(first.type)
        if self._dtype is None:
            raise OracleError(f"{self.path}: its input takes {first.type}, not floats")
        names = [out.name for out in self._session.get_outputs()]
        if output is not None and output not in names:
            raise OracleError(f"{self.path}: no output {output!r} (it has {names})")
        self._output = output or names[0]
        fixed = self._shape[0] if self._shape else None
        self.max_batch = fixed if fixed else max_batch

    @property
    def identity(self) -> str:
        return f"onnx:{self._digest}"

    def describe(self) -> str:
        return f"the ONNX model {self.path}"

    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer:
        shape = [len(inputs), *(d if d is not None else -1 for d in self._shape[1:])]
        try:
            feed = inputs.reshape(shape).astype(self._dtype, copy=False)
        except ValueError:
            raise OracleError(
                f"{self.describe()} takes inputs of shape {self._shape}, not "
                f"{list(inputs.shape[1:])} (nor as many values in another layout)"
            ) from None
        try:
            (outputs,) = self._session.run([self._output], {self._input: feed})
        except Exception as error:  # onnxruntime's own exception types
            raise OracleError(f"{self.describe()} failed on a batch ({error})") from None
        return OracleAnswer.from_outputs(outputs, len(inputs), oracle=self.describe())


class FunctionOracle(Oracle):
    """Any API through a function of yours: a float32 batch (NumPy) in, labels or scores
    out (NumPy, a tensor or nested lists). It is your code: jsma calls it only when
    you name it."""

    def __init__(
        self, function: Callable[[np.ndarray], Any], *, name: str, max_batch: int = 256
    ) -> None:
        self._function = function
        self._name = name
        self.max_batch = max_batch

    @property
    def identity(self) -> str:
        return f"fn:{self._name}"

    def describe(self) -> str:
        return f"the function {self._name}"

    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer:
        try:
            outputs = self._function(inputs.copy())
        except Exception as error:  # your code: anything may come out of it
            raise OracleError(
                f"{self.describe()} raised {type(error).__name__}: {error}"
            ) from error
        return OracleAnswer.from_outputs(outputs, len(inputs), oracle=self.describe())
