"""The contract between the sandbox app and one provider's wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.local.sandbox.scenarios import Behaviour
from worker.local.sandbox.state import Application

__all__ = ["Exchange", "Provider", "Reply", "Submission"]


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, raw body, content type (``None``: no header) and extra headers."""

    status: int
    body: bytes = b""
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    """A create-application request that passed the provider's own checks."""

    integration_id: str
    job_id: str
    first_name: str
    last_name: str
    email: str
    body: Mapping[str, Any]
    #: The request's ``Idempotency-Key``, for a provider that honours one.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Exchange:
    """What a provider needs to know about the request it is answering."""

    #: Where the request's log record can be read back (``/_sandbox/logs/<uuid>``).
    log_url: str
    #: Requests in flight for the same integration, this one included.
    in_flight: int
    #: The request's id in the log (the ``<uuid>`` of ``log_url``).
    log_id: str = ""


class Provider(Protocol):
    """One provider's create-application endpoint: its routes, its checks and its wire format."""

    #: Short name used in application keys and the request log (``kombo``).
    name: str
    #: Starlette path templates of the create-application endpoint.
    paths: tuple[str, ...]
    #: Starlette path templates of the GET endpoints ``read`` answers (lookups, accounts).
    read_paths: tuple[str, ...]
    #: Create requests one integration may have in flight; one more is refused at once (``None``: no cap).
    concurrency_limit: int | None

    def job_id(self, path_params: Mapping[str, str], body: Any) -> str | None:
        """The job the request applies to, from the path or the body, if it names one."""

    def integration_id(self, headers: Mapping[str, str]) -> str | None:
        """The integration (account) the request acts for, if it names one."""

    def is_authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries the sandbox's credentials."""

    def admit(self, headers: Mapping[str, str], job_id: str, body: Any, exchange: Exchange) -> Submission | Reply:
        """The submission, or the provider's rejection of a request it cannot accept."""

    def render(
        self,
        behaviour: Behaviour,
        submission: Submission,
        application: Application | None,
        exchange: Exchange,
    ) -> Reply:
        """The provider's answer for a scripted behaviour (``application`` is set once created)."""

    def rate_scope(self, submission: Submission) -> str:
        """Whose rate limit a request counts against, as the vendor counts it (an integration, or the API key)."""

    def detects_duplicates(self, submission: Submission) -> bool:
        """Whether a second creation of the same application is refused as "already exists"."""

    def read(
        self, path: str, headers: Mapping[str, str], path_params: Mapping[str, str], query: Mapping[str, str]
    ) -> Reply:
        """The answer of the read endpoint ``path`` (one of ``read_paths``)."""
