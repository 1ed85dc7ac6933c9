"""What the admin commands print: JSON shapes for scripts and rich tables for people.

Candidate data (the payload, provider messages that may quote it) appears only in ``show``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.admin import ActionResult
from worker.models import Attempt, AuditEvent, Submission
from worker.views import submission_json

__all__ = [
    "audit_json",
    "parked_json",
    "render_parked",
    "render_results",
    "render_show",
    "render_stats",
    "show_json",
]

_TOP = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _last_reference(attempts: Sequence[Attempt]) -> tuple[str | None, str | None]:
    """The newest attempt's ``log_url`` and ``request_id`` (where the provider's own logs are)."""
    for attempt in reversed(attempts):
        if attempt.log_url or attempt.request_id:
            return attempt.log_url, attempt.request_id
    return None, None


def parked_json(row: Submission) -> dict[str, Any]:
    """One parked submission for ``parked list``: why, what to do, where to look; no candidate data."""
    log_url, request_id = _last_reference(row.attempts)
    return {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "provider": row.provider,
        "integration_id": row.integration_id,
        "job_id": row.job_id,
        "code": row.outcome_code,
        "reason": row.outcome_reason,
        "remediation": row.remediation,
        "attempt_count": row.attempt_count,
        "log_url": log_url,
        "request_id": request_id,
        "created_at": _iso(row.created_at),
        "parked_at": _iso(row.updated_at),
    }


def audit_json(event: AuditEvent) -> dict[str, Any]:
    """One entry of the audit trail."""
    return {
        "at": _iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "note": event.note,
        "changes": event.changes,
    }


def show_json(row: Submission, audit: Iterable[AuditEvent]) -> dict[str, Any]:
    """Everything about one submission: ``status --json`` plus the payload, the retry window and the audit."""
    data = submission_json(row, attempts=True)
    data.update(
        payload=_elide_cv(row.payload),
        window_started_at=_iso(row.window_started_at),
        window_attempt_base=row.window_attempt_base,
        finished_at=_iso(row.finished_at),
        audit=[audit_json(e) for e in audit],
    )
    return data


def _elide_cv(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with a CV's base64 ``data`` replaced by its size: big, and useless on a terminal."""
    candidate = payload.get("candidate")
    cv = candidate.get("cv") if isinstance(candidate, dict) else None
    if not isinstance(cv, dict) or not isinstance(cv.get("data"), str):
        return payload
    assert isinstance(candidate, dict)
    elided = {**cv, "data": f"<{len(cv['data'])} characters of base64>"}
    return {**payload, "candidate": {**candidate, "cv": elided}}


def render_parked(console: Console, rows: Sequence[dict[str, Any]]) -> None:
    """One short block per parked submission (readable at any width), longest waiting first."""
    for r in rows:
        where = "  ".join(x for x in (r["provider"], r["integration_id"], f"job {r['job_id']}") if x)
        console.print(f"[bold]{r['id']}[/bold]  {where}", highlight=False, soft_wrap=True)
        attempts = f"{r['attempt_count']} attempt" + ("s" if r["attempt_count"] != 1 else "")
        parked_at = _time(r["parked_at"])
        why = f"{r['code'] or '-'} ({r['reason'] or '-'})"
        console.print(f"  {why} · {attempts} · parked {parked_at}", highlight=False, soft_wrap=True, markup=False)
        if r["remediation"]:
            console.print(f"  → {r['remediation']}", highlight=False, soft_wrap=True, markup=False)
        if r["log_url"] or r["request_id"]:
            ref = f"log: {r['log_url']}" if r["log_url"] else f"request id: {r['request_id']}"
            console.print(f"  {ref}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"{len(rows)} parked", highlight=False)


def render_show(console: Console, data: dict[str, Any]) -> None:
    """One submission: its fields, payload, attempts (with messages) and audit trail."""
    console.print(f"[bold]{data['id']}[/bold]  key={data['idempotency_key']}", highlight=False)
    for name in ("provider", "integration_id", "job_id", "status", "outcome_code", "outcome_reason",
                 "outcome_message", "remediation", "remote_id", "attempt_count", "window_started_at",
                 "window_attempt_base", "next_attempt_at", "created_at", "updated_at", "finished_at"):  # fmt: skip
        if data.get(name) is not None:
            console.print(f"  {name:20} {data[name]}", highlight=False, soft_wrap=True)
    console.print("[bold]payload[/bold]")
    for path, value in _flatten(data["payload"]):
        console.print(f"  {path:20} {value}", highlight=False, soft_wrap=True, markup=False)
    console.print(_attempts_table(data["attempts"]))
    console.print(_audit_table(data["audit"]))


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}.{k}" if prefix else k)]
    return [(prefix, value)]


def _attempts_table(attempts: Sequence[dict[str, Any]]) -> Table:
    table = Table("#", "started", "HTTP", "code", "decision", "reason", "delay s", "ms", "message", title="attempts")
    for column in table.columns[:-1]:
        column.no_wrap = True
    table.columns[-1].overflow = "fold"
    for a in attempts:
        table.add_row(
            str(a["number"]), _time(a["started_at"]), str(a["http_status"] or "-"), a["error_code"] or "-",
            a["decision"] or "running", a["reason"] or "", _num(a["delay_s"]), _num(a["latency_ms"]),
            a["error_message"] or a["error_title"] or "",
        )  # fmt: skip
    return table


def _audit_table(events: Sequence[dict[str, Any]]) -> Table:
    table = Table("at", "actor", "action", "changes", "note", title="audit trail")
    for column in table.columns[:3]:
        column.no_wrap = True
    for e in events:
        table.add_row(_time(e["at"]), e["actor"], e["action"], _changes(e["changes"]), e["note"] or "")
    if not events:
        table.add_row("", "", "(no operator action yet)", "", "")
    return table


def _changes(changes: dict[str, Any] | None) -> str:
    if not changes:
        return ""
    parts = []
    for key, value in changes.items():
        if isinstance(value, list) and len(value) == 2 and key != "fields" and key != "removed":
            parts.append(f"{key}: {value[0]} → {value[1]}")
        elif isinstance(value, list):
            parts.append(f"{key}: {', '.join(map(str, value))}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _time(value: str | None) -> str:
    """``2026-11-22 12:00:10`` (UTC) from an ISO timestamp."""
    return (value or "")[:19].replace("T", " ")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def render_results(console: Console, results: Sequence[ActionResult]) -> None:
    """One line per submission, then a summary such as ``requeued 3, refused 1``."""
    for r in results:
        status = f" ({r.status})" if r.status else ""
        message = f": {r.message}" if r.message else ""
        line = f"{r.result.value:14} {r.submission_id}{status}{message}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(summary(results), highlight=False)


def summary(results: Sequence[ActionResult]) -> str:
    """``requeued 3, refused 1`` (counts per result, in a fixed order)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result.value] = counts.get(r.result.value, 0) + 1
    return ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items()) or "nothing to do"


def render_stats(console: Console, data: dict[str, Any]) -> None:
    """Counts and timings as a few small tables."""
    since = f" since {data['since']}" if data["since"] else ""
    console.print(f"[bold]{data['total']} submissions{since}[/bold]", highlight=False)
    console.print(_kv_table("status", data["by_status"]))
    for key, title in (("by_provider", "provider"), ("by_code", "code"), ("by_integration", "integration")):
        console.print(_breakdown(title, data[key]))
    attempts = data["attempts"]
    console.print(_kv_table("attempts per submission", {k: _num(v) for k, v in attempts.items()}))
    timing = Table("final status", "count", "p50 s", "p95 s", title="time to final state")
    for name, s in data["time_to_final_s"].items():
        timing.add_row(name, str(s["count"]), _num(s["p50"]), _num(s["p95"]))
    console.print(timing)


def _kv_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title, "value")
    for key, value in values.items():
        table.add_row(str(key), str(value))
    return table


def _breakdown(title: str, nested: dict[str, dict[str, int]]) -> Table:
    statuses = sorted({s for counts in nested.values() for s in counts if s != "total"})
    table = Table(title, *statuses, "total", title=f"by {title}" + (f" (top {_TOP})" if len(nested) > _TOP else ""))
    for key, counts in list(nested.items())[:_TOP]:
        table.add_row(key, *(str(counts.get(s, "")) for s in statuses), str(counts["total"]))
    return table
