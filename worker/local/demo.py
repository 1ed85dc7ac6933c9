"""``applyq demo``: ~90 scripted applications to all three providers through a real worker process and the sandbox.

One of them parks because the sandbox broke its integration, and resumes itself when the sandbox fixes it and
sends Kombo's signed event to the demo's ``applyq api`` (``demo_resume.py``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy.orm import sessionmaker

from worker.clock import utcnow
from worker.config import EMBEDDED_BROKER, Settings
from worker.db.engine import create_engine, create_session_factory, migrate
from worker.db.models import Submission
from worker.intake.enqueue import enqueue
from worker.local.demo_resume import VendorFix
from worker.local.processes import Proc, free_port, spawn, wait_http
from worker.local.sandbox.config import SandboxConfig
from worker.runtime.broker import release_embedded_redis, resolve_broker_url
from worker.runtime.tasks import CeleryPublisher, create_celery
from worker.schemas import SubmissionIn
from worker.states import FINAL_STATUSES, Provider, Status, values

__all__ = ["SCRIPT", "Scripted", "run_demo"]

SANDBOX_KEY = "sandbox-kombo-key"


@dataclass(frozen=True)
class Scripted:
    """One kind of demo application and where it must end."""

    scenario: str
    count: int
    status: Status
    code: str | None = None
    reason: str | None = None
    email_domain: str = "example.com"
    provider: Provider = Provider.KOMBO
    #: StackOne account (its ATS comes from the account API). Each Kombo application gets an
    #: integration of its own (like different employers): scripted 429s and outages then cool down or trip
    #: the circuit breaker of that one integration only, as a real outage of one ATS would.
    integration_id: str | None = None
    #: The sandbox breaks this Kombo application's integration with this fault (its scenario, whatever the job
    #: id) before it is submitted; once the application parks, the sandbox fixes the integration and says so in
    #: a signed vendor event to the demo's ``applyq api``, which resumes it (``demo_resume.py``).
    fault: str | None = None

    def integration(self, n: int, run_id: str) -> str | None:
        """The integration id the demo's ``n``-th application submits with.

        Kombo's are new in every run: the embedded Redis keeps traffic state (an open circuit breaker) between
        runs, and an earlier run's outage must not slow this one down.
        """
        if self.provider is Provider.KOMBO:
            return self.integration_id or f"greenhouse:demo-{run_id}-{n}"
        return self.integration_id


S, P, T = Status.SUCCEEDED, Status.PARKED, Status.TERMINAL
SCRIPT: tuple[Scripted, ...] = (
    Scripted("ok", 13, S, reason="created"),
    Scripted("ok", 1, S, reason="created", fault="permission"),
    Scripted("ratelimit1", 3, S, reason="created"),
    Scripted("ratelimit2", 2, S, reason="created"),
    Scripted("unavailable2", 4, S, reason="created"),
    Scripted("lb503x1", 3, S, reason="created"),
    Scripted("concurrency1", 2, S, reason="created"),
    Scripted("truncated1", 1, S, reason="created"),
    Scripted("empty1", 1, S, reason="created"),
    Scripted("nullcode1", 2, S, reason="created"),
    Scripted("hang1", 2, S, reason="created"),
    Scripted("syncpending1", 2, S, reason="created"),
    Scripted("slowcreate1", 2, S, reason="reconciled"),
    Scripted("timedout1", 1, S, reason="reconciled"),
    Scripted("ok", 3, P, "REMOTE.INPUT_INVALID", "invalid_input", email_domain="invalid.example"),
    Scripted("badinput", 2, P, "PLATFORM.INPUT_INVALID", "invalid_input"),
    Scripted("permission", 3, P, "INTEGRATION.PERMISSION_MISSING", "permission_missing"),
    Scripted("reauth", 1, P, "INTEGRATION.AUTHENTICATION_INVALID", "reauthentication_required"),
    Scripted("unknowncode", 2, P, "ATS.SOMETHING_NEW", "unknown_code"),
    Scripted("unavailable99", 1, P, "REMOTE.SERVICE_UNAVAILABLE", "retries_exhausted"),
    Scripted("closed", 3, T, "ATS.JOB_CLOSED", "job_closed"),
    Scripted("applied", 3, T, "ATS.APPLICATION_ALREADY_EXISTS", "already_applied"),
    *(
        dataclasses.replace(row, provider=Provider.STACKONE, integration_id=account)
        for account, row in (
            ("demo-account", Scripted("ok", 4, S, reason="created")),
            ("demo-account-throttled", Scripted("ratelimit1", 2, S, reason="created")),
            ("demo-account", Scripted("unavailable1", 2, S, reason="created")),
            ("demo-account", Scripted("truncated1", 1, S, reason="created")),
            ("demo-account", Scripted("hang1", 1, S, reason="created")),
            ("demo-account", Scripted("timedout1", 1, S, reason="reconciled")),
            ("demo-account", Scripted("badinput", 1, P, "HTTP_400", "invalid_input")),
            ("demo-account", Scripted("ok", 1, P, "HTTP_422", "invalid_input", email_domain="invalid.example")),
            ("demo-account", Scripted("reauth", 1, P, "HTTP_401", "reauthentication_required")),
            # the sandbox's account API links these accounts to Lever and Teamtailor, for their quirks
            ("demo-lever-account", Scripted("permission", 1, P, "HTTP_403", "account_settings")),
            ("demo-teamtailor-account", Scripted("unknowncode", 1, P, "HTTP_501", "permission_missing")),
            ("demo-account", Scripted("applied", 2, P, "HTTP_409", "conflict")),
        )
    ),
    *(
        dataclasses.replace(row, provider=Provider.CELPER, integration_id=None)
        for row in (
            Scripted("ok", 4, S, reason="created"),
            Scripted("ratelimit1", 2, S, reason="created"),
            Scripted("unavailable2", 2, S, reason="created"),
            Scripted("slowcreate1", 1, S, reason="created"),
            Scripted("timedout1", 1, S, reason="reconciled"),
            Scripted("unavailable3", 1, P, "INTERNAL_ERROR", "retries_exhausted"),
            Scripted("ok", 1, P, "VALIDATION_ERROR", "invalid_input", email_domain="invalid.example"),
            # (a key-wide refusal, e.g. SCOPE_INSUFFICIENT, would hold every Celper submission: docs/vendor-rules.md)
            Scripted("badinput", 1, P, "VALIDATION_ERROR", "invalid_input"),
            Scripted("unknowncode", 1, P, "CANDIDATE_LOCKED", "unknown_code"),
            Scripted("closed", 1, P, "NOT_FOUND", "job_not_found"),
            Scripted("applied", 2, T, "DUPLICATE_CANDIDATE", "already_applied"),
        )
    ),
)

#: Short timings so the whole demo takes well under a minute.
DEMO_ENV = {
    "APPLYQ_KOMBO_API_KEY": SANDBOX_KEY,
    "APPLYQ_STACKONE_API_KEY": SandboxConfig.stackone_api_key,
    "APPLYQ_CELPER_API_KEY": SandboxConfig.celper_api_key,
    "APPLYQ_HTTP_TIMEOUT_S": "1.5",
    "APPLYQ_BACKOFF_BASE_S": "0.5",
    "APPLYQ_BACKOFF_MAX_S": "4",
    "APPLYQ_SYNC_PENDING_DELAY_S": "3",
    "APPLYQ_MAX_ATTEMPTS": "5",
    "APPLYQ_LEASE_MARGIN_S": "5",
    "APPLYQ_WORKER_CONCURRENCY": "16",
    "APPLYQ_DISPATCH_INTERVAL_S": "0.2",
    # The sandbox is not bound by Celper's production limit of 20 writes a minute.
    "APPLYQ_RATE_LIMITS": '{"celper:*": "20/s"}',
}

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Niklaus")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")


def build_submissions(run_id: str) -> list[tuple[Scripted, SubmissionIn]]:
    """The demo's applications, each paired with the outcome it is scripted for."""
    items = []
    for n, (script, i) in enumerate((s, i) for s in SCRIPT for i in range(s.count)):
        first, last = _FIRST[n % len(_FIRST)], _LAST[n % len(_LAST)]
        submission = SubmissionIn.model_validate(
            {
                "provider": script.provider.value,
                "integration_id": script.integration(n, run_id),
                "job_id": f"{script.scenario}--job-{n}",
                "idempotency_key": f"demo-{run_id}-{n}",
                "candidate": {
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first.lower()}.{last.lower()}.{n}@{script.email_domain}",
                    "phone": "+44 20 7946 0000",
                },
                "metadata": {"demo_run": run_id, "scenario": script.scenario, "copy": i},
            }
        )
        items.append((script, submission))
    return items


def run_demo(settings: Settings, *, timeout_s: float) -> int:
    """Start sandbox, worker and API, submit, wait, print the outcomes; 0 if every one is as scripted."""

    console = Console(width=None if sys.stdout.isatty() else 130)
    console.print(f"[bold]applyq demo[/bold]  database={settings.database_url}  broker={settings.broker_url}")
    migrate(settings.database_url, pooler=settings.database_pooler)
    broker_url = resolve_broker_url(settings)
    logs = settings.embedded_redis_dir.resolve()
    logs.mkdir(parents=True, exist_ok=True)
    port, api_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **DEMO_ENV,
        "APPLYQ_BROKER_URL": broker_url,
        "APPLYQ_KOMBO_BASE_URL": sandbox_url,
        "APPLYQ_STACKONE_BASE_URL": sandbox_url,
        "APPLYQ_CELPER_BASE_URL": f"{sandbox_url}/v1",
        "APPLYQ_DATABASE_URL": settings.database_url,
    }
    events_url = f"http://127.0.0.1:{api_port}/vendor-events/kombo"
    sandbox_args = [
        "--port",
        str(port),
        "--hang-s",
        "3",
        "--celper-rate-limit",
        "1000",
        "--kombo-events-url",
        events_url,
    ]
    procs: list[Proc] = [
        spawn(["sandbox", *sandbox_args], env, logs / "demo-sandbox.log"),
        spawn(["worker", "--hostname", f"demo-{port}@%h"], env, logs / "demo-worker.log"),
        spawn(["api", "--port", str(api_port)], {**env, **_api_env()}, logs / "demo-api.log"),
    ]
    try:
        wait_http(f"{sandbox_url}/_sandbox/health")
        wait_http(f"http://127.0.0.1:{api_port}/openapi.json")
        run_id = uuid.uuid4().hex[:8]
        scripted = build_submissions(run_id)
        fixes = _vendor_fixes(sandbox_url, scripted)
        sessions = create_session_factory(
            create_engine(settings.database_url, pool_size=2, pooler=settings.database_pooler)
        )
        publisher = CeleryPublisher(create_celery(settings, broker_url))
        started = time.monotonic()
        stored = enqueue(sessions, publisher, [s for _, s in scripted], utcnow())
        ids = [s.submission.id for s in stored]
        console.print(f"submitted {len(ids)} applications (run {run_id}); worker log: {logs / 'demo-worker.log'}")
        rows = _wait_final(console, sessions, ids, fixes, timeout_s)
        elapsed = time.monotonic() - started
        ok = _report(console, [s for s, _ in scripted], rows, elapsed)
        ok = all([fix.report(console, sessions, _row_of(fix, rows)) for fix in fixes]) and ok
    finally:
        for proc in reversed(procs):
            proc.stop()
        console.print(_stopped(settings), highlight=False)
    return 0 if ok else 1


def _api_env() -> dict[str, str]:
    """``applyq api`` receives the sandbox's Kombo events, signed with the sandbox's secret; its bearer token
    (it refuses to start without one) is this run's own and is never used."""
    return {
        "APPLYQ_API_TOKENS": secrets.token_urlsafe(24),
        "APPLYQ_KOMBO_WEBHOOK_SECRET": SandboxConfig.kombo_webhook_secret,
        "APPLYQ_AUTO_RESUME": "true",
    }


def _vendor_fixes(sandbox_url: str, scripted: list[tuple[Scripted, SubmissionIn]]) -> list[VendorFix]:
    """The integrations the sandbox breaks before the demo submits, each to be fixed by a vendor event."""
    fixes = [
        VendorFix(sandbox_url, str(submission.integration_id), script.fault)
        for script, submission in scripted
        if script.fault is not None
    ]
    for fix in fixes:
        fix.break_integration()
    return fixes


def _row_of(fix: VendorFix, rows: list[Submission]) -> Submission:
    return next(row for row in rows if row.integration_id == fix.integration_id)


def _stopped(settings: Settings) -> str:
    """What the demo stopped: its children, and the embedded Redis unless another applyq process uses it."""
    if settings.broker_url != EMBEDDED_BROKER:
        return "stopped the sandbox, the worker and the API."
    if release_embedded_redis(settings.embedded_redis_dir):
        return "stopped the sandbox, the worker, the API and the embedded Redis."
    return "stopped the sandbox, the worker and the API; the embedded Redis serves other applyq processes."


def _wait_final(
    console: Console, sessions: object, ids: list[str], fixes: list[VendorFix], timeout_s: float
) -> list[Submission]:
    """Poll until every submission is final, none held by a vendor event just sent, or the time is up."""
    assert isinstance(sessions, sessionmaker)
    deadline = time.monotonic() + timeout_s
    final = set(values(FINAL_STATUSES))
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        while True:
            with sessions() as session:
                rows = [session.get_one(Submission, i) for i in ids]
                session.expunge_all()
            counts = Counter(r.status for r in rows)
            live.update(" · ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
            held = [fix.holds(_row_of(fix, rows)) for fix in fixes]  # every fix looks, each poll
            if (all(r.status in final for r in rows) and not any(held)) or time.monotonic() > deadline:
                return rows
            time.sleep(0.25)


def _report(console: Console, scripts: list[Scripted], rows: list[Submission], elapsed: float) -> bool:
    table = Table("#", "provider", "scenario", "status", "final code", "reason", "attempts", "time s", "as scripted")
    good = 0
    for n, (script, row) in enumerate(zip(scripts, rows, strict=True), start=1):
        expected = row.status == script.status.value and (script.code is None or row.outcome_code == script.code)
        expected = expected and (script.reason is None or row.outcome_reason == script.reason)
        good += expected
        took = ((row.finished_at or row.updated_at) - row.created_at).total_seconds()
        table.add_row(
            str(n), script.provider.value, _scenario_label(script),
            _styled(row.status), row.outcome_code or "", row.outcome_reason or "",
            str(row.attempt_count), f"{took:.1f}", "[green]yes[/green]" if expected else "[red]NO[/red]",
        )  # fmt: skip
    console.print(table)
    counts = Counter(r.status for r in rows)
    retried = sum(1 for r in rows if r.status == "succeeded" and r.attempt_count > 1)
    console.print(
        f"{len(rows)} submissions in {elapsed:.1f}s: {counts['succeeded']} succeeded "
        f"({retried} after retries), {counts['parked']} parked, {counts['terminal']} terminal; "
        f"{good}/{len(rows)} as scripted."
    )
    example = next((r.id for r in rows if r.status == "parked"), rows[0].id)
    console.print(
        "Look further (same database): [bold]applyq list --status parked[/bold] · "
        f"[bold]applyq status {example}[/bold] (attempt history, remediation) · [bold]applyq list --json[/bold]. "
        "To watch tasks live in Flower, see docs/operating.md."
    )
    return good == len(rows)


def _scenario_label(script: Scripted) -> str:
    ats, _, _ = (script.integration_id or "").rpartition(":")
    label = f"{ats}:{script.scenario}" if ats and script.provider is Provider.STACKONE else script.scenario
    if script.fault is not None:
        label = f"{script.fault}→event"
    return label + ("@invalid.example" if script.email_domain != "example.com" else "")


def _styled(status: str) -> str:
    colour = {"succeeded": "green", "parked": "yellow", "terminal": "red"}.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"
