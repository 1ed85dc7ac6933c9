"""``applyq api``: the HTTP enqueue API, for job boards written in any language (FastAPI).

* ``POST /submissions``, the key in ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header): 201 and
  the submission the first time; the same key with the same body again: 200, the same submission and
  ``Idempotent-Replayed: true``; the same key with a different body: 422; while a request with the same key
  is still being processed: 409, to be retried unchanged. A missing key: 400.
* ``GET /submissions/{id}``: one submission, by id or idempotency key.
* Every route but the documentation needs ``Authorization: Bearer <one of APPLYQ_API_TOKENS>``, checked with
  the rate limits, the media type and the body's size before the body is read (``worker/intake/guard.py``).
* The OpenAPI document is ``/openapi.json`` (rendered at ``/docs``); errors are RFC 9457 problem details, an
  unexpected one too (500, with an ``error_id``; the log has the id and the error's type, never the data).

"In progress" is known two ways: a key this process is handling, and, on PostgreSQL, a transaction-scoped
advisory lock on the key, so API processes sharing one database see each other's requests in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr, ValidationError
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.db.engine import is_postgres
from worker.errors import IdempotencyConflict, SubmissionNotFound
from worker.intake.guard import Guard, Tokens
from worker.intake.library import Applyq, Enqueued, SubmissionOut
from worker.intake.problems import MEDIA_TYPE, CatchAll, Problem, ProblemOut, install
from worker.intake.ratelimit import RedisRequestLimiter, RequestLimiter, Window, async_redis_client
from worker.intake.vendor_events import VendorEventConfig, install_vendor_events
from worker.logs import configure_logging
from worker.runtime.broker import resolve_broker_url
from worker.schemas import SubmissionIn, is_reference

__all__ = [
    "ADVISORY_LOCK_CLASS",
    "InFlight",
    "SubmissionRequest",
    "create_app",
    "in_flight_name",
    "parse_idempotency_key",
    "serve",
]

#: The first key of PostgreSQL's two-key advisory locks, so applyq's locks don't meet other users'.
ADVISORY_LOCK_CLASS = 0x61707100


class SubmissionRequest(SubmissionIn):
    """The POST body: a submission whose ``idempotency_key`` comes from the ``Idempotency-Key`` header."""

    idempotency_key: str | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=255, description="optional; if given, must equal the header"
    )


def parse_idempotency_key(raw: str | None) -> str:
    """The key from the header: a structured-field string (``"..."``) or a bare value, 1 to 255 characters."""
    value = (raw or "").strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(value) <= 255:
        raise Problem("idempotency-key-required", "send a unique Idempotency-Key header of 1 to 255 characters")
    return value


class InFlight:
    """Idempotency keys whose requests this process is still handling."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Mark ``key`` busy for the block; raise the 409 problem if it already is."""
        with self._lock:
            if key in self._keys:
                raise _in_use()
            self._keys.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(key)


def _in_use() -> Problem:
    return Problem("idempotency-key-in-use", "retry in a moment", headers={"Retry-After": "1"})


def in_flight_name(scope: str, key: str) -> str:
    """What "this key is being processed" is held under: a client's key, so another client's same key never waits."""
    return f"{scope} {key}"


def _lock_key(session: Session, key: str) -> bool:
    """On PostgreSQL, lock the key until this transaction ends; False if another transaction holds it."""
    if not is_postgres(session):
        return True  # SQLite: ``BEGIN IMMEDIATE`` serialises writers, one process handles a key at a time
    return bool(
        session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(ADVISORY_LOCK_CLASS, sa.func.hashtext(key))))
    )


def _submission(body: SubmissionRequest, key: str) -> SubmissionIn:
    """The canonical submission: the body with the header's key."""
    if body.idempotency_key not in (None, key):
        errors = [{"pointer": "#/idempotency_key", "detail": "must equal the Idempotency-Key header"}]
        raise Problem("invalid-submission", "1 problem(s) in the request; see 'errors'", extra={"errors": errors})
    try:
        return SubmissionIn.model_validate({**body.model_dump(mode="json"), "idempotency_key": key})
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc


def _store(applyq: Applyq, item: SubmissionIn, scope: str) -> Enqueued:
    """Store in one transaction (published after its commit); 409 if another one holds the key."""
    with applyq.sessions() as session:
        if not _lock_key(session, in_flight_name(scope, item.idempotency_key)):
            raise _in_use()
        try:
            enqueued = applyq.enqueue(item, session=session, scope=scope)
        except IdempotencyConflict as exc:
            detail = f"the key was already used for submission {exc.existing_id} with a different body"
            raise Problem("idempotency-key-reused", detail, extra={"submission_id": exc.existing_id}) from exc
        session.commit()
    return enqueued


_BEARER = HTTPBearer(auto_error=False, description="one of the tokens in APPLYQ_API_TOKENS")


class _RequireToken:
    """The auth dependency: documents the bearer scheme in OpenAPI, and checks again what ``Guard`` checked."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> str:
        """The token's name, never the token: the client scope its idempotency keys are unique in."""
        given = f"Bearer {credentials.credentials}" if credentials else None
        scope = self._tokens.identify(given)
        if scope is None:
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        return scope


_KEY_HELP = "Required: unique per application, 1-255 characters (a UUID or the job board's application id)."


def _idempotency_key(idempotency_key: Annotated[str | None, Header(description=_KEY_HELP)] = None) -> str:
    """The header's key, as a dependency: FastAPI runs dependencies before it validates the body's fields, so a
    request without a key is told so (400) whatever its body says, as the Idempotency-Key draft asks."""
    return parse_idempotency_key(idempotency_key)


_ERRORS = {
    400: "Idempotency-Key header missing or invalid",
    401: "Missing or unknown bearer token",
    404: "No submission has this id or idempotency key",
    409: "A request with this Idempotency-Key is in progress: retry it unchanged",
    413: "The body is larger than APPLYQ_API_MAX_BODY_BYTES (not read)",
    415: "The body is not application/json",
    422: "Invalid submission, or the Idempotency-Key was used with a different body",
    429: "Too many requests from this client address or token: retry after Retry-After seconds",
    500: "Unexpected error; 'error_id' names it in the log: retry unchanged",
}


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers (moved to ``application/problem+json`` in ``_openapi``)."""
    return {status: {"model": ProblemOut, "description": _ERRORS[status]} for status in statuses}


def create_app(
    applyq: Applyq,
    tokens: Sequence[SecretStr],
    *,
    limiter: RequestLimiter,
    max_body_bytes: int,
    vendor_events: VendorEventConfig | None = None,
) -> FastAPI:
    """The API over ``applyq``, accepting ``tokens`` as bearer tokens, within ``limiter``'s limits."""
    app = FastAPI(
        title="applyq",
        version="1",
        summary="Enqueue job applications for delivery to applicant-tracking systems; read their outcome.",
    )
    install(app)
    in_flight = InFlight()
    accepted = Tokens(tokens)
    token = Depends(_RequireToken(accepted))  # a request's client scope; FastAPI runs it once per request
    auth = [token]
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    open_paths = {path for path in docs if path}
    # vendor events carry the vendor's signature, not a token: checked (and body-limited) by their own routes
    open_paths |= install_vendor_events(
        app, applyq, vendor_events or VendorEventConfig(), max_body_bytes=max_body_bytes
    )
    app.add_middleware(
        Guard, tokens=accepted, limiter=limiter, max_body_bytes=max_body_bytes, open_paths=frozenset(open_paths)
    )
    app.add_middleware(CatchAll)  # added last: the outermost, so the guard's own errors are answered too

    @app.post(
        "/submissions",
        status_code=201,
        response_description="Created: the new submission",
        dependencies=auth,
        responses={
            200: {"model": SubmissionOut, "description": "A replay"},
            **_problems(400, 401, 409, 413, 415, 422, 429, 500),
        },
    )
    def create_submission(
        body: SubmissionRequest,
        response: Response,
        key: Annotated[str, Depends(_idempotency_key)],
        client_scope: str = token,  # a default, not Annotated: the annotation would name a local variable
    ) -> SubmissionOut:
        """Validate, store and schedule one application (idempotent on the ``Idempotency-Key`` header)."""
        item = _submission(body, key)
        with in_flight.hold(in_flight_name(client_scope, key)):
            enqueued = _store(applyq, item, client_scope)
        response.headers["Location"] = f"/submissions/{enqueued.submission.id}"
        if not enqueued.created:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return enqueued.submission

    @app.get("/submissions/{submission_id}", dependencies=auth, responses=_problems(401, 404, 429, 500))
    def get_submission(submission_id: str, client_scope: str = token) -> SubmissionOut:
        """One submission by id (or idempotency key): its status and what to tell the candidate."""
        if not is_reference(submission_id):  # no stored id or key has a control character: the database never sees it
            raise HTTPException(404, "no submission has this id or idempotency key")
        try:
            return applyq.get_submission(submission_id, scope=client_scope)
        except SubmissionNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error answers as ``application/problem+json`` (FastAPI's 422 shape removed)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi  # local: built once, on the first /openapi.json

        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for path in schema["paths"].values():
            for operation in path.values():
                operation["responses"] = {
                    status: _as_problem(answer)
                    for status, answer in operation.get("responses", {}).items()
                    if "HTTPValidationError" not in str(answer)
                }
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


def _as_problem(answer: dict[str, Any]) -> dict[str, Any]:
    content = answer.get("content", {})
    if answer.get("description") in _ERRORS.values() and "application/json" in content:
        answer["content"] = {MEDIA_TYPE: content["application/json"]}
    return answer


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API in the foreground until interrupted."""
    import uvicorn  # local: importing the app (tests, OpenAPI) needs no server

    configure_logging(settings.log_level)
    applyq = Applyq.from_settings(settings, pool_size=10)
    limiter = RedisRequestLimiter(
        async_redis_client(resolve_broker_url(settings)),
        rate=Window.parse(settings.api_rate_limit),
        auth_failures=Window.parse(settings.api_auth_failure_limit),
        namespace=settings.queue,
    )
    app = create_app(
        applyq,
        settings.api_tokens,
        limiter=limiter,
        max_body_bytes=settings.api_max_body_bytes,
        vendor_events=VendorEventConfig.from_settings(settings),
    )
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        applyq.close()
