"""Accepting submissions: validate everything, store in one transaction, publish after commit."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from worker.db.models import Submission
from worker.db.submissions import Stored, add_submissions
from worker.errors import InvalidSubmission
from worker.runtime.dispatcher import Publisher
from worker.schemas import SubmissionIn, format_validation_error
from worker.states import DEFAULT_SCOPE

__all__ = ["enqueue", "parse_json_lines", "validate_all"]

log = logging.getLogger("applyq.enqueue")


def validate_all(raw_items: Iterable[Any], *, label: str = "item") -> list[SubmissionIn]:
    """Validate every item; one ``InvalidSubmission`` lists all problems, prefixed by item number.

    A key repeated with a different payload is a problem of the batch: stored, the second would be refused
    as a conflict with a submission the refusal itself rolls back, so the error would name an id that was
    never stored. The same key with the same payload is one submission, sent once.
    """
    items: list[SubmissionIn] = []
    problems: list[str] = []
    first_use: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(raw_items, start=1):
        prefix = f"{label} {number}: " if label else ""
        try:
            item = SubmissionIn.model_validate(raw)
        except ValidationError as exc:
            problems.extend(prefix + line for line in format_validation_error(exc).splitlines())
            continue
        items.append(item)
        earlier, fingerprint = first_use.setdefault(item.idempotency_key, (number, item.payload_hash()))
        if fingerprint != item.payload_hash():
            problems.append(f"{prefix}idempotency_key: also used by {label} {earlier} with a different payload")
    if problems:
        raise InvalidSubmission("\n".join(problems))
    if not items:
        raise InvalidSubmission("no submission given")
    return items


def parse_json_lines(text: str) -> list[Any]:
    """One JSON object, or JSON Lines of many; a syntax error names its line."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        return [json.loads(stripped)]
    except json.JSONDecodeError:
        pass
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidSubmission(f"line {number}: not valid JSON ({exc.msg})") from exc
    return values


def enqueue(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    items: Sequence[SubmissionIn],
    now: datetime,
    *,
    scope: str = DEFAULT_SCOPE,
) -> list[Stored]:
    """Store all items atomically in the client's key ``scope`` (replays return the original), then publish."""
    with sessions() as session:
        stored = add_submissions(session, items, now, scope=scope)
        session.commit()
    publish_new(sessions, publisher, fair_order([s.submission for s in stored if s.created]))
    return stored


def fair_order(rows: Sequence[Submission]) -> list[str]:
    """Ids round-robin across integrations, so a big batch for one cannot queue ahead of all the others."""
    lanes: dict[tuple[str, str | None], list[str]] = {}
    for row in rows:
        lanes.setdefault((row.provider, row.integration_id), []).append(row.id)
    return [
        lane[i] for i in range(max(map(len, lanes.values()), default=0)) for lane in lanes.values() if i < len(lane)
    ]


def publish_new(sessions: sessionmaker[Session], publisher: Publisher, ids: Sequence[str]) -> None:
    """Publish after commit; if the broker is down, leave the ids for the dispatcher at once."""
    if not ids:
        return
    try:
        publisher.publish(ids)
    except Exception as exc:
        log.warning("publish failed, the dispatcher will publish: %s", exc, extra={"count": len(ids)})
        with sessions() as session:
            session.execute(sa.update(Submission).where(Submission.id.in_(ids)).values(published_at=None))
            session.commit()
