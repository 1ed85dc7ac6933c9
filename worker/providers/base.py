"""What every provider adapter shares: the delivery, the two kinds of answer, and the send loop.

An adapter builds one ``httpx.Request`` and parses one ``httpx.Response``. ``Adapter.deliver`` sends it
and turns every transport failure into a ``ProviderError``, so callers never see an exception from the
network and the router always gets one value to route on.
"""

from __future__ import annotations

import abc
import dataclasses
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar, cast

import httpx

from worker.clock import utcnow
from worker.schemas import SubmissionIn
from worker.states import Provider

__all__ = [
    "USER_AGENT",
    "Accepted",
    "Adapter",
    "Answer",
    "Delivery",
    "ErrorKind",
    "ProviderError",
    "accepted",
    "ats_name",
    "parse_retry_after",
    "retry_after_of",
    "str_or_none",
]

T = TypeVar("T")

USER_AGENT = "applyq/0.1 (+https://github.com/applyq/applyq)"
_SNIPPET = 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """What an adapter needs to send one attempt."""

    submission_id: str
    #: Stays the same on every attempt of the submission.
    idempotency_key: str
    submission: SubmissionIn


class ErrorKind(StrEnum):
    """How an attempt failed, before looking at any provider code."""

    #: the provider answered in its own error format
    API_ERROR = "api_error"
    #: an HTTP answer that is not the provider's format (load-balancer HTML, truncated or empty body)
    BAD_RESPONSE = "bad_response"
    #: no answer in time after the request was (maybe) sent
    TIMEOUT = "timeout"
    #: the connection broke after the request was sent
    CONNECTION_LOST = "connection_lost"
    #: the provider was never reached; nothing was sent
    CONNECT_ERROR = "connect_error"
    #: a lookup found no application for this candidate at this job (nothing went wrong)
    NOT_FOUND = "not_found"
    #: not sent: the integration requires what the submission lacks (Kombo's pre-flight); a human must add it
    UNMET_REQUIREMENT = "unmet_requirement"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider created the application."""

    http_status: int
    application_id: str | None
    remote_id: str | None
    warnings: tuple[str, ...] = ()
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderError:
    """Every way an attempt can fail, normalised into one value."""

    kind: ErrorKind
    message: str
    http_status: int | None = None
    code: str | None = None
    title: str | None = None
    log_url: str | None = None
    request_id: str | None = None
    retry_after_s: float | None = None
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The provider's code, or a stand-in naming the HTTP status or transport failure."""
        if self.code:
            return self.code
        if self.kind is ErrorKind.NOT_FOUND:
            return "LOOKUP.NOT_FOUND"
        if self.kind is ErrorKind.UNMET_REQUIREMENT:
            return "PREFLIGHT.REQUIREMENT_UNMET"
        if self.kind in (ErrorKind.API_ERROR, ErrorKind.BAD_RESPONSE) and self.http_status is not None:
            return f"HTTP_{self.http_status}"
        return f"TRANSPORT.{self.kind.value.upper()}"


Answer = Accepted | ProviderError

#: Response headers worth keeping on the attempt (rate limits, request ids).
KEPT_HEADERS = (
    "retry-after",
    "x-request-id",
    "concurrency-limit",
    "concurrency-remaining",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


def kept_headers(response: httpx.Response) -> dict[str, str]:
    """The subset of response headers applyq records."""
    return {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _http_date(value)
    return None if when is None else max(0.0, (when - (now or utcnow())).total_seconds())


def retry_after_of(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds; an HTTP-date counts from the response's own ``Date``.

    The sender's ``Date`` is its clock, on which it set the date to wait for (RFC 9110 §10.2.3), so this
    host's clock, which may be off, only stands in when the response has no ``Date``.
    """
    date = response.headers.get("date")
    return parse_retry_after(response.headers.get("retry-after"), _http_date(date) if date else None)


def _http_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def body_snippet(response: httpx.Response) -> str:
    """A short, single-line excerpt of a body for error messages."""
    text = " ".join(response.text.split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")


def bad_response(response: httpx.Response, what: str) -> ProviderError:
    """A ``ProviderError`` for an HTTP answer that is not in the provider's format."""
    ctype = response.headers.get("content-type", "no content-type")
    snippet = body_snippet(response) or "<empty body>"
    return ProviderError(
        kind=ErrorKind.BAD_RESPONSE,
        http_status=response.status_code,
        message=f"{what}: HTTP {response.status_code} ({ctype}): {snippet}",
        request_id=response.headers.get("x-request-id"),
        retry_after_s=retry_after_of(response),
        headers=kept_headers(response),
    )


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def ats_name(integration_id: str | None) -> str | None:
    """The ATS an integration id names by its prefix (``greenhouse:abc`` → ``greenhouse``), if any.

    Kombo's integration ids carry the tool's name this way (``workday:HWUTwv…``, Kombo's docs); for StackOne
    the prefix is only a fallback hint of older applyq versions (the account API is the authority).
    """
    prefix, separator, _ = (integration_id or "").partition(":")
    if not separator:
        return None
    return prefix.strip().lower() or None


def str_or_none(value: object) -> str | None:
    """A provider's id as text, or None when it sent none."""
    return None if value is None else str(value)


def accepted(response: httpx.Response, record: dict[str, Any], warnings: tuple[str, ...] = ()) -> Accepted:
    """The application a provider answered with (created, or found by a lookup): its ``id`` and ``remote_id``."""
    return Accepted(
        http_status=response.status_code,
        application_id=str_or_none(record.get("id")),
        remote_id=str_or_none(record.get("remote_id")),
        warnings=warnings,
        request_id=response.headers.get("x-request-id"),
        headers=kept_headers(response),
    )


def not_found(message: str, response: httpx.Response | None = None) -> ProviderError:
    """A lookup's answer "no such application" (an answer, not a failure: the provider was asked and said no)."""
    return ProviderError(
        kind=ErrorKind.NOT_FOUND,
        message=message,
        http_status=None if response is None else response.status_code,
        request_id=None if response is None else response.headers.get("x-request-id"),
        headers={} if response is None else kept_headers(response),
    )


class Adapter(abc.ABC):
    """One provider's wire format on top of an injected ``httpx.Client``."""

    provider: ClassVar[Provider]
    #: whether ``look_up`` can tell if an application exists (before re-sending after an unknown outcome)
    can_look_up: ClassVar[bool] = False

    def __init__(self, client: httpx.Client, api_key: str) -> None:
        self._client = client
        self._api_key = api_key

    @abc.abstractmethod
    def build_request(self, delivery: Delivery) -> httpx.Request:
        """The HTTP request for one attempt."""

    @abc.abstractmethod
    def parse(self, response: httpx.Response) -> Answer:
        """Turn any HTTP answer into ``Accepted`` or ``ProviderError``."""

    def ats(self, integration_id: str | None) -> str | None:
        """The ATS behind the integration, for its quirks; the id's prefix unless the provider says better."""
        return ats_name(integration_id)

    def look_up(self, delivery: Delivery) -> Answer:
        """Whether the application already exists: ``Accepted`` (found, with its ids), ``not_found`` or an error."""
        raise NotImplementedError(f"{self.provider.value} has no lookup")

    def ask(self, request: httpx.Request, parse: Callable[[httpx.Response], T]) -> tuple[T | ProviderError, float]:
        """Send any request of this adapter's; every transport failure becomes a ``ProviderError``."""
        started = time.perf_counter()
        try:
            response = self._client.send(request)
        except httpx.HTTPError as exc:
            return transport_error(exc), (time.perf_counter() - started) * 1000
        try:
            result = parse(response)
        finally:
            response.close()
        latency_ms = (time.perf_counter() - started) * 1000
        if isinstance(result, ProviderError):
            return cast(ProviderError, self._redact(result)), latency_ms
        return result, latency_ms

    def deliver(self, delivery: Delivery) -> tuple[Answer, float]:
        """Send one attempt; return the answer and the latency in milliseconds. Never raises httpx errors."""
        return self.ask(self.build_request(delivery), self.parse)

    def _secrets(self) -> tuple[str, ...]:
        """What must never be stored or logged: the API key (and whatever an adapter derives from it)."""
        return (self._api_key,) if self._api_key else ()

    def _redact(self, answer: Answer) -> Answer:
        """Scrub our secrets from anything the provider echoed back (message, title, details), before storing."""
        if isinstance(answer, Accepted):
            return answer
        message, title, details = answer.message, answer.title, answer.details
        for secret in self._secrets():
            message, title, details = _replace(message, secret), _replace(title, secret), _replace(details, secret)
        if (message, title, details) == (answer.message, answer.title, answer.details):
            return answer
        return dataclasses.replace(answer, message=message, title=title, details=details)


def _replace(value: Any, secret: str) -> Any:
    """``value`` with every occurrence of ``secret`` in its strings (nested too) replaced."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, dict):
        return {_replace(k, secret): _replace(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, secret) for v in value]
    return value


#: Most specific class first: the first match wins.
_TRANSPORT_ERRORS: tuple[tuple[type[httpx.HTTPError], ErrorKind, str], ...] = (
    (httpx.ConnectTimeout, ErrorKind.CONNECT_ERROR, "connect timeout: the provider was not reached"),
    (httpx.PoolTimeout, ErrorKind.CONNECT_ERROR, "no free connection in the pool: nothing was sent"),
    (httpx.ConnectError, ErrorKind.CONNECT_ERROR, "connection refused or failed: nothing was sent"),
    (httpx.TimeoutException, ErrorKind.TIMEOUT, "no answer before the client timeout; the request was sent"),
    (httpx.RemoteProtocolError, ErrorKind.CONNECTION_LOST, "the connection broke mid-response"),
    (httpx.NetworkError, ErrorKind.CONNECTION_LOST, "network error after the request was sent"),
)


def transport_error(exc: httpx.HTTPError) -> ProviderError:
    """Map an httpx exception to a ``ProviderError`` (the table above; unknown ones count as lost)."""
    for exc_type, kind, text in _TRANSPORT_ERRORS:
        if isinstance(exc, exc_type):
            return ProviderError(kind=kind, message=f"{text} ({type(exc).__name__})")
    return ProviderError(kind=ErrorKind.CONNECTION_LOST, message=f"{type(exc).__name__}: {exc}")
