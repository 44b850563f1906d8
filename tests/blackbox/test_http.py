"""The inference-server oracle against scripted answers: the protocol's requests, retries
of 429, 5xx and timeouts, a 4xx named in one line, the token kept out of sight."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from jsma.blackbox import HttpOracle, OracleRef
from jsma.errors import ConfigurationError, OracleError
from tests.blackbox.conftest import queries

URL = "http://127.0.0.1:8000/v2/models/small"
METADATA = {
    "name": "small",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 16, 16]}],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}],
}


def scores_of(values: list[float], count: int) -> list[float]:
    rows = np.asarray(values, dtype=np.float32).reshape(count, -1)
    return np.stack([rows.mean(1), rows[:, 0], rows[:, 1]], axis=1).ravel().tolist()


def server(
    script: list[int | str] | None = None, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    """A v2 server whose inference answers follow `script` (a status, "timeout", or 200
    when the script runs out); every request is appended to `seen`."""
    script = list(script or [])

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.method == "GET":
            return httpx.Response(200, json=METADATA)
        step = script.pop(0) if script else 200
        if step == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if step != 200:
            headers = {"Retry-After": "0"} if step == 429 else {}
            return httpx.Response(int(step), json={"error": f"scripted {step}\nsecond line"},
                                  headers=headers)  # fmt: skip
        body = json.loads(request.content)
        tensor = body["inputs"][0]
        count = tensor["shape"][0]
        outputs = [{"name": "scores", "datatype": "FP32", "shape": [count, 3],
                    "data": scores_of(tensor["data"], count)}]  # fmt: skip
        return httpx.Response(200, json={"model_name": "small", "outputs": outputs})

    return httpx.MockTransport(handle)


def oracle(transport: httpx.MockTransport, **options: object) -> HttpOracle:
    settings: dict[str, object] = {"backoff": 0.0, "retries": 3, **options}
    return HttpOracle(URL, transport=transport, **settings)  # type: ignore[arg-type]


def test_the_protocols_requests_and_answers() -> None:
    seen: list[httpx.Request] = []
    client = oracle(server(seen=seen), max_batch=4)
    inputs = queries(10)
    answer = client.answer(inputs)
    assert [r.method for r in seen] == ["GET", "POST", "POST", "POST"]
    assert str(seen[1].url) == f"{URL}/infer"
    body = json.loads(seen[1].content)["inputs"][0]
    assert body["name"] == "input"
    assert body["datatype"] == "FP32"
    assert body["shape"] == [4, 1, 16, 16]
    assert len(body["data"]) == 4 * 256
    assert np.array_equal(np.asarray(body["data"], dtype=np.float32), inputs[:4].ravel())
    expected = np.asarray(scores_of(inputs.ravel().tolist(), 10)).reshape(10, 3)
    np.testing.assert_allclose(answer.scores, expected, rtol=1e-6)  # type: ignore[arg-type]
    assert answer.labels.tolist() == expected.argmax(1).tolist()
    assert client.identity == URL
    assert "Authorization" not in seen[1].headers


@pytest.mark.parametrize("failures", [[429, 429], [503, 500], ["timeout", 502]])
def test_throttling_server_errors_and_timeouts_are_retried(failures: list[int | str]) -> None:
    seen: list[httpx.Request] = []
    client = oracle(server(failures, seen))
    assert len(client.answer(queries(2))) == 2
    assert len(seen) == 1 + len(failures) + 1


def test_retries_give_up_with_the_last_reason_and_a_4xx_stops_at_once() -> None:
    with pytest.raises(OracleError, match=r"no answer after 4 tries \(last: 503 Service Unavai"):
        oracle(server([503] * 4)).answer(queries(1))
    seen: list[httpx.Request] = []
    with pytest.raises(OracleError) as raised:
        oracle(server([422], seen)).answer(queries(1))
    assert len(seen) == 2  # metadata, then one inference request: no retry
    message = str(raised.value)
    assert message == f"POST {URL}/infer: 422 Unprocessable Entity: scripted 422 second line"
    with pytest.raises(OracleError, match="404 Not Found"):
        HttpOracle(URL, transport=httpx.MockTransport(lambda r: httpx.Response(404)))


def test_backoff_doubles_and_a_rate_limit_spaces_requests() -> None:
    started = time.monotonic()
    oracle(server([503, 503]), backoff=0.05).answer(queries(1))
    assert time.monotonic() - started >= 0.05 + 0.1
    client = oracle(server(), rate=20.0, max_batch=1)
    started = time.monotonic()
    client.answer(queries(4))
    assert time.monotonic() - started >= 3 / 20


def test_the_token_comes_from_the_environment_and_goes_nowhere_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JSMA_ORACLE_TOKEN", "s3cret-token")
    seen: list[httpx.Request] = []
    with caplog.at_level(logging.DEBUG):
        client = oracle(server([400], seen))
        with pytest.raises(OracleError) as raised:
            client.answer(queries(1))
    assert all(r.headers["Authorization"] == "Bearer s3cret-token" for r in seen)
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in caplog.text
    assert "s3cret" not in client.identity
    assert "s3cret" not in repr(client.__dict__.get("url"))
    monkeypatch.setenv("OTHER_TOKEN", "t")
    with pytest.raises(ConfigurationError, match="a bearer token goes over TLS only"):
        HttpOracle("http://models.example.com/v2/models/m", token_env="OTHER_TOKEN")
    monkeypatch.delenv("JSMA_ORACLE_TOKEN")
    seen.clear()
    oracle(server(seen=seen)).answer(queries(1))
    assert "Authorization" not in seen[-1].headers


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/models/m",
        "ftp://127.0.0.1/v2/models/m",
        "http://user:pw@127.0.0.1/v2/models/m",
        "http://127.0.0.1/v2/models/m?token=x",
    ],
)
def test_urls_that_are_not_a_v2_model_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"v2/models|credentials"):
        HttpOracle(url)


def test_metadata_and_answers_that_are_not_the_protocol_are_named() -> None:
    def only(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
        return httpx.MockTransport(handler)

    with pytest.raises(OracleError, match="metadata names no input"):
        HttpOracle(URL, transport=only(lambda r: httpx.Response(200, json={"inputs": []})))
    bad = {"inputs": [{"name": "i", "datatype": "INT8", "shape": [-1, 3]}]}
    with pytest.raises(OracleError, match="takes INT8, not floats"):
        HttpOracle(URL, transport=only(lambda r: httpx.Response(200, json=bad)))

    def garbage(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=METADATA)
        return httpx.Response(200, json={"outputs": "nope"})

    with pytest.raises(OracleError, match="not an inference response"):
        HttpOracle(URL, transport=only(garbage)).answer(queries(1))


def test_the_reference_opens_an_http_oracle() -> None:
    ref = OracleRef.parse(URL)
    assert ref.form == "http"
    assert ref.needs_naming
    assert str(ref) == URL
