"""The operator's commands: parked list, show, requeue, cancel, stats, purge, prune, health and limits.

Each parses its input, opens a session and calls a plain function of ``worker.admin`` (or ``worker.ops``,
``worker.traffic``). Exit codes as in ``worker.cli.output``; 5 means refused (a submission is not in a
status that allows the action: requeue of one that is not parked, cancel of one in flight or already
final; the other submissions named were still done).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from worker.admin import actions
from worker.admin import purge as purging
from worker.admin.actions import ActionResult, Result
from worker.admin.edits import default_actor, parse_duration, parse_edit, parse_since
from worker.admin.queries import ParkedFilter, parked, submission_with_history
from worker.admin.stats import LATEST
from worker.admin.stats import stats as submission_stats
from worker.admin.views import parked_json, show_json
from worker.cli.helptext import Command, Group
from worker.cli.output import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    console,
    err,
    fail,
    load_settings,
    parsed,
    print_json,
    sessions,
)
from worker.cli.render import render_limits, render_parked, render_results, render_show, render_stats
from worker.clock import utcnow
from worker.config import Settings
from worker.db import retention
from worker.errors import InvalidInput
from worker.logs import configure_logging
from worker.ops.health import check_health
from worker.runtime.broker import resolve_broker_url
from worker.states import Provider
from worker.traffic.limiter import RedisLimiter, redis_client
from worker.traffic.limits import describe_limits

__all__ = ["cancel", "health", "limits", "parked_app", "prune", "purge", "requeue", "resume", "show", "stats"]

parked_app = typer.Typer(help="What needs a human: parked submissions.", no_args_is_help=True, cls=Group)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ActorOpt = Annotated[str | None, typer.Option(help="Who is acting, for the audit trail (default: the OS user).")]
ProviderOpt = Annotated[Provider | None, typer.Option(help="Only this provider.")]
CodeOpt = Annotated[str | None, typer.Option(help="Only this provider error code, e.g. REMOTE.INPUT_INVALID.")]
IntegrationOpt = Annotated[str | None, typer.Option("--integration", help="Only this integration / account id.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Only this reason, e.g. retries_exhausted.")]
SinceOpt = Annotated[str | None, typer.Option(help="Parked since: a duration ago (2h, 7d) or an ISO 8601 time.")]


def _filters(
    provider: Provider | None, code: str | None, integration: str | None, reason: str | None, since: str | None
) -> ParkedFilter:
    when = parsed(lambda: parse_since(since, utcnow())) if since else None
    return ParkedFilter(provider.value if provider else None, code, integration, reason, when)


def _logging(settings: Settings) -> Settings:
    """Admin actions log one JSON line each on stderr, for log collectors; a person at a terminal sees the results."""
    configure_logging(settings.log_level if not err.is_terminal else "WARNING")
    return settings


@parked_app.command("list", cls=Command)
def parked_list(
    provider: ProviderOpt = None,
    code: CodeOpt = None,
    integration: IntegrationOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, longest waiting first.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Parked submissions with the reason, what to do, and the provider's log_url / request id."""
    filters = _filters(provider, code, integration, reason, since)
    with sessions(load_settings())() as session:
        rows = [parked_json(row) for row in parked(session, filters, limit=limit)]
    if as_json:
        print_json(rows)
    else:
        render_parked(console(), rows)


def show(
    id_or_key: Annotated[str, typer.Argument(help="Submission id or idempotency key.")],
    as_json: JsonOpt = False,
) -> None:
    """One submission: payload (candidate data is shown only here), every attempt, and the audit trail."""
    with sessions(load_settings())() as session:
        found = parsed(lambda: submission_with_history(session, id_or_key))
        data = None if found is None else show_json(*found)
    if data is None:
        fail(f"no submission with id or idempotency key {id_or_key!r}", EXIT_NOT_FOUND)
    if as_json:
        print_json(data)
    else:
        render_show(console(), data)


def requeue(
    ids: Annotated[list[str] | None, typer.Argument(help="Submission ids or idempotency keys.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Edit before requeueing: FIELD=VALUE (a string) or FIELD:=JSON. Repeatable."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every parked submission matching the filters.")] = False,
    code: CodeOpt = None,
    provider: ProviderOpt = None,
    integration: IntegrationOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    note: Annotated[str | None, typer.Option(help="Why, for the audit trail (no candidate data).")] = None,
    actor: ActorOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be requeued.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --all: requeue without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Put parked submissions back in the queue with a fresh retry budget, optionally editing the payload.

    By id: applyq requeue ID... --set candidate.email=ada@example.com --note "typo in the email"

    In bulk: applyq requeue --all --code INTEGRATION.PERMISSION_MISSING --integration ID --dry-run

    Exit 5 if a submission is not parked (the others named are still requeued).
    """
    bulk = (code, provider, integration, reason, since)
    if bool(ids) == all_:
        fail("name submission ids, or use --all with filters (--code, --provider, --integration)", EXIT_INVALID)
    if ids and any(v is not None for v in bulk):
        fail("filters (--code, --provider, ...) only go with --all", EXIT_INVALID)
    if all_ and set_:
        fail("--set edits named submissions only; it cannot be combined with --all", EXIT_INVALID)
    if all_ and all(v is None for v in bulk):
        fail("--all needs a filter (--code, --provider, --integration, --reason or --since)", EXIT_INVALID)
    settings, who, now = _logging(load_settings()), actor or default_actor(), utcnow()
    with sessions(settings)() as session:
        if ids:
            edits = parsed(lambda: [parse_edit(s) for s in set_ or []])
            results = parsed(
                lambda: actions.requeue(session, ids, actor=who, now=now, edits=edits, note=note, dry_run=dry_run)
            )
        else:
            filters = _filters(provider, code, integration, reason, since)
            results = _requeue_matching(session, filters, who, now, note, dry_run or not _confirmed(yes))
    _finish(results, as_json)


def _confirmed(yes: bool) -> bool:
    """A bulk requeue goes ahead with ``--yes``, or when a person at a terminal says so; else it is a dry run."""
    if yes:
        return True
    if not err.is_terminal:
        err.print("a dry run: add --yes to requeue them", highlight=False)
        return False
    return typer.confirm("Requeue every parked submission matching these filters?", default=False, err=True)


def _requeue_matching(
    session: Any, filters: ParkedFilter, actor: str, now: datetime, note: str | None, dry_run: bool
) -> list[ActionResult]:
    """``requeue --all`` with a progress bar on a terminal."""
    columns = (TextColumn("requeue"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("requeue", total=None)
        return actions.requeue_matching(
            session, filters, actor=actor, now=now, note=note, dry_run=dry_run,
            on_selected=lambda n: bar.update(task, total=n), progress=lambda _: bar.advance(task),
        )  # fmt: skip


def _finish(results: Sequence[ActionResult], as_json: bool) -> None:
    """Print the results; exit 5 if any was refused, else 4 if any was not found."""
    if as_json:
        print_json([r.as_json() for r in results])
    else:
        render_results(console(), results)
    outcomes = {r.result for r in results}
    if Result.REFUSED in outcomes:
        refused = sum(r.result is Result.REFUSED for r in results)
        err.print(f"[red]error:[/red] {refused} refused, see above; nothing was changed for those", highlight=False)
        raise typer.Exit(EXIT_REFUSED)
    if Result.NOT_FOUND in outcomes:
        raise typer.Exit(EXIT_NOT_FOUND)


def cancel(
    ids: Annotated[list[str], typer.Argument(help="Submission ids or idempotency keys.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail (no candidate data).")],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw queued, scheduled or parked submissions (exit 5 for one in flight or already final)."""
    settings = _logging(load_settings())
    with sessions(settings)() as session:
        who = actor or default_actor()
        results = parsed(lambda: actions.cancel(session, ids, actor=who, reason=reason, now=utcnow()))
    _finish(results, as_json)


def resume(
    provider: Annotated[Provider, typer.Option(help="The provider whose configuration was fixed.")],
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a provider key held after a configuration error (revoked key, IP not allow-listed), now.

    Without it, the next probe (every APPLYQ_HOLD_PROBE_S) releases the key once the provider accepts it.
    """
    settings = _logging(load_settings())
    keys = parsed(lambda: _limiter(settings)).release(provider.value)
    with sessions(settings)() as session:
        ids = actions.resume_held(session, provider.value, actor=actor or default_actor(), now=utcnow())
    if as_json:
        print_json({"provider": provider.value, "limit_keys": keys, "resumed": ids})
    else:
        console().print(f"released {len(keys)} limit key(s) of {provider.value}; {len(ids)} held submission(s) due now")


def stats(
    since: Annotated[str | None, typer.Option(help="Only submissions created since (2h, 7d, ISO time).")] = None,
    latest: Annotated[
        int, typer.Option(min=1, help="Attempts and time to final state over the latest N to reach a final state.")
    ] = LATEST,
    as_json: JsonOpt = False,
) -> None:
    """Counts per status, provider, code and integration; attempts and time to final state of the latest final."""
    settings = load_settings()
    when = parsed(lambda: parse_since(since, utcnow())) if since else None
    with sessions(settings)() as session:
        data = submission_stats(session, since=when, latest=latest)
    data["limits"] = _limits_or_none(settings)
    if as_json:
        print_json(data)
        return
    render_stats(console(), data)
    if data["limits"]:
        render_limits(console(), data["limits"])


def purge(
    older_than: Annotated[
        str | None, typer.Option(help="Succeeded, terminal or cancelled, and unchanged for this long, e.g. 90d.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Every submission of (or quoting) this address.")] = None,
    include_parked: Annotated[
        bool, typer.Option("--include-parked", help="With --older-than: parked ones too (they are cancelled).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged.")] = False,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove candidate data (payload, provider messages) and keep the anonymous history; exit 5 if some skipped."""
    if (older_than is None) == (email is None):
        fail("give exactly one of --older-than or --email", EXIT_INVALID)
    if include_parked and older_than is None:
        fail("--include-parked goes with --older-than (--email covers every status)", EXIT_INVALID)
    settings, who, now = _logging(load_settings()), actor or default_actor(), utcnow()
    age = parsed(lambda: parse_duration(older_than)) if older_than is not None else None
    with sessions(settings)() as session:
        if age is not None:
            report = purging.purge_older_than(
                session, age, actor=who, now=now, dry_run=dry_run, include_parked=include_parked
            )
        else:
            report = purging.purge_email(session, str(email), actor=who, now=now, dry_run=dry_run)
    if as_json:
        print_json({**report.as_json(), "dry_run": dry_run})
    else:
        console().print(_purge_line(report, dry_run), highlight=False)
    if report.skipped:
        err.print("some submissions were in flight or changed meanwhile: run the purge again", highlight=False)
        raise typer.Exit(EXIT_REFUSED)


def prune(
    older_than: Annotated[
        str, typer.Option(help="Succeeded, terminal or cancelled, and unchanged for this long, e.g. 90d.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be removed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove old history (attempts, audit rows, delivered webhook events); keep submissions and metrics' counts."""
    settings = load_settings()
    age_s = parsed(lambda: parse_duration(older_than)).total_seconds()
    factory = sessions(settings)
    if dry_run:
        with factory() as session:
            report = retention.would_prune(session, age_s)
    else:
        report = retention.prune(factory, age_s)
    if as_json:
        print_json({**report.as_json(), "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    console().print(
        f"{verb} the history of {report.submissions} submissions ended more than {older_than} ago: "
        f"{report.attempts} attempts, {report.audit_rows} audit rows; and {report.webhook_events} delivered "
        "webhook events",
        highlight=False,
    )


def _purge_line(report: purging.PurgeReport, dry_run: bool) -> str:
    """``would purge 3 (succeeded, terminal or cancelled, unchanged since …); of them would cancel 0 …``."""
    purged, cancelled = ("would purge", "would cancel") if dry_run else ("purged", "cancelled")
    counts = f"{purged} {len(report.purged)} ({report.scope}); of them {cancelled} {len(report.cancelled)}"
    return f"{counts} that could still be delivered; skipped {len(report.skipped)} (in flight or changed meanwhile)"


def health(
    max_idle_s: Annotated[float, typer.Option(min=0, help="Due work may wait this long unconsumed.")] = 120.0,
    max_dispatcher_silence_s: Annotated[
        float, typer.Option(min=0, help="Longest gap between dispatcher beats.")
    ] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Exit 1 if due work is not being consumed or no dispatcher is running (for liveness probes)."""
    with sessions(load_settings())() as session:
        report = check_health(session, max_idle_s=max_idle_s, max_dispatcher_silence_s=max_dispatcher_silence_s)
    if as_json:
        print_json({"ok": report.ok, "problems": report.problems, **report.facts})
    else:
        console().print("healthy" if report.ok else "UNHEALTHY: " + "; ".join(report.problems), highlight=False)
    raise typer.Exit(0 if report.ok else 1)


def limits(as_json: JsonOpt = False) -> None:
    """Traffic control per integration: rates, cooldowns after 429s, circuit breakers, requests in flight."""
    settings = load_settings()
    rows = parsed(lambda: _limits(settings))
    if as_json:
        print_json(rows)
    else:
        render_limits(console(), rows)


def _limits(settings: Settings) -> list[dict[str, Any]]:
    """Traffic-control state per limit key: configured limits, adaptive rate, cooldown, breaker, in flight."""
    limiter = _limiter(settings)
    return describe_limits(limiter.snapshot(), settings.limit_specs, limiter.holds())


def _limiter(settings: Settings) -> RedisLimiter:
    """Traffic control's state, kept in the broker's Redis; a broker that is not Redis is an input error."""
    try:
        return RedisLimiter(redis_client(resolve_broker_url(settings)))
    except ValueError as exc:  # e.g. memory://: redis-py names the URL schemes it takes
        raise InvalidInput(f"APPLYQ_BROKER_URL: traffic control keeps its state in Redis; {exc}") from exc


def _limits_or_none(settings: Settings) -> list[dict[str, Any]] | None:
    """``_limits``, or None when traffic control is off or its Redis cannot be reached."""
    if not settings.traffic_control:
        return None
    try:
        return _limits(settings)
    except (redis.RedisError, OSError, RuntimeError, ValueError, InvalidInput):  # e.g. a memory:// broker in tests
        return None
