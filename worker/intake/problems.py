"""RFC 9457 problem details for the HTTP API: every error is ``application/problem+json``.

applyq's own problem types are relative URIs (``/problems/<name>``) that the API serves as plain-text
documentation; every other error (401, 404, 405, ...) is ``about:blank`` with the HTTP reason as title.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MEDIA_TYPE",
    "TYPES",
    "CatchAll",
    "FieldError",
    "Problem",
    "ProblemOut",
    "ProblemType",
    "install",
    "pointer",
    "problem_response",
]

log = logging.getLogger("applyq.api")

MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: its URI name, status, title, and what the client should do."""

    name: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        """The ``type`` member (a URI reference, resolved against the API's address)."""
        return f"/problems/{self.name}"


TYPES: Mapping[str, ProblemType] = {
    t.name: t
    for t in (
        ProblemType(
            "invalid-submission", 422, "The submission is invalid",
            "The body failed validation; nothing was stored. 'errors' lists each problem with a JSON pointer "
            "into the body. Correct the request before sending it again.",
        ),
        ProblemType(
            "idempotency-key-required", 400, "Idempotency-Key header missing or invalid",
            "POST /submissions needs an Idempotency-Key header: a string of 1 to 255 characters that is unique "
            "per application (a UUID, or the job board's own application id), as a structured-field string "
            '("...") or bare. Send the same key when retrying the same request.',
        ),
        ProblemType(
            "idempotency-key-reused", 422, "Idempotency-Key reused with a different body",
            "This key already belongs to a submission with a different body; nothing was stored. A different "
            "application needs a new key. The existing submission is named in 'submission_id'.",
        ),
        ProblemType(
            "idempotency-key-in-use", 409, "A request with this Idempotency-Key is in progress",
            "Another request with the same key is still being processed. Retry after a moment; the request "
            "needs no change.",
        ),
        ProblemType(
            "body-too-large", 413, "The request body is too large",
            "The body is larger than the API accepts (APPLYQ_API_MAX_BODY_BYTES); it was not read and nothing "
            "was stored. A CV too large for the body is too large for the providers: send a smaller file or a url.",
        ),
        ProblemType(
            "unsupported-media-type", 415, "The body must be JSON",
            "Send the body with Content-Type: application/json; nothing was stored.",
        ),
        ProblemType(
            "rate-limited", 429, "Too many requests",
            "This client address or token sent more requests than the API answers in a while (APPLYQ_API_RATE_"
            "LIMIT), or this address sent too many requests without a valid token (APPLYQ_API_AUTH_FAILURE_LIMIT). "
            "Nothing was stored. Retry after the seconds in the Retry-After header.",
        ),
        ProblemType(
            "internal-error", 500, "Internal error",
            "Something unexpected went wrong; the request may or may not have been stored. Retry it unchanged "
            "(the Idempotency-Key makes that safe). 'error_id' names the error in applyq's log for its operators.",
        ),
    )
}  # fmt: skip


class FieldError(BaseModel):
    """One validation problem: where in the body, and what is wrong."""

    pointer: str = Field(description="JSON pointer into the request body, e.g. #/candidate/email")
    detail: str


class ProblemOut(BaseModel):
    """An RFC 9457 problem details object (the OpenAPI schema of every error answer)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    error_id: str | None = Field(default=None, description="a 500's id in applyq's log")


@dataclass
class Problem(Exception):
    """Raised by a route to answer with one of ``TYPES``."""

    name: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def pointer(loc: Sequence[int | str]) -> str:
    """A JSON pointer (RFC 6901, as a URI fragment) for a pydantic error location inside the body."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "#/" + "/".join(parts) if parts else "#"


def problem_response(
    status: int,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response; ``title`` defaults to the HTTP reason phrase."""
    body: dict[str, Any] = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status}
    body.update({k: v for k, v in {"detail": detail, "instance": instance, **extra}.items() if v is not None})
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=MEDIA_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    kind = TYPES[exc.name]
    return problem_response(
        kind.status, type_=kind.uri, title=kind.title, detail=exc.detail, instance=request.url.path,
        headers=exc.headers, **exc.extra,
    )  # fmt: skip


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_error_item(err) for err in exc.errors()]
    kind = TYPES["invalid-submission"]
    detail = f"{len(errors)} problem(s) in the request; see 'errors'"
    return problem_response(
        kind.status, type_=kind.uri, title=kind.title, detail=detail, instance=request.url.path, errors=errors
    )


def _error_item(err: Mapping[str, Any]) -> dict[str, str]:
    """``{"pointer", "detail"}`` for one pydantic error; model-level "field: message" errors point at the field."""
    loc, message = tuple(err["loc"]), str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        return {"pointer": "#", "detail": f"the body is not valid JSON ({err.get('ctx', {}).get('error', message)})"}
    if not loc or loc[0] != "body":
        return {"pointer": "#", "detail": f"{'.'.join(map(str, loc))}: {message}"}
    path = loc[1:]
    field_name, sep, rest = message.partition(": ")
    parts = field_name.split(".")
    if sep and parts[0].isidentifier() and all(p.isidentifier() or p.isdigit() for p in parts):
        path, message = (*path, *parts), rest  # "candidate.location.city: ..." → #/candidate/location/city
    return {"pointer": pointer(path), "detail": message}


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for a body json.loads could not parse
        error = RequestValidationError([{"type": "too_deep", "loc": ("body",), "msg": "the JSON is nested too deeply"}])
        return await _on_validation(request, error)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem_response(exc.status_code, detail=detail, instance=request.url.path, headers=exc.headers)


class CatchAll:
    """The outermost middleware: an unexpected error is answered 500 with an error id, and logged without data.

    The log line has the error id, the exception's type (and its cause's) and where it was raised; never its
    message, which for a database error holds the statement's parameters (candidate data), nor the body.
    Nothing is re-raised, so neither Starlette nor uvicorn logs the traceback with its message either.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            error_id = uuid.uuid4().hex
            log.error("unexpected error, answered 500", extra=_error_fields(exc, error_id, scope))
            if not started:
                kind = TYPES["internal-error"]
                detail = f"quote error id {error_id} to the operators of this API"
                answer = problem_response(
                    500, type_=kind.uri, title=kind.title, detail=detail, instance=scope["path"], error_id=error_id
                )
                await answer(scope, receive, send)


def _error_fields(exc: BaseException, error_id: str, scope: Scope) -> dict[str, Any]:
    """What is safe to log about an error: types and code locations, no messages, no values."""
    cause = exc.__cause__ or exc.__context__
    frames = traceback.extract_tb(exc.__traceback__)[-8:]
    return {
        "error_id": error_id,
        "error_type": _qualified(exc),
        "cause_type": _qualified(cause) if cause is not None else None,
        "method": scope.get("method"),
        "route": getattr(scope.get("route"), "path", None),
        "stack": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
    }


def _qualified(exc: BaseException) -> str:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


def install(app: FastAPI) -> None:
    """Answer every error as problem details, and serve ``/problems/<name>`` documentation."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)

    @app.get("/problems/{name}", include_in_schema=False)
    def problem_type(name: str) -> PlainTextResponse:
        kind = TYPES.get(name)
        if kind is None:
            raise HTTPException(404)
        return PlainTextResponse(f"{kind.title} (HTTP {kind.status})\n\n{kind.description}\n")
