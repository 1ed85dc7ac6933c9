"""Every table and line ``applyq`` prints for people (scripts use ``--json``, shaped in ``worker/admin/views.py``).

Candidate data (the payload, provider messages that may quote it) appears only in ``show``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from worker.admin.actions import ActionResult

__all__ = [
    "attempts_table",
    "render_limits",
    "render_list",
    "render_parked",
    "render_results",
    "render_show",
    "render_stats",
    "render_status",
]

_TOP = 20


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
    console.print(attempts_table(data["attempts"], messages=True))
    for attempt in data["attempts"]:
        if attempt.get("details"):
            console.print(f"[bold]attempt {attempt['number']}: the provider's details[/bold]")
            for path, value in _flatten(attempt["details"]):
                console.print(f"  {path:20} {value}", highlight=False, soft_wrap=True, markup=False)
    console.print(_audit_table(data["audit"]))


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list) and value:
        return [item for i, v in enumerate(value) for item in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, value)]


def attempts_table(attempts: Sequence[dict[str, Any]], *, messages: bool) -> Table:
    """The attempt history; the last column is the provider's message (``show`` only) or where its logs are."""
    last = "message" if messages else "log / request id"
    table = Table("#", "started", "HTTP", "code", "decision", "reason", "delay s", "ms", last, title="attempts")
    for column in table.columns[:-1]:
        column.no_wrap = True
    table.columns[-1].overflow = "fold"
    for a in attempts:
        detail = (a["error_message"] or a["error_title"]) if messages else (a["log_url"] or a["request_id"])
        table.add_row(
            str(a["number"]), _time(a["started_at"]), str(a["http_status"] or "-"), a["error_code"] or "-",
            a["decision"] or "running", a["reason"] or "", _num(a["delay_s"]), _num(a["latency_ms"]), detail or "",
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
    console.print(_latest(data["latest_final"]), highlight=False)
    console.print(_kv_table("attempts per submission", {k: _num(v) for k, v in data["attempts"].items()}))
    timing = Table("final status", "count", "p50 s", "p95 s", title="time to final state")
    for name, s in data["time_to_final_s"].items():
        timing.add_row(name, str(s["count"]), _num(s["p50"]), _num(s["p95"]))
    console.print(timing)


def _latest(window: dict[str, Any]) -> str:
    """What the timings are over: the latest to reach a final state, how many and since when."""
    since = f", finished since {window['oldest_finished_at'][:19]}" if window["oldest_finished_at"] else ""
    return f"timings of the latest {window['count']} to reach a final state (--latest {window['limit']}){since}:"


def _kv_table(header: str, values: dict[str, Any]) -> Table:
    table = Table(header, "value")
    for key, value in values.items():
        table.add_row(str(key), str(value))
    return table


def _breakdown(title: str, nested: dict[str, dict[str, int]]) -> Table:
    statuses = sorted({s for counts in nested.values() for s in counts if s != "total"})
    table = Table(title, *statuses, "total", title=f"by {title}" + (f" (top {_TOP})" if len(nested) > _TOP else ""))
    for key, counts in list(nested.items())[:_TOP]:
        table.add_row(key, *(str(counts.get(s, "")) for s in statuses), str(counts["total"]))
    return table


def render_status(console: Console, data: dict[str, Any]) -> None:
    """A readable view of one submission and its attempts."""
    console.print(f"[bold]{data['id']}[/bold]  key={data['idempotency_key']}")
    for name in ("provider", "integration_id", "job_id", "status", "outcome_code", "outcome_reason",
                 "outcome_message", "remediation", "remote_id", "attempt_count", "next_attempt_at",
                 "created_at", "updated_at"):  # fmt: skip
        if data.get(name) is not None:
            console.print(f"  {name:16} {data[name]}", highlight=False, soft_wrap=True)
    console.print(attempts_table(data["attempts"], messages=False))


def render_list(console: Console, rows: list[dict[str, Any]]) -> None:
    """A table of submissions."""
    # the id is never cut (``applyq status`` takes it, or its first characters); the other columns wrap
    table = Table(Column("id", no_wrap=True, min_width=36), "provider", "job", "status", "code", "attempts", "updated")
    for r in rows:
        table.add_row(
            r["id"], r["provider"], r["job_id"], r["status"], r["outcome_code"] or "",
            str(r["attempt_count"]), (r["updated_at"] or "")[:19],
        )  # fmt: skip
    console.print(table)


def render_limits(console: Console, rows: list[dict[str, Any]]) -> None:
    """A table of limit keys."""
    table = Table("limit key", "rate/s", "adaptive rate/s", "concurrency", "in flight", "cooldown s", "breaker",
                  "backlog s", "sporadic 429s s")  # fmt: skip
    for r in rows:
        table.add_row(
            r["key"], _num(r["rate_per_s"]), _num(r["adaptive_rate_per_s"]), _num(r["concurrency"]),
            str(r["in_flight"]), _num(r["cooldown_s"]), r["breaker"], _num(r["backlog_s"]), _num(r["sporadic_s"]),
        )  # fmt: skip
    console.print(table)
