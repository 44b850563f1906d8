"""An inference server as the oracle: the Open Inference Protocol (KServe v2) over HTTP.

Triton, KServe, MLServer and TorchServe answer it: `GET /v2/models/{name}` says the
model's inputs (name, datatype, shape), `POST /v2/models/{name}/infer` takes tensors as
JSON and answers tensors (https://kserve.github.io/website/docs/concepts/architecture/
data-plane/v2-protocol). Throttling (429), server errors (5xx), timeouts and dropped
connections are retried with exponential backoff (a `Retry-After` is honoured); any
other 4xx stops at once with one line naming it. A bearer token is read from an
environment variable, sent only over TLS (or to this machine), and never logged or
stored. A retried request may have been counted by the server the first time too: the
query ledger counts each input once, as asked.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from jsma.blackbox._oracles import Oracle, OracleAnswer
from jsma.errors import ConfigurationError, MissingDependencyError, OracleError

__all__ = ["HttpOracle"]

DEFAULT_TOKEN_ENV = "JSMA_ORACLE_TOKEN"
_MODEL_PATH = re.compile(r"(?P<prefix>/.*)?/v2/models/(?P<name>[^/]+)(?:/versions/(?P<v>[^/]+))?/?")
_DATATYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}
_RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_oracle_url(text: str) -> bool:
    """Whether `text` is an http(s) URL: read as an inference server's model."""
    return text.startswith(("http://", "https://"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpOracle(Oracle):
    """A model behind an Open Inference Protocol (KServe v2) REST endpoint.

    `url` is `http(s)://HOST:PORT[/prefix]/v2/models/NAME[/versions/V]`. The model's
    metadata is read once, when the oracle is made: its first input (or `input`) gets
    the queries, reshaped to its declared shape; its first output (or `output`) is read
    as scores or labels. `rate` caps requests per second; `max_batch` inputs go in one
    request; `retries` more tries follow a retryable failure, waiting `backoff` seconds,
    doubled each time (at most 30). `verify` is TLS verification (`True`, or a CA bundle's
    path). The token, if the environment variable `token_env` holds one, goes in an
    `Authorization: Bearer` header.

    Example:
        >>> oracle = HttpOracle("http://127.0.0.1:8080/v2/models/lenet")  # doctest: +SKIP
        >>> oracle.answer(images).labels  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        token_env: str | None = DEFAULT_TOKEN_ENV,
        input: str | None = None,
        output: str | None = None,
        max_batch: int = 64,
        rate: float | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        verify: bool | str = True,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingDependencyError(
                "an inference server as the oracle needs httpx: pip install 'jsma[blackbox]'"
            ) from None
        self._httpx = httpx
        parts = urlsplit(url)
        match = _MODEL_PATH.fullmatch(parts.path)
        if parts.scheme not in ("http", "https") or not parts.hostname or match is None:
            raise ConfigurationError(
                f"{url!r}: an inference server's model is "
                "http(s)://HOST:PORT/v2/models/NAME (Open Inference Protocol)"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                f"{url!r}: no credentials, query or fragment in the oracle's URL (a token "
                f"goes in the environment variable {token_env or DEFAULT_TOKEN_ENV})"
            )
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.model_name = match["name"]
        if max_batch < 1 or retries < 0 or (rate is not None and rate <= 0) or timeout <= 0:
            raise ConfigurationError(
                "max_batch at least 1, retries at least 0, rate and timeout positive"
            )
        self.max_batch, self._rate, self._retries, self._backoff = max_batch, rate, retries, backoff
        self._last_request = -float("inf")
        token = os.environ.get(token_env) if token_env else None
        headers = {}
        if token:
            if parts.scheme != "https" and not _is_loopback(parts.hostname):
                raise ConfigurationError(
                    f"{url}: a bearer token goes over TLS only (https://), or to this machine"
                )
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            headers=headers, timeout=timeout, verify=verify, transport=transport,
            follow_redirects=False,
        )  # fmt: skip
        try:
            metadata = self._request("GET", self.url).json()
            self._read_metadata(metadata, input, output)
        except ValueError:
            self._client.close()
            raise OracleError(f"{self.url}: the model's metadata is not JSON") from None
        except BaseException:
            self._client.close()
            raise

    def _read_metadata(self, metadata: Any, input: str | None, output: str | None) -> None:
        try:
            inputs = list(metadata["inputs"])
            entry = inputs[0] if input is None else next(i for i in inputs if i["name"] == input)
            self._input = str(entry["name"])
            self._datatype = str(entry["datatype"])
            self._shape = [int(d) for d in entry["shape"]]
            outputs = [str(o["name"]) for o in metadata.get("outputs") or []]
        except (KeyError, TypeError, IndexError, StopIteration, ValueError):
            wanted = f" with an input named {input!r}" if input else ""
            raise OracleError(
                f"{self.url}: its metadata names no input{wanted} (name, datatype, shape)"
            ) from None
        if self._datatype not in _DATATYPES:
            raise OracleError(f"{self.url}: its input takes {self._datatype}, not floats")
        if output is not None and outputs and output not in outputs:
            raise OracleError(f"{self.url}: no output {output!r} (it has {outputs})")
        self._output = output

    @property
    def identity(self) -> str:
        return self.url

    def describe(self) -> str:
        return f"the model served at {self.url}"

    def close(self) -> None:
        self._client.close()

    def _answer_batch(self, inputs: np.ndarray) -> OracleAnswer:
        shape = [len(inputs), *self._shape[1:]]
        if -1 in shape[1:]:
            shape = [len(inputs), *inputs.shape[1:]]
        try:
            values = inputs.reshape(shape).astype(_DATATYPES[self._datatype], copy=False)
        except ValueError:
            raise OracleError(
                f"{self.describe()} takes inputs of shape {self._shape}, not "
                f"{list(inputs.shape[1:])}"
            ) from None
        body: dict[str, Any] = {
            "inputs": [
                {
                    "name": self._input, "shape": shape, "datatype": self._datatype,
                    "data": values.ravel().tolist(),
                }
            ]
        }  # fmt: skip
        if self._output is not None:
            body["outputs"] = [{"name": self._output}]
        response = self._request("POST", f"{self.url}/infer", json=body)
        try:
            outputs = response.json()["outputs"]
            chosen = outputs[0] if self._output is None else next(
                o for o in outputs if o["name"] == self._output
            )  # fmt: skip
            array = np.asarray(chosen["data"]).reshape([int(d) for d in chosen["shape"]])
        except (ValueError, KeyError, TypeError, IndexError, StopIteration):
            raise OracleError(
                f"{self.describe()} answered something that is not an inference response"
            ) from None
        return OracleAnswer.from_outputs(array, len(inputs), oracle=self.describe())

    def _pace(self) -> None:
        if self._rate is not None:
            wait = self._last_request + 1 / self._rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_request = time.monotonic()

    def _request(self, method: str, url: str, **options: Any) -> Any:
        httpx = self._httpx
        reason, wait = "", 0.0
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(min(30.0, max(wait, self._backoff * 2 ** (attempt - 1))))
            self._pace()
            wait = 0.0
            try:
                response = self._client.request(method, url, **options)
            except httpx.TimeoutException:
                reason = "timed out"
                continue
            except httpx.TransportError as error:
                reason = f"cannot connect ({type(error).__name__})"
                continue
            if response.status_code < 300:
                return response
            if response.status_code in _RETRIED:
                reason = f"{response.status_code} {response.reason_phrase}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
                continue
            raise OracleError(
                f"{method} {url}: {response.status_code} {response.reason_phrase}"
                f"{_server_message(response)}"
            )
        raise OracleError(
            f"{method} {url}: no answer after {self._retries + 1} tries (last: {reason})"
        )


def _server_message(response: Any) -> str:
    """The server's own error message, on one line, if it gave one."""
    try:
        message = response.json().get("error")
    except (ValueError, AttributeError):
        message = response.text
    text = " ".join(str(message or "").split())
    return f": {text[:200]}" if text else ""
