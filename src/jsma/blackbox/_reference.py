"""Which oracle: `OracleRef` names one in any form a user can give.

ORACLE is what `--model` takes elsewhere (a recipe, a checkpoint, a defense's output, a
`.pt2`, TorchScript, a builder: run without gradients), an `.onnx` file (ONNX Runtime),
`http(s)://HOST:PORT/v2/models/NAME` (an inference server) or `fn:package.module:name`
(a function of yours: a batch in, labels or scores out). A builder, TorchScript and a
function are code, and a URL is where your queries (and your token) go: jsma opens those
only when the user names them in this very command or call, never because a stored
record does (`needs_naming`).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from jsma.blackbox._http import DEFAULT_TOKEN_ENV, HttpOracle, is_oracle_url
from jsma.blackbox._oracles import FunctionOracle, ModelOracle, OnnxOracle, Oracle
from jsma.data import Dataset
from jsma.errors import ConfigurationError, OracleError
from jsma.models import ModelRef

__all__ = ["OracleRef"]

OracleForm = Literal["model", "onnx", "http", "function"]
_FUNCTION = re.compile(r"fn:(?P<name>[A-Za-z_][\w.]*:[A-Za-z_]\w*)")


@dataclass(frozen=True)
class OracleRef:
    """An oracle, named: its `form` and `location` (the model's reference, the ONNX
    file's absolute path, the server's model URL, or `package.module:name`); `model` is
    the parsed model reference of the `model` form.

    Example:
        >>> OracleRef.parse("paper").form
        'model'
        >>> OracleRef.parse("http://127.0.0.1:8080/v2/models/lenet").form
        'http'
    """

    form: OracleForm
    location: str
    model: ModelRef | None = None

    @classmethod
    def parse(
        cls,
        text: str | os.PathLike[str] | ModelRef | OracleRef,
        *,
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
    ) -> OracleRef:
        """The oracle `text` names (see the module's docstring for the forms); `mean`
        and `std` normalise the inputs of a model from outside jsma (as `--model`'s)."""
        if (mean or std) and (isinstance(text, OracleRef) or not ModelRef.is_reference(str(text))
                              or str(text).endswith(".onnx")):  # fmt: skip
            raise ConfigurationError(
                "--normalize and --std go with a model jsma loads, not an ONNX file, a server "
                "or a function (they take the data as it is)"
            )
        if isinstance(text, OracleRef):
            return text
        if isinstance(text, ModelRef):
            return cls("model", str(text), text)
        text = str(text)
        if is_oracle_url(text):
            return cls("http", text.rstrip("/"))
        if text.startswith("fn:"):
            if _FUNCTION.fullmatch(text) is None:
                raise ConfigurationError(f"{text!r}: a function oracle is fn:package.module:name")
            return cls("function", text.removeprefix("fn:"))
        if text.endswith(".onnx"):
            path = Path(text)
            if not path.is_file():
                raise OracleError(f"{path}: ONNX model not found")
            return cls("onnx", str(path.resolve()))
        model = ModelRef.parse(text, mean=mean, std=std)
        return cls("model", str(model), model)

    def __str__(self) -> str:
        """The text `parse` reads back into this reference."""
        return f"fn:{self.location}" if self.form == "function" else self.location

    @property
    def needs_naming(self) -> bool:
        """Whether opening it runs code of its own or sends queries off this machine:
        done only for a reference the user gave in this very command or call."""
        return self.form in ("http", "function") or (
            self.model is not None and self.model.runs_code
        )

    def open(
        self,
        device: str | torch.device = "cpu",
        *,
        data: Dataset | None = None,
        max_batch: int | None = None,
        token_env: str | None = DEFAULT_TOKEN_ENV,
        rate: float | None = None,
        timeout: float = 30.0,
        retries: int = 5,
    ) -> Oracle:
        """The oracle, ready to answer. A model is loaded on `device` (checked against
        `data` when given); an inference server's metadata is read (the token from the
        environment variable `token_env`; `rate`, `timeout` and `retries` apply to it)."""
        if self.form == "http":
            return HttpOracle(
                self.location, token_env=token_env, rate=rate, timeout=timeout,
                retries=retries, max_batch=max_batch or 64,
            )  # fmt: skip
        batch = max_batch or 256
        if self.form == "onnx":
            return OnnxOracle(self.location, max_batch=batch)
        if self.form == "function":
            module_name, _, attribute = self.location.partition(":")
            try:
                function = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as error:
                raise OracleError(f"fn:{self.location}: cannot import it ({error})") from None
            if not callable(function):
                raise OracleError(f"fn:{self.location} is not callable")
            return FunctionOracle(function, name=self.location, max_batch=batch)
        assert self.model is not None
        model, provenance = self.model.load(device, data=data)
        return ModelOracle(
            model, identity=f"model:{provenance.fingerprint}", max_batch=batch,
            description=f"{self.model.describe()} (fingerprint {provenance.fingerprint[:12]})",
        )  # fmt: skip
