"""The job board's commands: ``submit``, ``status`` and ``list``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.admin.views import submission_json
from worker.cli.output import (
    EXIT_CONFLICT,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    console,
    fail,
    load_settings,
    parsed,
    print_json,
    sessions,
)
from worker.cli.render import render_list, render_status
from worker.clock import utcnow
from worker.db.submissions import find_by_reference, list_submissions
from worker.errors import IdempotencyConflict, InvalidSubmission
from worker.intake.enqueue import enqueue, parse_json_lines, validate_all
from worker.runtime.broker import resolve_broker_url
from worker.states import Provider, Status

__all__ = ["list_", "status", "submit"]


def submit(
    provider: Annotated[Provider | None, typer.Option(help="kombo | stackone | celper")] = None,
    job_id: Annotated[str | None, typer.Option(help="The provider's job id.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="The job board's unique key.")] = None,
    integration_id: Annotated[str | None, typer.Option(help="Kombo integration / StackOne account.")] = None,
    candidate_json: Annotated[str | None, typer.Option(help="Candidate as a JSON object.")] = None,
    metadata_json: Annotated[str | None, typer.Option(help="The job board's own ids (JSON).")] = None,
    file: Annotated[str | None, typer.Option(help="JSON object or JSON Lines; '-' for stdin.")] = None,
) -> None:
    """Validate, store and queue submissions; print one JSON line per submission."""
    raw = _raw_submissions(provider, job_id, idempotency_key, integration_id, candidate_json, metadata_json, file)
    settings = load_settings()
    try:
        items = validate_all(raw, label="line" if file else "")
        from worker.runtime.tasks import CeleryPublisher, create_celery  # local: Celery is slow to import

        publisher = CeleryPublisher(create_celery(settings, resolve_broker_url(settings)))
        stored = enqueue(sessions(settings, pool_size=2), publisher, items, utcnow())
    except InvalidSubmission as exc:
        fail(f"invalid submission, nothing was stored:\n{exc}", EXIT_INVALID)
    except IdempotencyConflict as exc:
        fail(f"{exc}; nothing was stored", EXIT_CONFLICT)
    for item in stored:
        row = item.submission
        print_json({"id": row.id, "status": row.status, "idempotency_key": row.idempotency_key})


def _raw_submissions(
    provider: Provider | None,
    job_id: str | None,
    idempotency_key: str | None,
    integration_id: str | None,
    candidate_json: str | None,
    metadata_json: str | None,
    file: str | None,
) -> list[Any]:
    if file is not None:
        if any(v is not None for v in (provider, job_id, idempotency_key, candidate_json)):
            fail("--file cannot be combined with the per-field options", EXIT_INVALID)
        try:
            data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
            return parse_json_lines(data.decode("utf-8-sig"))  # UTF-8 whatever the locale; a BOM is skipped
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", EXIT_INVALID)
        except UnicodeDecodeError as exc:
            where = "standard input" if file == "-" else file
            fail(f"{where} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})", EXIT_INVALID)
        except InvalidSubmission as exc:
            fail(f"invalid submission file, nothing was stored:\n{exc}", EXIT_INVALID)
    raw: dict[str, Any] = {
        "provider": provider.value if provider else None,
        "job_id": job_id,
        "idempotency_key": idempotency_key,
        "integration_id": integration_id,
        "candidate": _json_option("--candidate-json", candidate_json),
    }
    if metadata_json is not None:
        raw["metadata"] = _json_option("--metadata-json", metadata_json)
    return [raw]


def _json_option(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})", EXIT_INVALID)


def status(
    id_or_key: Annotated[str, typer.Argument(help="Submission id or idempotency key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one submission and its attempt history."""
    with sessions(load_settings())() as session:
        row = parsed(lambda: find_by_reference(session, id_or_key))
        data = None if row is None else submission_json(row, attempts=True)
    if data is None:
        fail(f"no submission with id or idempotency key {id_or_key!r}", EXIT_NOT_FOUND)
    if as_json:
        print_json(data)
    else:
        render_status(console(), data)


def list_(
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    provider: Annotated[Provider | None, typer.Option(help="Only this provider.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List submissions, newest first."""
    status_value, provider_value = (status.value if status else None), (provider.value if provider else None)
    with sessions(load_settings())() as session:
        found = list_submissions(session, status=status_value, provider=provider_value, limit=limit)
        rows = [submission_json(row) for row in found]
    if as_json:
        print_json(rows)
    else:
        render_list(console(), rows)
