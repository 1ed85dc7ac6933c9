"""Deliver the outcome-event outbox to the job board: claim due events, POST them signed, settle each.

Runs as a thread of ``applyq worker`` when ``APPLYQ_WEBHOOK_URL`` is set, apart from the Celery threads, so a
slow or failing job board never delays an attempt. Several processes may run it: an event is claimed by a
compare-and-set that moves its ``next_attempt_at`` to the lease expiry and sets a ``lease_token`` (and, on
PostgreSQL, the candidates are picked with ``FOR UPDATE SKIP LOCKED``). A non-2xx answer or a transport
error is retried with the workers' full-jitter backoff (``APPLYQ_BACKOFF_BASE_S``/``_MAX_S``, the receiver's
``Retry-After`` as a floor, honoured up to ``APPLYQ_WEBHOOK_RETRY_AFTER_MAX_S``) until ``APPLYQ_WEBHOOK_MAX_AGE_S``.
Delivery is at least once: an event whose 2xx was not recorded (the process died) is sent again with the same ``id``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import is_postgres
from worker.db.models import WebhookEvent
from worker.providers.base import parse_retry_after
from worker.routing.backoff import retry_delay
from worker.webhooks.events import SIGNATURE_HEADER, DeliveryStatus, encode_body, sign

__all__ = [
    "Leased",
    "Sent",
    "WebhookSender",
    "claim_events",
    "deliver_once",
    "expire_stale",
    "redelivery_delay",
    "run_webhook_deliveries",
    "settle",
    "start_webhook_thread",
]

log = logging.getLogger("applyq.webhooks")

#: Events sent at once by one process (in parallel, each with its own lease).
BATCH_SIZE = 8
_PENDING = DeliveryStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Sent:
    """What one POST of one event got back."""

    ok: bool
    http_status: int | None = None
    retry_after_s: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Leased:
    """A claimed event, ready to send."""

    event_id: str
    lease_token: str
    attempt: int
    payload: dict[str, Any]
    created_at: datetime


class WebhookSender:
    """POSTs signed event bodies to the job board's URL over one connection pool."""

    def __init__(
        self,
        url: str,
        secret: SecretStr,
        *,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)
        self._clock = clock

    def send(self, payload: dict[str, Any]) -> Sent:
        """One signed POST; any 2xx is an acknowledgement."""
        body = encode_body(payload)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "applyq-webhooks",
            SIGNATURE_HEADER: sign(self._secret, body, timestamp),
        }
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # the URL may carry credentials: keep only the kind of failure
            return Sent(False, error=type(exc).__name__)
        if response.is_success:
            return Sent(True, response.status_code)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Sent(False, response.status_code, retry_after, f"HTTP {response.status_code}")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def claim_events(session: Session, now: datetime, *, lease_s: float, limit: int, skip_locked: bool) -> list[Leased]:
    """Lease up to ``limit`` due events (compare-and-set per row) and commit; [] if none."""
    due = sa.and_(WebhookEvent.status == _PENDING, WebhookEvent.next_attempt_at <= now)
    query = sa.select(WebhookEvent.id).where(due).order_by(WebhookEvent.next_attempt_at).limit(limit)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    tokens: dict[str, str] = {}
    for event_id in session.scalars(query).all():
        token = str(uuid.uuid4())
        result = session.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == event_id, due)
            .values(
                lease_token=token,
                next_attempt_at=now + timedelta(seconds=lease_s),
                attempt_count=WebhookEvent.attempt_count + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            tokens[event_id] = token
    rows = session.execute(
        sa.select(WebhookEvent.id, WebhookEvent.attempt_count, WebhookEvent.payload, WebhookEvent.created_at).where(
            WebhookEvent.id.in_(tokens)
        )
    ).all()
    session.commit()
    return [Leased(r.id, tokens[r.id], r.attempt_count, r.payload, r.created_at) for r in rows]


def expire_stale(session: Session, now: datetime, max_age_s: float) -> int:
    """Give up due events older than ``max_age_s`` unsent (e.g. recorded long before a URL was set)."""
    result = session.execute(
        sa.update(WebhookEvent)
        .where(
            WebhookEvent.status == _PENDING,
            WebhookEvent.next_attempt_at <= now,
            WebhookEvent.created_at < now - timedelta(seconds=max_age_s),
        )
        .values(status=DeliveryStatus.EXPIRED.value, lease_token=None)
        .execution_options(synchronize_session=False)
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    if count:
        log.error("%d webhook events given up: not acknowledged within APPLYQ_WEBHOOK_MAX_AGE_S", count)
    return count


def settle(session: Session, event: Leased, sent: Sent, now: datetime, settings: Settings, rand: float) -> str | None:
    """Record one delivery's result; return the event's new status, None if its lease was lost meanwhile."""
    values: dict[str, Any] = {"lease_token": None, "last_http_status": sent.http_status, "last_error": sent.error}
    if sent.ok:
        values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
    else:
        next_at = now + timedelta(seconds=redelivery_delay(event.attempt, sent, settings, rand))
        expired = next_at > event.created_at + timedelta(seconds=settings.webhook_max_age_s)
        values.update(status=DeliveryStatus.EXPIRED.value if expired else _PENDING, next_attempt_at=next_at)
    result = session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event.event_id, WebhookEvent.lease_token == event.lease_token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return str(values["status"]) if result.rowcount == 1 else None  # type: ignore[attr-defined]


def redelivery_delay(attempt: int, sent: Sent, settings: Settings, rand: float) -> float:
    """Seconds until the next delivery: the workers' full-jitter backoff, the receiver's ``Retry-After`` as a floor.

    The floor is honoured beyond ``APPLYQ_BACKOFF_MAX_S`` (the receiver asked for it) up to
    ``APPLYQ_WEBHOOK_RETRY_AFTER_MAX_S``.
    """
    return retry_delay(
        attempt,
        base_s=settings.backoff_base_s,
        max_s=settings.backoff_max_s,
        rand=rand,
        retry_after_s=min(sent.retry_after_s or 0.0, settings.webhook_retry_after_max_s),
    )


def deliver_once(
    sessions: sessionmaker[Session],
    sender: WebhookSender,
    settings: Settings,
    clock: Callable[[], datetime],
    *,
    skip_locked: bool,
    rand: Callable[[], float] = random.random,
) -> int:
    """Claim one batch of due events, send them in parallel, settle each as it returns; return how many."""
    lease_s = settings.webhook_timeout_s + settings.lease_margin_s
    with sessions() as session:
        now = clock()
        expire_stale(session, now, settings.webhook_max_age_s)
        events = claim_events(session, now, lease_s=lease_s, limit=BATCH_SIZE, skip_locked=skip_locked)
    if not events:
        return 0

    def send_and_settle(event: Leased) -> None:
        sent = sender.send(event.payload)
        with sessions() as session:
            status = settle(session, event, sent, clock(), settings, rand())
        _log(event, sent, status)

    with ThreadPoolExecutor(max_workers=len(events), thread_name_prefix="applyq-webhook") as pool:
        list(pool.map(send_and_settle, events))  # re-raises the first failure, for the loop to log
    return len(events)


def _log(event: Leased, sent: Sent, status: str | None) -> None:
    extra = {
        "event_id": event.event_id,
        "submission_id": event.payload.get("submission_id"),
        "attempt": event.attempt,
        "http_status": sent.http_status,
        "error": sent.error,
        "status": status,
    }
    if status is None:
        log.warning("webhook lease lost before the result was recorded; it will be sent again", extra=extra)
    elif status == DeliveryStatus.DELIVERED:
        log.info("webhook delivered", extra=extra)
    elif status == DeliveryStatus.EXPIRED:
        log.error("webhook given up: not acknowledged within APPLYQ_WEBHOOK_MAX_AGE_S", extra=extra)
    else:
        log.warning("webhook not acknowledged; will retry", extra=extra)


def run_webhook_deliveries(
    sessions: sessionmaker[Session],
    sender: WebhookSender,
    settings: Settings,
    stop: threading.Event,
    clock: Callable[[], datetime],
    *,
    skip_locked: bool,
) -> None:
    """Loop until ``stop`` is set; a full batch is followed at once by the next one."""
    try:
        while not stop.is_set():
            try:
                count = deliver_once(sessions, sender, settings, clock, skip_locked=skip_locked)
            except Exception:
                log.exception("webhook delivery failed; will try again")
                count = 0
            if count < BATCH_SIZE:
                stop.wait(settings.dispatch_interval_s)
    finally:
        sender.close()


def start_webhook_thread(
    settings: Settings, sessions: sessionmaker[Session], stop: threading.Event
) -> threading.Thread:
    """Run the delivery loop in a daemon thread until ``stop`` is set (``APPLYQ_WEBHOOK_URL`` must be set)."""
    if settings.webhook_url is None:
        raise ValueError("APPLYQ_WEBHOOK_URL is not set")
    sender = WebhookSender(str(settings.webhook_url), settings.webhook_secret, timeout_s=settings.webhook_timeout_s)
    thread = threading.Thread(
        target=run_webhook_deliveries,
        args=(sessions, sender, settings, stop, utcnow),
        kwargs={"skip_locked": is_postgres(settings.database_url)},
        name="applyq-webhooks",
        daemon=True,
    )
    thread.start()
    return thread
