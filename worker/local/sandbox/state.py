"""The sandbox's in-memory world: attempts, created applications, requests in flight, the request log.

Every method takes one lock and never awaits, so the state is safe from the event loop and from
other threads alike.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_LOGGED_REQUESTS",
    "Application",
    "ApplicationKey",
    "Attempt",
    "RequestRecord",
    "SandboxState",
    "application_key",
]

#: (provider, integration id, job id, lower-cased candidate email).
ApplicationKey = tuple[str, str, str, str]

#: How many provider requests the log keeps.
MAX_LOGGED_REQUESTS = 10_000

_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ID_LENGTH = 24


def application_key(provider: str, integration_id: str, job_id: str, email: str) -> ApplicationKey:
    """The identity of one application: one candidate at one job of one integration."""
    return (provider, integration_id, job_id, email.lower())


@dataclass(frozen=True)
class Attempt:
    """One attempt at an application: its 1-based number and whether the application exists."""

    number: int
    already_created: bool


@dataclass(frozen=True)
class Application:
    """An application the fake ATS holds."""

    id: str
    remote_id: str
    candidate_id: str
    created_at: datetime
    first_name: str = ""
    last_name: str = ""


@dataclass
class RequestRecord:
    """One provider request as received; ``status`` is filled in once it is answered."""

    log_id: str
    provider: str
    method: str
    path: str
    job_id: str | None
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.time)
    status: int | None = None
    #: when the answer went out (after the latency and any stall): tests tell overlapping requests by it
    answered_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the ``/_sandbox/requests`` endpoint shows it."""
        return asdict(self)


class SandboxState:
    """Everything the sandbox remembers between requests, until ``reset``."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every attempt, application and request, and restart the id sequence."""
        with self._lock:
            self._rng = random.Random(self._seed)
            self._attempts: Counter[ApplicationKey] = Counter()
            self._applications: dict[ApplicationKey, Application] = {}
            #: every application created, duplicates included, by key (what the read endpoints list)
            self._held: dict[ApplicationKey, list[Application]] = {}
            self._idempotent: dict[tuple[str, str], Any] = {}
            self._creations: Counter[ApplicationKey] = Counter()
            self._created = 0
            self._duplicates = 0
            self._in_flight: Counter[tuple[str, str]] = Counter()
            self._log: deque[RequestRecord] = deque(maxlen=MAX_LOGGED_REQUESTS)
            self._by_status: Counter[int] = Counter()
            self._received = 0
            self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
            self._revoked: set[str] = set()
            #: Kombo integrations' ``attachment_restrictions`` (the pre-flight's answer); absent: ``null``
            self._restrictions: dict[str, Any] = {}
            self._faults: dict[tuple[str, str], str] = {}

    def revoke(self, provider: str, revoked: bool = True) -> None:
        """Refuse (or, with ``revoked=False``, accept again) the provider's API key, as after a rotation."""
        with self._lock:
            (self._revoked.add if revoked else self._revoked.discard)(provider)

    def set_restrictions(self, integration_id: str, restrictions: Any) -> None:
        """What the Kombo integration's pre-flight answers as ``attachment_restrictions`` (``None``: unknown)."""
        with self._lock:
            self._restrictions[integration_id] = restrictions

    def restrictions(self, integration_id: str) -> Any:
        """The Kombo integration's ``attachment_restrictions``, ``None`` unless set."""
        with self._lock:
            return self._restrictions.get(integration_id)

    def is_revoked(self, provider: str) -> bool:
        """Whether the provider's key is currently refused."""
        with self._lock:
            return provider in self._revoked

    def set_fault(self, provider: str, integration_id: str, fault: str | None) -> None:
        """Make every create for the integration misbehave as the scenario ``fault`` does (None: fixed)."""
        with self._lock:
            if fault is None:
                self._faults.pop((provider, integration_id), None)
            else:
                self._faults[(provider, integration_id)] = fault

    def fault(self, provider: str, integration_id: str) -> str | None:
        """The scenario the integration is broken with, if any."""
        with self._lock:
            return self._faults.get((provider, integration_id))

    def new_token(self) -> str:
        """A fresh Kombo-style id (24 base58 characters), reproducible from the seed."""
        with self._lock:
            return self._token()

    def new_uuid(self) -> str:
        """A fresh random UUID, reproducible from the seed."""
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def begin_attempt(self, key: ApplicationKey) -> Attempt:
        """Count one more attempt at ``key`` and say whether its application already exists."""
        with self._lock:
            self._attempts[key] += 1
            return Attempt(self._attempts[key], key in self._applications)

    def create(
        self, key: ApplicationKey, *, allow_duplicate: bool, person: tuple[str, str] = ("", "")
    ) -> Application | None:
        """Store a new application at ``key``; ``None`` if one exists and duplicates are refused."""
        with self._lock:
            exists = key in self._applications
            if exists and not allow_duplicate:
                return None
            self._created += 1
            self._duplicates += exists
            self._creations[key] += 1
            application = Application(self._token(), str(self._created), self._token(), datetime.now(UTC), *person)
            self._applications[key] = application
            self._held.setdefault(key, []).append(application)
            return application

    def find(self, provider: str, integration_id: str, email: str) -> list[tuple[str, Application]]:
        """Every application of the candidate with this email at any job of the integration: (job id, application)."""
        with self._lock:
            return [
                (job, application)
                for (p, i, job, e), held in self._held.items()
                if (p, i, e) == (provider, integration_id, email.lower())
                for application in held
            ]

    def application(self, provider: str, application_id: str) -> tuple[ApplicationKey, Application] | None:
        """An application by its id, with its key."""
        with self._lock:
            for key, held in self._held.items():
                for application in held:
                    if key[0] == provider and application.id == application_id:
                        return key, application
            return None

    @contextmanager
    def in_flight(self, provider: str, integration_id: str) -> Iterator[int]:
        """Hold one request in flight for the integration; yields how many are in flight now."""
        slot = (provider, integration_id)
        with self._lock:
            self._in_flight[slot] += 1
            count = self._in_flight[slot]
        try:
            yield count
        finally:
            with self._lock:
                self._in_flight[slot] = max(0, self._in_flight[slot] - 1)

    def recall(self, provider: str, idempotency_key: str) -> Any | None:
        """What a provider remembered for an idempotency key (e.g. the answer to replay), if anything."""
        with self._lock:
            return self._idempotent.get((provider, idempotency_key))

    def remember(self, provider: str, idempotency_key: str, value: Any) -> None:
        """Remember ``value`` for an idempotency key until ``reset``."""
        with self._lock:
            self._idempotent[(provider, idempotency_key)] = value

    def log_request(self, record: RequestRecord) -> None:
        """Remember a request on arrival (the log keeps the last ``MAX_LOGGED_REQUESTS``)."""
        with self._lock:
            self._received += 1
            self._log.append(record)

    def answered(self, record: RequestRecord, status: int) -> None:
        """Note the status a logged request was answered with."""
        with self._lock:
            record.status = status
            record.answered_at = time.time()
            self._by_status[status] += 1

    def requests(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The logged requests, oldest first, optionally only those for one job."""
        with self._lock:
            return [r.to_json() for r in self._log if job_id is None or r.job_id == job_id]

    def request(self, log_id: str) -> dict[str, Any] | None:
        """The logged request with this log id, if the log still holds it."""
        with self._lock:
            return next((r.to_json() for r in self._log if r.log_id == log_id), None)

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset: requests, creations, duplicate creations, statuses."""
        with self._lock:
            return {
                "requests": self._received,
                "created": self._created,
                "duplicate_creations": self._duplicates,
                "by_status": {str(status): n for status, n in sorted(self._by_status.items())},
            }

    def take_token(self, slot: tuple[str, str], rate: float, now: float) -> bool:
        """Spend one token of the slot's bucket (capacity: one second's worth); False if it is empty."""
        capacity = max(1.0, rate)
        with self._lock:
            tokens, since = self._buckets.get(slot, (capacity, now))
            tokens = min(capacity, tokens + (now - since) * rate)
            allowed = tokens >= 1.0
            self._buckets[slot] = (tokens - 1.0 if allowed else tokens, now)
            return allowed

    def applications(self) -> list[dict[str, Any]]:
        """Every application held, with how many times it was created (more than once = a duplicate)."""
        with self._lock:
            return [
                {"provider": p, "integration_id": i, "job_id": j, "email": e, "creations": n}
                for (p, i, j, e), n in self._creations.items()
            ]

    def _token(self) -> str:
        """A fresh Kombo-style id (24 base58 characters); the caller holds the lock."""
        return "".join(self._rng.choices(_ID_ALPHABET, k=_ID_LENGTH))
