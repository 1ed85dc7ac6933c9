"""Submissions as the job board sees them: the idempotent insert, and reads by id, key or filter."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.db.models import Submission
from worker.errors import IdempotencyConflict, InvalidInput
from worker.privacy import email_key
from worker.schemas import SubmissionIn
from worker.states import DEFAULT_SCOPE, Status

__all__ = [
    "Stored",
    "add_submissions",
    "find_by_reference",
    "find_submission",
    "list_submissions",
    "provider_idempotency_key",
    "requeued",
]

_S = cast(sa.Table, Submission.__table__)


@dataclass(frozen=True, slots=True)
class Stored:
    """A submission after ``add_submissions``: new, or the existing one for a replayed key."""

    submission: Submission
    created: bool


def provider_idempotency_key(idempotency_key: str, payload_version: str | None = None) -> str:
    """The key sent to providers: the same on every attempt of one payload, a new one once the payload changes.

    Derived from the job board's key when the submission is stored; an operator's edit (``requeue --set``)
    passes the edited payload's hash as ``payload_version``. Celper answers a reused key with a different body
    ``409 IDEMPOTENCY_CONFLICT`` for 24 hours (docs.celper.ai/concepts/idempotency, seed 001), so the fix would
    be refused with the old key. A candidate an earlier attempt may have created under the old key is still
    caught: Celper refuses the same email twice in a job position (``DUPLICATE_CANDIDATE``), which reconciles.
    """
    source = idempotency_key if payload_version is None else f"{idempotency_key}:{payload_version}"
    return "applyq-" + hashlib.sha256(source.encode()).hexdigest()[:40]


def add_submissions(
    session: Session, items: Sequence[SubmissionIn], now: datetime, *, scope: str = DEFAULT_SCOPE
) -> list[Stored]:
    """Store validated submissions (flush, no commit) under the client's ``scope``; replays return the existing row.

    Many items go in one round trip when their keys are new; a key inserted concurrently (or repeated in
    ``items``) falls back to the careful one-by-one path.
    """
    if len(items) > 1 and len({i.idempotency_key for i in items}) == len(items):
        taken = set(session.scalars(sa.select(Submission.idempotency_key).where(
            Submission.client_scope.in_({scope, DEFAULT_SCOPE}),
            Submission.idempotency_key.in_([i.idempotency_key for i in items]))))  # fmt: skip
        if not taken:
            rows = [Submission(**_new_values(item, now, scope)) for item in items]
            try:
                with session.begin_nested():
                    session.add_all(rows)
                return [Stored(row, created=True) for row in rows]
            except IntegrityError:
                pass
    return [_add_one(session, item, now, scope) for item in items]


def _new_values(item: SubmissionIn, now: datetime, scope: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "client_scope": scope,
        "idempotency_key": item.idempotency_key,
        "payload_hash": item.payload_hash(),
        "provider_idempotency_key": provider_idempotency_key(item.idempotency_key),
        "provider": item.provider.value,
        "integration_id": item.integration_id,
        "job_id": item.job_id,
        "payload": item.payload(),
        "email_key": email_key(item.candidate.email),
        "status": Status.QUEUED.value,
        "attempt_count": 0,
        "next_attempt_at": now,
        "published_at": now,
        "created_at": now,
        "updated_at": now,
        "window_started_at": now,
        "window_attempt_base": 0,
    }


def _add_one(session: Session, item: SubmissionIn, now: datetime, scope: str) -> Stored:
    twin = _default_scope_twin(session, item, scope)
    if twin is not None:
        return Stored(twin, created=False)
    row = _insert_if_new(session, _new_values(item, now, scope))
    if row is not None:
        return Stored(row, created=True)
    existing = _by_key(session, item.idempotency_key, scope)
    if existing is None:  # its holder was purged between the two statements
        raise RuntimeError(f"idempotency key {item.idempotency_key!r} is taken, but by no submission; try again")
    if existing.payload_hash != item.payload_hash():
        raise IdempotencyConflict(item.idempotency_key, existing.id)
    return Stored(existing, created=False)


def _default_scope_twin(session: Session, item: SubmissionIn, scope: str) -> Submission | None:
    """The same application under the same key in the default scope, for an API token's client.

    Before keys were scoped per API token (migration 0005), every key was global and now sits in the default
    scope: a client replaying such a key after the upgrade must get its submission back, not a second
    delivery. Only the identical payload matches, so a client learns nothing it did not send: another
    client's key with another payload stays invisible, and this client's new submission is its own.
    """
    if scope == DEFAULT_SCOPE:
        return None
    found = _by_key(session, item.idempotency_key, DEFAULT_SCOPE)
    return found if found is not None and found.payload_hash == item.payload_hash() else None


def _insert_if_new(session: Session, values: dict[str, Any]) -> Submission | None:
    """``INSERT … ON CONFLICT (client_scope, idempotency_key) DO NOTHING RETURNING id``: None if the key is taken.

    One round trip, no SAVEPOINT: a taken key aborts nothing, and a concurrent insert of the same key is
    waited for, then seen by the caller's next statement. The row returned is the values given (not loaded).
    """
    inserted = session.execute(_insert_if_new_statement(session.get_bind().dialect.name), values).first()
    return None if inserted is None else Submission(**values)


@cache
def _insert_if_new_statement(dialect: str) -> sa.Insert:
    """Built once per dialect (enqueue runs it for every submission); the columns are the values' keys."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conflict = ["client_scope", "idempotency_key"]
    return insert(_S).on_conflict_do_nothing(index_elements=conflict).returning(_S.c.id)


def _by_key(session: Session, key: str, scope: str) -> Submission | None:
    query = sa.select(Submission).where(Submission.client_scope == scope, Submission.idempotency_key == key)
    return session.scalars(query).one_or_none()


def find_submission(session: Session, id_or_key: str, *, scope: str = DEFAULT_SCOPE) -> Submission | None:
    """A submission by id (ids are unguessable and global), else by idempotency key in the client's ``scope``."""
    return session.get(Submission, id_or_key) or _by_key(session, id_or_key, scope)


def requeued(now: datetime) -> dict[str, Any]:
    """What a requeue sets (an operator's or a vendor event's): queued and due now, in a new retry window (the
    attempt and age limits count again from here), with no lease and no remediation left."""
    return {
        "status": Status.QUEUED.value,
        "next_attempt_at": now,
        "published_at": None,
        "lease_token": None,
        "lease_expires_at": None,
        "window_started_at": now,
        "window_attempt_base": Submission.attempt_count,
        "finished_at": None,
        "remediation": None,
        # ended again later, its new attempts are pruned in their turn (worker/db/retention.py)
        "history_pruned_at": None,
    }


def find_by_reference(session: Session, id_or_key: str) -> Submission | None:
    """What an operator types: an id, an idempotency key, or a unique prefix of an id (``0916c50f``).

    Only the CLI accepts prefixes (the HTTP API does not: a prefix would let a client probe for others' ids).
    Raises ``InvalidInput`` naming the matches when a prefix names several.
    """
    found = session.get(Submission, id_or_key) or _by_key_in_any_scope(session, id_or_key)
    if found is not None or not _ID_PREFIX.fullmatch(id_or_key):
        return found
    matches = list(session.scalars(sa.select(Submission).where(Submission.id.startswith(id_or_key)).limit(6)))
    return _the_only(matches, lambda ids: f"{id_or_key!r} is the start of several submission ids: {ids}; give more")


def _by_key_in_any_scope(session: Session, key: str) -> Submission | None:
    """An operator sees every client's keys; a key two clients used is ambiguous: the ids tell them apart."""
    query = sa.select(Submission).where(Submission.idempotency_key == key).order_by(Submission.created_at).limit(6)
    matches = list(session.scalars(query))
    return _the_only(matches, lambda ids: f"idempotency key {key!r} is used by several API clients: {ids}; give the id")


def _the_only(matches: Sequence[Submission], several: Callable[[str], str]) -> Submission | None:
    """The one match, None for none; ``InvalidInput`` with ``several(up to five ids)`` for more."""
    if len(matches) > 1:
        raise InvalidInput(several(", ".join(m.id for m in matches[:5]) + (", …" if len(matches) > 5 else "")))
    return matches[0] if matches else None


#: What may abbreviate a submission id (a UUID): at least 4 of its characters, nothing SQL's LIKE would read.
_ID_PREFIX = re.compile(r"[0-9a-f-]{4,35}")


def list_submissions(
    session: Session, *, status: str | None = None, provider: str | None = None, limit: int = 1000
) -> list[Submission]:
    """Newest first, optionally filtered (read backwards along ``ix_applyq_submission_created``: no sort)."""
    query = sa.select(Submission).order_by(Submission.created_at.desc(), Submission.id.desc()).limit(limit)
    if status:
        query = query.where(Submission.status == status)
    if provider:
        query = query.where(Submission.provider == provider)
    return list(session.scalars(query))
