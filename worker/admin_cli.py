"""The operator commands of ``applyq``: parked list, show, requeue, cancel, stats, purge, flower, metrics.

Registered on the main app by ``register(app)``; each command parses its input and calls a plain
function of ``worker.admin_commands``. Exit codes as in ``worker.cli``, plus 5: refused (a submission
is not in a status that allows the action: requeue of one that is not parked, cancel of one in flight
or already final; the other submissions named were still done).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from worker.cli import EXIT_INVALID, EXIT_NOT_FOUND, err, fail, load_settings, print_json
from worker.config import Settings
from worker.errors import InvalidInput, InvalidSubmission
from worker.states import Provider

if TYPE_CHECKING:
    from worker.admin import ActionResult
    from worker.admin_queries import ParkedFilter

__all__ = ["EXIT_REFUSED", "register"]

EXIT_REFUSED = 5

parked_app = typer.Typer(help="What needs a human: parked submissions.", no_args_is_help=True)

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ActorOpt = Annotated[str | None, typer.Option(help="Who is acting, for the audit trail (default: the OS user).")]
ProviderOpt = Annotated[Provider | None, typer.Option(help="Only this provider.")]
CodeOpt = Annotated[str | None, typer.Option(help="Only this provider error code, e.g. REMOTE.INPUT_INVALID.")]
IntegrationOpt = Annotated[str | None, typer.Option("--integration", help="Only this integration / account id.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Only this reason, e.g. retries_exhausted.")]
SinceOpt = Annotated[str | None, typer.Option(help="Parked since: a duration ago (2h, 7d) or an ISO 8601 time.")]


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def _parsed(parse: Callable[[], T]) -> T:
    """Run a parser of operator input; a malformed value exits 2 with the message."""
    try:
        return parse()
    except (InvalidInput, InvalidSubmission) as exc:
        fail(str(exc), EXIT_INVALID)


def _actor(actor: str | None) -> str:
    from worker.admin_input import default_actor

    return actor or default_actor()


def _filters(
    provider: Provider | None, code: str | None, integration: str | None, reason: str | None, since: str | None
) -> ParkedFilter:
    from worker.admin_input import parse_since
    from worker.admin_queries import ParkedFilter

    when = _parsed(lambda: parse_since(since, utcnow())) if since else None
    return ParkedFilter(provider.value if provider else None, code, integration, reason, when)


def _logging(settings: Settings) -> Settings:
    """Admin actions log one JSON line each on stderr."""
    from worker.logs import configure_logging

    configure_logging(settings.log_level)
    return settings


@parked_app.command("list")
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
    from worker.admin_commands import list_parked
    from worker.admin_views import render_parked

    rows = list_parked(load_settings(), _filters(provider, code, integration, reason, since), limit=limit)
    if as_json:
        print_json(rows)
    else:
        render_parked(Console(), rows)


def show(
    id_or_key: Annotated[str, typer.Argument(help="Submission id or idempotency key.")],
    as_json: JsonOpt = False,
) -> None:
    """One submission: payload (candidate data is shown only here), every attempt, and the audit trail."""
    from worker.admin_commands import show_submission
    from worker.admin_views import render_show

    data = show_submission(load_settings(), id_or_key)
    if data is None:
        fail(f"no submission with id or idempotency key {id_or_key!r}", EXIT_NOT_FOUND)
    if as_json:
        print_json(data)
    else:
        render_show(Console(), data)


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
    settings, who, now = _logging(load_settings()), _actor(actor), utcnow()
    if ids:
        results = _requeue_ids(settings, ids, set_ or [], who, now, note, dry_run)
    else:
        results = _requeue_bulk(settings, _filters(provider, code, integration, reason, since), who, now, note, dry_run)
    _finish(results, as_json)


def _requeue_ids(
    settings: Settings, ids: list[str], sets: list[str], actor: str, now: datetime, note: str | None, dry_run: bool
) -> list[ActionResult]:
    from worker.admin_commands import requeue_submissions
    from worker.admin_input import parse_edit

    edits = _parsed(lambda: [parse_edit(s) for s in sets])
    return _parsed(
        lambda: requeue_submissions(settings, ids, actor=actor, now=now, edits=edits, note=note, dry_run=dry_run)
    )


def _requeue_bulk(
    settings: Settings, filters: ParkedFilter, actor: str, now: datetime, note: str | None, dry_run: bool
) -> list[ActionResult]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from worker.admin_commands import bulk_requeue

    columns = (TextColumn("requeue"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("requeue", total=None)
        return bulk_requeue(
            settings, filters, actor=actor, now=now, note=note, dry_run=dry_run,
            on_selected=lambda n: bar.update(task, total=n), progress=lambda _: bar.advance(task),
        )  # fmt: skip


def _finish(results: Sequence[ActionResult], as_json: bool) -> None:
    """Print the results; exit 5 if any was refused, else 4 if any was not found."""
    from worker.admin import Result
    from worker.admin_views import render_results

    if as_json:
        print_json([r.as_json() for r in results])
    else:
        render_results(Console(), results)
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
    from worker.admin_commands import cancel_submissions

    settings = _logging(load_settings())
    _finish(cancel_submissions(settings, ids, actor=_actor(actor), reason=reason, now=utcnow()), as_json)


def stats(
    since: Annotated[str | None, typer.Option(help="Only submissions created since (2h, 7d, ISO time).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts per status, provider, code and integration; attempts per submission; time to final state."""
    from worker.admin_commands import submission_stats
    from worker.admin_input import parse_since
    from worker.admin_views import render_stats
    from worker.commands import limits_or_none, render_limits

    settings = load_settings()
    when = _parsed(lambda: parse_since(since, utcnow())) if since else None
    data = submission_stats(settings, since=when)
    data["limits"] = limits_or_none(settings)
    if as_json:
        print_json(data)
        return
    render_stats(Console(), data)
    if data["limits"]:
        render_limits(Console(), data["limits"])


def purge(
    older_than: Annotated[str | None, typer.Option(help="Settled and unchanged for this long, e.g. 90d.")] = None,
    email: Annotated[str | None, typer.Option(help="Every submission of (or quoting) this address.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged.")] = False,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove candidate data (payload, provider messages) and keep the anonymous history; exit 5 if some skipped."""
    from worker.admin_commands import purge_email, purge_older_than
    from worker.admin_input import parse_duration

    if (older_than is None) == (email is None):
        fail("give exactly one of --older-than or --email", EXIT_INVALID)
    settings, who, now = _logging(load_settings()), _actor(actor), utcnow()
    if older_than is not None:
        age = _parsed(lambda: parse_duration(older_than))
        report = purge_older_than(settings, age, actor=who, now=now, dry_run=dry_run)
    else:
        report = purge_email(settings, str(email), actor=who, now=now, dry_run=dry_run)
    if as_json:
        print_json({**report.as_json(), "dry_run": dry_run})
    else:
        verb = "would purge" if dry_run else "purged"
        line = f"{verb} {len(report.purged)} (cancelled {len(report.cancelled)}), skipped {len(report.skipped)}"
        Console().print(line, highlight=False)
    if report.skipped:
        err.print("some submissions were in flight or changed meanwhile: run the purge again", highlight=False)
        raise typer.Exit(EXIT_REFUSED)


def flower(
    port: Annotated[int, typer.Option(help="TCP port.")] = 5555,
    address: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
    unsafe_no_auth: Annotated[
        bool, typer.Option("--unsafe-no-auth", help="Run without APPLYQ_FLOWER_BASIC_AUTH (API disabled).")
    ] = False,
    allow_control: Annotated[
        bool, typer.Option("--allow-control", help="Enable Flower's revoke/shutdown/pool buttons.")
    ] = False,
    url_prefix: Annotated[str | None, typer.Option(help="Serve under this path (behind a proxy).")] = None,
) -> None:
    """Run Flower, the live console of workers and tasks, with basic auth from APPLYQ_FLOWER_BASIC_AUTH."""
    from worker.flower import FlowerOptions, flower_argv, run_flower

    settings = load_settings()
    options = FlowerOptions(port, address, unsafe_no_auth, allow_control, url_prefix)
    _parsed(lambda: flower_argv(settings, options))
    if unsafe_no_auth and settings.flower_basic_auth is None:
        err.print("[yellow]warning:[/yellow] Flower runs without authentication (--unsafe-no-auth)")
    raise typer.Exit(run_flower(settings, options))


def metrics(
    port: Annotated[int, typer.Option(help="TCP port.")] = 9808,
    address: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
) -> None:
    """Serve Prometheus metrics from the database (outcomes per provider and code, parked and due backlogs)."""
    from worker.db import create_engine, create_session_factory
    from worker.metrics import build_registry, serve_metrics

    settings = _logging(load_settings())
    sessions = create_session_factory(create_engine(settings.database_url, pool_size=1))
    serve_metrics(build_registry(sessions, utcnow), address=address, port=port)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``applyq`` app."""
    app.add_typer(parked_app, name="parked")
    commands: list[Callable[..., Any]] = [show, requeue, cancel, stats, purge, flower, metrics]
    for command in commands:
        app.command(command.__name__)(command)
