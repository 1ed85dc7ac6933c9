"""What ``applyq api`` checks before it reads a body: the token, the rate limits, the media type and the size.

An ASGI middleware, so that all of it happens before FastAPI reads and parses the body (FastAPI resolves a
route's dependencies only after that). In order: the limits (429), the bearer token (401), a JSON media type
for a body (415), ``Content-Length`` against ``APPLYQ_API_MAX_BODY_BYTES`` (413); then the body is read
while its bytes are counted (a chunked body has no length to check), 413 as soon as it passes the limit.
A request refused before its body was read is answered with ``Connection: close``: the server then stops
reading instead of draining an upload nobody will use.

The documentation (``/openapi.json``, ``/docs``, ``/problems/…``) is open to all.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.intake.problems import TYPES, problem_response
from worker.intake.ratelimit import RequestLimiter, Verdict

__all__ = ["Guard", "Tokens", "client_address"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Tokens:
    """The accepted bearer tokens, each with a name for rate-limit keys (a hash: the token is never stored)."""

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        secrets = [t.get_secret_value().encode() for t in tokens if t.get_secret_value()]
        self._tokens = [(s, "t" + hashlib.sha256(s).hexdigest()[:16]) for s in secrets]

    def identify(self, authorization: str | bytes | None) -> str | None:
        """The name of the token in an ``Authorization: Bearer …`` header, or None; compared in constant time."""
        raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization or b""
        scheme, _, given = raw.strip().partition(b" ")
        given = given.strip() if scheme.lower() == b"bearer" else b""
        names = [name for token, name in self._tokens if hmac.compare_digest(given, token)]  # each one compared
        return names[0] if names else None


def client_address(scope: Scope) -> str:
    """Whom to count a request against: its client's address (an IPv6 client's /64, which it can vary freely).

    Behind a reverse proxy this is the proxy unless uvicorn trusts its ``X-Forwarded-For``
    (``FORWARDED_ALLOW_IPS``; 127.0.0.1 by default).
    """
    client = scope.get("client")
    host = client[0] if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Guard:
    """The middleware: refuses a request, or hands the app its body read in full and within the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Tokens,
        limiter: RequestLimiter,
        max_body_bytes: int,
        open_paths: Collection[str],
    ) -> None:
        self.app = app
        self._tokens = tokens
        self._limiter = limiter
        self._max = max_body_bytes
        self._open = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or scope["path"].startswith("/problems/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = self._tokens.identify(headers.get("authorization"))
        verdict = await self._limiter.admit(client_address(scope), token)
        refusal = self._refusal(scope, headers, token, verdict)
        if refusal is None:
            body = await _read_body(receive, self._max)
            if body is not None:
                await self.app(scope, _replay(body, receive), send)
                return
            refusal = _too_large(self._max, closing=True)
        await refusal(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers, token: str | None, verdict: Verdict) -> Any:
        """The answer to a request refused before its body is read, or None."""
        closing = _has_body(headers)
        if not verdict.allowed:
            kind = TYPES["rate-limited"]
            detail = f"too many requests from this client or token; retry in {verdict.retry_after_s} s"
            answer = _problem(kind.name, detail, closing, {"Retry-After": str(verdict.retry_after_s)})
        elif token is None:
            answer = problem_response(
                401, detail="a valid bearer token is required", headers=_close({"WWW-Authenticate": "Bearer"}, closing)
            )
        elif scope["method"] in _BODY_METHODS and not _is_json(headers.get("content-type")):
            answer = _problem("unsupported-media-type", "send the body as Content-Type: application/json", closing)
        elif _declared_length(headers) > self._max:
            answer = _too_large(self._max, closing=closing)
        else:
            answer = None
        return answer


def _problem(name: str, detail: str, closing: bool, headers: dict[str, str] | None = None) -> Any:
    kind, headers = TYPES[name], _close(headers, closing)
    return problem_response(kind.status, type_=kind.uri, title=kind.title, detail=detail, headers=headers)


def _too_large(limit: int, *, closing: bool) -> Any:
    return _problem("body-too-large", f"the body may be at most {limit} bytes", closing)


def _close(headers: dict[str, str] | None, closing: bool) -> dict[str, str]:
    """``Connection: close`` when a body was left unread: uvicorn then stops reading it."""
    return {**(headers or {}), **({"Connection": "close"} if closing else {})}


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or _declared_length(headers) > 0


def _declared_length(headers: Headers) -> int:
    """``Content-Length`` (0 when absent; the server has already refused a malformed one)."""
    value = headers.get("content-length", "0")
    return int(value) if value.isdigit() else 0


def _is_json(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, parameters (``charset``) allowed."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _read_body(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages, or None as soon as they pass ``limit`` bytes (the rest stays unread)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client went away: the app sees the disconnect
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the body already read, then waits on the real one (for a disconnect)."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
