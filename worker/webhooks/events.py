"""Outcome webhooks: the event recorded with a submission's final state, and its signature.

When a submission reaches a final status (``succeeded``, ``terminal``, ``parked``, or ``cancelled`` by an
operator or a purge), ``record_outcomes`` adds an event to the outbox (``applyq_webhook_event``) in the same
transaction; ``worker/webhooks/delivery.py`` POSTs it to ``APPLYQ_WEBHOOK_URL`` until the job board answers
2xx. Every delivery of one event carries the same ``id`` and body, so receivers deduplicate on ``id``. The header is

    X-Applyq-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

Python receivers check it with ``verify_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session

from worker.db.models import Submission, WebhookEvent
from worker.webhooks.outcomes import public_message

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryStatus",
    "OutcomeRow",
    "add_outcome_events",
    "encode_body",
    "event_payload",
    "record_outcomes",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Applyq-Signature"

Secret = str | bytes | SecretStr


class DeliveryStatus(StrEnum):
    """Where an outcome event is on its way to the job board."""

    #: not yet acknowledged; ``next_attempt_at`` says when to try
    PENDING = "pending"
    #: the job board answered 2xx
    DELIVERED = "delivered"
    #: not acknowledged within ``APPLYQ_WEBHOOK_MAX_AGE_S``; given up
    EXPIRED = "expired"


class OutcomeRow(NamedTuple):
    """What an outcome event is made of: a submission's final state (the columns of ``_FINAL_ROWS``)."""

    id: str
    idempotency_key: str
    status: str
    outcome_reason: str | None
    outcome_code: str | None
    remote_id: str | None
    payload: dict[str, Any]


# Core statements built once: the worker runs them for every group of final attempts, where loading ORM entities and
# flushing new ones cost more CPU than the queries.
_S = cast(sa.Table, Submission.__table__)
#: The submission columns an event is made of, read once per recording group.
_OUTCOME_COLUMNS = tuple(_S.c[name] for name in OutcomeRow._fields)
_FINAL_ROWS: sa.Select[Any] = sa.select(*_OUTCOME_COLUMNS).where(_S.c.id.in_(sa.bindparam("sids", expanding=True)))
_ADD_EVENT = sa.insert(cast(sa.Table, WebhookEvent.__table__))


def record_outcomes(session: Session, submission_ids: Sequence[str], now: datetime) -> None:
    """Add the outcome events of submissions that just reached a final status (same transaction)."""
    rows = session.execute(_FINAL_ROWS, {"sids": list(submission_ids)}).all()
    add_outcome_events(session, [OutcomeRow(*row) for row in rows], now)


def add_outcome_events(session: Session, rows: Sequence[OutcomeRow], now: datetime) -> None:
    """Add the outcome events of these final states (same transaction as the states).

    The worker builds the rows from the answers it has just recorded, saving a read per recording group.
    """
    if not rows:
        return
    events = []
    for row in rows:
        event_id = str(uuid.uuid4())
        events.append({
            "id": event_id,
            "submission_id": row.id,
            "payload": event_payload(row, event_id, now),
            "status": DeliveryStatus.PENDING.value,
            "attempt_count": 0,
            "next_attempt_at": now,
            "created_at": now,
        })  # fmt: skip
    session.execute(_ADD_EVENT, events)


def event_payload(row: Submission | sa.Row[Any] | OutcomeRow, event_id: str, now: datetime) -> dict[str, Any]:
    """The event body: ids, outcome and the job board's message; never candidate data."""
    return {
        "id": event_id,
        "type": f"submission.{row.status}",
        "submission_id": row.id,
        "idempotency_key": row.idempotency_key,
        "status": row.status,
        "reason": row.outcome_reason,
        "code": row.outcome_code,
        "message": public_message(row.status, row.outcome_reason),
        "remote_id": row.remote_id,
        "metadata": dict(row.payload.get("metadata") or {}),
        "time": now.isoformat(),
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _key(secret: Secret) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def _digest(secret: Secret, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: Secret, body: bytes, timestamp: int) -> str:
    """The ``X-Applyq-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


#: ``t``: unix seconds in ASCII digits, at most 12 of them (year 33658). ``str.isdigit`` would let "²" or Arabic-Indic
#: digits through to ``int()``, and an unbounded run of digits overflows ``int()`` (4,300 digits) or the float of the
#: age check.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
#: ``v1``: a hex SHA-256 digest, as ``sign`` writes it.
_DIGEST = re.compile(r"[0-9a-f]{64}")


def verify_signature(
    secret: Secret, header: str | bytes | None, body: bytes, tolerance_s: float = 300.0, *, now: float | None = None
) -> bool:
    """True if ``header`` signs the raw ``body`` with ``secret`` and is at most ``tolerance_s`` old.

    Several ``v1=`` values are accepted (any may match), so a sender can sign with an old and a new secret
    while the secret is rotated. Check the raw request body, before any JSON parsing. Anything malformed
    (a missing part, a ``t`` that is not plain digits, a ``v1`` that is not a digest, bytes that are not
    ASCII) is False, never an exception: a receiver answers 401, not 500.
    """
    parsed = _parse_signature(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    if not abs((time.time() if now is None else now) - timestamp) <= tolerance_s:  # NaN-safe
        return False
    expected = _digest(secret, timestamp, body).encode()
    return any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates)


def _parse_signature(header: str | bytes | None) -> tuple[int, list[str]] | None:
    """``(t, [v1, ...])`` of a well-formed header, else None."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not header:
        return None
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1" and _DIGEST.fullmatch(value):
            candidates.append(value)
    return None if timestamp is None or not candidates else (timestamp, candidates)
