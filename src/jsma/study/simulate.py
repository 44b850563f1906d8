"""`jsma study simulate`: machine observers that take the study through its real pages.

Each simulated participant is a thread with its own HTTP client: it opens the
study link, consents, does the practice, answers every trial by reading the
image the page shows, and finishes. Observers:

- `oracle`: answers the stimulus's true source digit (read from the study's
  design, which only a simulation may do); it exercises the pipeline;
- `knn`: the nearest training image (Euclidean, on pixels) names the digit;
- a model checkpoint: the model's prediction, "not a digit" when its top
  probability is under 0.5.

They follow the attention checks' instructions as written on the page, and
retry a request whose connection failed (a server restarting) for up to
`retry_seconds`, as a person reloading would; answers are idempotent, so a
retried answer is never stored twice. Their ids are `machine:KIND:N`, so the
analysis never pools them with people: they measure the pipeline and how
the adversarial samples transfer to other classifiers, never human perception.
"""

from __future__ import annotations

import html
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import torch
from matplotlib import image as mpimage
from torch import nn

from jsma.errors import ConfigurationError, JSMAError
from jsma.study._analysis import MACHINE_PREFIX
from jsma.study._store import StudyStore
from jsma.study.server import machine_signature

__all__ = [
    "Observer",
    "SimulationResult",
    "knn_observer",
    "model_observer",
    "oracle_observer",
    "serving",
    "simulate",
]

Observer = Callable[[np.ndarray, "int | None"], "tuple[bool, int | None]"]
"""(image in [0, 1] as (height, width), the true source when known) -> (is a digit, digit)."""

# "answer No (and choose no digit)." or "answer Yes, then choose 2." (a name: "frog.").
_PROMPT = re.compile(r'<p class="prompt">[^<]*?answer (Yes|No)(?:, then choose ([^<]+)\.</p>)?')
_MAX_STEPS = 1000  # pages per participant: far above any study's length


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation sent and what the study stored, and how fast."""

    participants: int
    answers_sent: int
    answers_stored: int
    duplicates: int
    latencies_ms: tuple[float, ...]
    seconds: float
    retries: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p95_ms(self) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(self.latencies_ms, 95))

    @property
    def answers_per_second(self) -> float:
        return self.answers_sent / self.seconds if self.seconds > 0 else float("nan")


def oracle_observer(image: np.ndarray, source: int | None) -> tuple[bool, int | None]:
    """Names the true source digit of every stimulus."""
    return (source is not None, source)


def knn_observer(train_images: np.ndarray, train_labels: np.ndarray) -> Observer:
    """The label of the nearest training image, its values scaled to [0, 1] as the
    pictures are, in their layout ((n, height, width) for grayscale, (n, 3, height,
    width) for colour)."""
    flat = train_images.reshape(len(train_images), -1).astype(np.float32)
    norms = (flat**2).sum(axis=1)

    def observe(image: np.ndarray, source: int | None) -> tuple[bool, int | None]:
        query = image.reshape(-1).astype(np.float32)
        nearest = int(np.argmin(norms - 2 * flat @ query))
        return True, int(train_labels[nearest])

    return observe


def model_observer(
    model: nn.Module, *, threshold: float = 0.5, bounds: tuple[float, float] = (0.0, 1.0)
) -> Observer:
    """The model's class, or "not a digit" when its top probability is under `threshold`.
    The picture's [0, 1] is mapped onto the data's `bounds`, where the model works."""
    lock = threading.Lock()  # one forward at a time: torch modules are not thread-safe
    low, high = bounds
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")

    def observe(image: np.ndarray, source: int | None) -> tuple[bool, int | None]:
        values = image.astype(np.float32) * (high - low) + low
        x = torch.from_numpy(values[None] if values.ndim == 2 else values)[None].to(device)
        with lock, torch.no_grad():
            probabilities = model(x).softmax(dim=1)[0]
        confidence, digit = probabilities.max(dim=0)
        return (True, int(digit)) if float(confidence) >= threshold else (False, None)

    return observe


@contextmanager
def serving(
    study: Path,
    *,
    trials_per_participant: int,
    admin_token: str | None = None,
    secret: bytes | None = None,
    port: int = 0,
) -> Iterator[str]:
    """The study served on 127.0.0.1 for the block (on `port`; 0: a free one); its base URL.

    `admin_token` as for `create_app` (random unless given), and `secret` (the
    study's own key unless given).
    """
    import secrets

    import uvicorn

    from jsma.study.server import create_app

    app = create_app(
        study,
        admin_token=admin_token or secrets.token_urlsafe(24),
        trials_per_participant=trials_per_participant,
        secret=secret,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise JSMAError("the study server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    if match is None:
        raise JSMAError(f"the page has no {name} field")
    return match.group(1)


class _Tally:
    """What the participants' threads measure, shared under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.retries = 0


def _picture(png: bytes, channels: int) -> np.ndarray:
    """A stimulus as its observer sees it, values in [0, 1]: (height, width) for a
    grayscale study, (3, height, width) for colour; `channels` 0: told from the pixels."""
    pixels = mpimage.imread(BytesIO(png))
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    rgb = pixels[..., :3]
    if channels == 0:
        channels = 1 if np.array_equal(rgb[..., :1].repeat(rgb.shape[-1], -1), rgb) else 3
    if channels == 1:
        return np.asarray(pixels[..., 0])
    return np.asarray(rgb.transpose(2, 0, 1))


def _class_asked(shown: str | None, names: Sequence[str] | None) -> int | None:
    """The class an attention check names: its index (a digit), or its name's index."""
    if shown is None:
        return None
    shown = html.unescape(shown)
    return int(shown) if names is None else list(names).index(shown)


def _participant(
    url: str, external: str, signature: str, observe: Observer,
    sources: Callable[[str, int], int | None], tally: _Tally, timeout: float,
    retry_seconds: float, channels: int, names: Sequence[str] | None,
) -> int:  # fmt: skip
    """Take the study once as `external`; return the number of answers acknowledged."""
    sent = 0
    with httpx.Client(base_url=url, follow_redirects=False, timeout=timeout) as client:

        def timed(method: str, path: str, **kwargs: object) -> httpx.Response:
            # The latency is the participant's: from the first try to the response.
            started = time.perf_counter()
            deadline, pause = started + retry_seconds, 0.05
            while True:
                try:
                    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
                    break
                except httpx.TransportError as error:
                    if time.perf_counter() + pause > deadline:
                        raise JSMAError(
                            f"{method} {path}: no answer from {url} within {retry_seconds:g} s "
                            f"({type(error).__name__})"
                        ) from None
                    with tally.lock:
                        tally.retries += 1
                    time.sleep(pause)
                    pause = min(2 * pause, 1.0)
            with tally.lock:
                tally.latencies.append((time.perf_counter() - started) * 1e3)
            if response.status_code >= 400:
                raise JSMAError(f"{method} {path}: HTTP {response.status_code}")
            return response

        page = timed("GET", "/", params={"PROLIFIC_PID": external}).text
        joining = {"csrf": _field(page, "csrf"), "external_id": external, "consent": "yes",
                   "machine_signature": signature}  # fmt: skip
        timed("POST", "/join", data=joining)
        path = "/practice/1"
        for _ in range(_MAX_STEPS):
            page_response = timed("GET", path)
            if page_response.status_code == 303:
                path = page_response.headers["location"]
                if path == "/done":
                    break
                continue
            page = page_response.text
            action = re.search(r'action="([^"]+)"', page)
            image = re.search(r'src="(/(?:trial|practice)/\d+/image)"', page)
            if action is None or image is None:
                raise JSMAError(f"{path}: not a trial page")
            prompt = _PROMPT.search(page)
            if prompt is not None:  # an attention check says what to answer
                is_digit = prompt.group(1) == "Yes"
                digit: int | None = _class_asked(prompt.group(2), names) if is_digit else None
            else:
                picture = _picture(timed("GET", image.group(1)).content, channels)
                position = re.search(r"/trial/(\d+)/image", image.group(1))
                token = client.cookies.get("jsma_session") or ""
                source = sources(token, int(position.group(1))) if position else None
                is_digit, digit = observe(picture, source)
            fields = {name: _field(page, name) for name in ("csrf", "served", "served_signature")}
            fields["is_digit"] = "yes" if is_digit else "no"
            if is_digit:
                fields["digit"] = str(digit)
            response = timed("POST", action.group(1), data=fields)
            if action.group(1).startswith("/trial/"):
                sent += 1
            path = response.headers["location"]
        else:
            raise JSMAError(f"{external}: the study did not end within {_MAX_STEPS} pages")
        timed("GET", "/done")
    return sent


def simulate(
    study: Path,
    observer: str,
    *,
    observe: Observer,
    participants: int,
    concurrency: int,
    url: str | None = None,
    trials_per_participant: int = 40,
    timeout: float = 30.0,
    retry_seconds: float = 60.0,
) -> SimulationResult:
    """`participants` machine observers of kind `observer`, `concurrency` at a time, take
    the study at `url` (or at a server started here on 127.0.0.1).

    A request whose connection fails is retried for up to `retry_seconds`.
    """
    if participants < 1 or concurrency < 1:
        raise ConfigurationError("participants and concurrency must be positive")
    if retry_seconds < 0:
        raise ConfigurationError("retry_seconds cannot be negative")
    store = StudyStore.open(study)
    before = len(store.answers())
    start = len({r.participant for r in store.answers()})

    def sources(token: str, position: int) -> int | None:
        stimulus = store.trial_stimulus(token, position)
        return None if stimulus is None else stimulus.source

    tally = _Tally()

    def run(base: str) -> tuple[int, float]:
        started = time.perf_counter()
        externals = [f"{MACHINE_PREFIX}{observer}:{start + i + 1}" for i in range(participants)]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [
                pool.submit(
                    _participant,
                    base,
                    external,
                    machine_signature(study, external),
                    observe,
                    sources,
                    tally,
                    timeout,
                    retry_seconds,
                    store.channels,
                    store.class_names,
                )
                for external in externals
            ]
            sent = sum(future.result() for future in futures)
        return sent, time.perf_counter() - started

    if url is None:
        with serving(study, trials_per_participant=trials_per_participant) as base:
            sent, seconds = run(base)
    else:
        sent, seconds = run(url)
    rows = store.answers()
    keys = [(r.participant, r.position) for r in rows]
    return SimulationResult(
        participants=participants,
        answers_sent=sent,
        answers_stored=len(rows) - before,
        duplicates=len(keys) - len(set(keys)),
        latencies_ms=tuple(tally.latencies),
        seconds=seconds,
        retries=tally.retries,
    )
