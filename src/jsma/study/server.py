"""`jsma study serve`: the study as web pages people answer (Starlette, Jinja2, SQLite).

The participant's flow: consent -> instructions with two practice trials -> the
trials -> a completion page with a completion code (and the recruiting site's
completion link, when the study has one). Every form posts and redirects
(post/redirect/get), so a reload never sends an answer twice, and the store
keeps answers idempotent anyway.

Security, since a study server faces the internet: the session token is an
unguessable cookie (`HttpOnly`, `SameSite=Strict`) that reaches only its own
trials; every form carries a CSRF token (a random cookie value repeated in the
form before the session exists, an HMAC of the session after); admin pages need
the admin token; every input is checked and bad input gets a 4xx with a
message, never a traceback; templates autoescape; and the pages run no inline
script (a Content-Security-Policy allows scripts from this server only).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from jsma._io import csv_text
from jsma.errors import ConfigurationError, JSMAError, StorageError
from jsma.study._analysis import MACHINE_PREFIX
from jsma.study._design import read_consent
from jsma.study._store import StudyStore

__all__ = [
    "EXTERNAL_ID_PARAMETERS",
    "SECRET_FILE",
    "create_app",
    "machine_signature",
    "study_secret",
]

# Where recruiting sites put a participant's id in the study link.
EXTERNAL_ID_PARAMETERS = ("PROLIFIC_PID", "workerId", "participant")
SESSION_COOKIE, CSRF_COOKIE = "jsma_session", "jsma_csrf"
SECRET_FILE = "server.key"  # in the study directory, readable by its owner only
_SECRET_BYTES = 32
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_MAX_FORM_FIELD = 256
_NUMBER = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() takes "²" and "٣"


def _secure(response: Response) -> Response:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        return _secure(await call_next(request))


def machine_signature(directory: Path, external_id: str) -> str:
    """What proves a join with a `machine:` id came from `jsma study simulate` (which
    can read the study's key) and not from a person who typed such an id."""
    message = f"machine|{external_id}".encode()
    return hmac.new(study_secret(directory), message, hashlib.sha256).hexdigest()


def create_app(
    directory: Path,
    *,
    admin_token: str,
    trials_per_participant: int = 40,
    secret: bytes | None = None,
) -> Starlette:
    """The study server's ASGI application for the study in `directory`.

    `admin_token` opens `/admin` and `/admin/answers.csv`; `secret` signs the
    CSRF tokens and the served-at times (by default the study's own, kept in
    `STUDY/server.key`, so pages served before a restart can still be answered).
    """
    if len(admin_token) < 16:
        raise ConfigurationError("the admin token needs at least 16 characters")
    store = StudyStore(directory, trials_per_participant=trials_per_participant)
    key = secret if secret is not None else study_secret(directory)
    # Autoescaping on for every template: a participant id of `<script>` shows as text.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("jsma.study") / "templates")),
        autoescape=True,
    )
    templates = Jinja2Templates(env=environment)
    practice = sorted(i for i, s in store.stimuli.items() if s.condition == "practice")

    def sign(*parts: object) -> str:
        message = "|".join(str(part) for part in parts).encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        # Every page words its questions by the study's classes: digits, or named ones.
        context.setdefault("names", store.class_names)
        return templates.TemplateResponse(request, name, context, status_code=status)

    def session(request: Request) -> str:
        token = request.cookies.get(SESSION_COOKIE, "")
        try:
            store.participant(token)
        except JSMAError:
            raise HTTPException(
                403, "This page needs a session: start from the study link."
            ) from None
        return token

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        if any(len(v) > _MAX_FORM_FIELD for v in fields.values()):
            raise HTTPException(400, "A form field is too long.")
        return fields

    def check_csrf(given: str, expected: str) -> None:
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(403, "The form has expired or did not come from this study.")

    async def posted(request: Request) -> tuple[str, dict[str, str]]:
        """The session and the fields of a participant's form, its CSRF token checked."""
        token = session(request)
        fields = await form(request)
        check_csrf(fields.get("csrf", ""), sign("csrf", token))
        return token, fields

    def practice_number(request: Request) -> int:
        number = _int(request.path_params["number"], "practice trial")
        if not 1 <= number <= len(practice):
            raise HTTPException(404, "No such practice trial.")
        return number

    async def consent(request: Request) -> Response:
        external = next(
            (request.query_params[p] for p in EXTERNAL_ID_PARAMETERS if p in request.query_params),
            "",
        )
        if len(external) > 128:
            raise HTTPException(400, "The participant id is too long (at most 128 characters).")
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        response = page(
            request, "consent.html", external_id=external, csrf=csrf,
            consent=read_consent(directory),
        )  # fmt: skip
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_https(request)
        )
        return response

    async def join(request: Request) -> Response:
        fields = await form(request)
        browser = request.cookies.get(CSRF_COOKIE, "")
        check_csrf(fields.get("csrf", ""), browser)
        if fields.get("consent") != "yes":
            raise HTTPException(400, "The study needs your consent to go on.")
        external = fields.get("external_id") or ""
        if external.startswith(MACHINE_PREFIX) and not hmac.compare_digest(
            fields.get("machine_signature", "").encode(),
            machine_signature(directory, external).encode(),
        ):
            raise HTTPException(
                400, f"Participant ids starting with {MACHINE_PREFIX!r} are reserved."
            )
        try:
            # Keyed by the browser's random cookie: a retried join (its reply lost in a
            # restart) or a second visit with the same id resumes, never admits twice.
            participant = store.join(fields.get("external_id") or None, join_key=browser)
        except ConfigurationError as error:
            raise HTTPException(400, str(error)) from None
        response = RedirectResponse("/instructions", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, participant.token, httponly=True, samesite="strict",
            secure=_https(request),
        )  # fmt: skip
        return response

    async def instructions(request: Request) -> Response:
        token = session(request)
        return page(request, "instructions.html", csrf=sign("csrf", token), practice=len(practice))

    def trial_page(request: Request, token: str, *, number: int, count: int, image: str,
                   action: str, prompt: str | None, kind: str) -> Response:  # fmt: skip
        served = int(time.time() * 1000)
        return page(
            request, "trial.html", number=number, count=count, image=image, action=action,
            prompt=prompt, kind=kind, classes=store.classes, csrf=sign("csrf", token),
            served=served,
            served_signature=sign("served", token, action, served),
        )  # fmt: skip

    async def practice_trial(request: Request) -> Response:
        token = session(request)
        number = practice_number(request)
        return trial_page(
            request, token, number=number, count=len(practice),
            image=f"/practice/{number}/image", action=f"/practice/{number}", prompt=None,
            kind="practice",
        )  # fmt: skip

    async def practice_answer(request: Request) -> Response:
        _, fields = await posted(request)
        number = practice_number(request)
        _parse_answer(fields, store.classes, store.class_names)  # checked, not stored
        following = f"/practice/{number + 1}" if number < len(practice) else "/trial"
        return RedirectResponse(following, status_code=303)

    async def practice_image(request: Request) -> Response:
        session(request)
        number = practice_number(request)
        return FileResponse(directory / "images" / store.stimuli[practice[number - 1]].image)

    async def trial(request: Request) -> Response:
        token = session(request)
        current = store.next_trial(token)
        if current is None:
            return RedirectResponse("/done", status_code=303)
        return trial_page(
            request, token, number=current.position + 1, count=current.count,
            image=f"/trial/{current.position}/image", action=f"/trial/{current.position}",
            prompt=current.stimulus.prompt, kind="trial",
        )  # fmt: skip

    async def answer(request: Request) -> Response:
        token, fields = await posted(request)
        position = _int(request.path_params["position"], "trial")
        is_digit, digit = _parse_answer(fields, store.classes, store.class_names)
        served = _int(fields.get("served", ""), "served time")
        action = f"/trial/{position}"
        check_csrf(fields.get("served_signature", ""), sign("served", token, action, served))
        elapsed = max(0, int(time.time() * 1000) - served)
        try:
            store.answer(token, position, is_digit=is_digit, digit=digit, milliseconds=elapsed)
        except ConfigurationError as error:
            raise HTTPException(400, str(error)) from None
        except JSMAError as error:
            raise HTTPException(404, str(error)) from None
        return RedirectResponse("/trial", status_code=303)

    async def trial_image(request: Request) -> Response:
        token = session(request)
        position = _int(request.path_params["position"], "trial")
        stimulus = store.trial_stimulus(token, position)
        if stimulus is None:
            raise HTTPException(404, "No such image.")
        return FileResponse(directory / "images" / stimulus.image)

    async def done(request: Request) -> Response:
        token = session(request)
        code = store.finish(token)
        if code is None:
            return RedirectResponse("/trial", status_code=303)
        return page(request, "done.html", code=code, completion_url=store.completion_url)

    def admin_check(request: Request) -> None:
        given = request.query_params.get("token") or request.headers.get("x-admin-token", "")
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            raise HTTPException(403, "The admin pages need the admin token.")

    async def admin(request: Request) -> Response:
        admin_check(request)
        return page(request, "admin.html", progress=store.progress(), token=admin_token)

    async def export(request: Request) -> Response:
        admin_check(request)
        rows = store.answers()
        header = rows[0]._fields if rows else ("participant",)
        return Response(
            csv_text(header, rows), media_type="text/csv",
            headers={"Content-Disposition": "attachment; filename=answers.csv"},
        )  # fmt: skip

    async def problem(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        detail = error.detail if isinstance(error, HTTPException) else "Something went wrong."
        # Headers here too: a 500 is answered outside the middleware.
        return _secure(page(request, "error.html", status=status, message=detail))

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)  # browsers ask for one on every site

    routes = [
        Route("/", consent),
        Route("/favicon.ico", no_icon),
        Route("/join", join, methods=["POST"]),
        Route("/instructions", instructions),
        Route("/practice/{number}", practice_trial),
        Route("/practice/{number}", practice_answer, methods=["POST"]),
        Route("/practice/{number}/image", practice_image),
        Route("/trial", trial),
        Route("/trial/{position}", answer, methods=["POST"]),
        Route("/trial/{position}/image", trial_image),
        Route("/done", done),
        Route("/admin", admin),
        Route("/admin/answers.csv", export),
        Mount("/static", StaticFiles(directory=str(resources.files("jsma.study") / "static"))),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={HTTPException: problem, Exception: problem},
    )
    # No redirect from `/static` to `/static/`: Starlette builds it from the request's
    # Host header, which a client controls.
    app.router.redirect_slashes = False
    return app


def study_secret(directory: Path) -> bytes:
    """The study's signing key, made on first use (mode 0600) and the same after.

    Created beside its final name and linked into place, so two servers started
    at once on one study agree on one key.
    """
    path = directory / SECRET_FILE
    if not path.exists():
        temporary = directory / f".{SECRET_FILE}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(_SECRET_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another server made it first: use theirs
        finally:
            temporary.unlink()
    key = path.read_bytes()
    if len(key) != _SECRET_BYTES:
        raise StorageError(
            f"{path}: a study key has {_SECRET_BYTES} bytes, this one {len(key)}; delete it "
            "to make a new one (pages open in browsers then need a reload)"
        )
    return key


def _https(request: Request) -> bool:
    """Cookies are `Secure` when the page came over HTTPS (behind a TLS proxy, uvicorn's
    proxy headers say so); on plain-HTTP 127.0.0.1 they could not be sent back."""
    return request.url.scheme == "https"


def _int(value: str, what: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise HTTPException(400, f"Not a valid {what}.")
    return int(value)


def _parse_answer(
    fields: dict[str, str], classes: int, names: tuple[str, ...] | None = None
) -> tuple[bool, int | None]:
    """(recognised, class) from a posted answer; the class is an index, its name shown
    on the page where the study has named classes."""
    is_digit = fields.get("is_digit")
    if is_digit not in ("yes", "no"):
        what = "a digit" if names is None else "one of the classes"
        raise HTTPException(400, f"Answer whether the image is {what} (yes or no).")
    if is_digit == "no":
        return False, None
    digit = fields.get("digit", "")
    if not _NUMBER.fullmatch(digit) or int(digit) >= classes:
        if names is None:
            raise HTTPException(400, f"Choose which digit it is (0 to {classes - 1}).")
        raise HTTPException(400, f"Choose which class it is ({', '.join(names)}).")
    return True, int(digit)
