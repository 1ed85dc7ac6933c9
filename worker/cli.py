"""The ``applyq`` command: a thin shell that parses input and calls plain functions.

Exit codes: 0 ok · 1 unexpected error · 2 invalid input or usage · 3 idempotency key reused with a
different payload · 4 not found · 5 refused: not in a status that allows it (e.g. requeue of a submission
that is not parked). The operator commands live in ``worker/admin_cli.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from worker.config import Settings
from worker.errors import IdempotencyConflict, InvalidSubmission
from worker.states import Provider, Status

__all__ = ["app", "main"]

EXIT_INVALID = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4

app = typer.Typer(
    name="applyq",
    help="Deliver job applications to ATS providers, reliably. See `applyq COMMAND --help`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def fail(message: str, code: int) -> NoReturn:
    """Print to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Read the environment once; a bad value is an input error."""
    try:
        return Settings()
    except ValidationError as exc:
        from worker.schemas import format_validation_error

        fail("invalid APPLYQ_* setting:\n" + format_validation_error(exc), EXIT_INVALID)


def print_json(data: Any) -> None:
    """Compact JSON on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


@app.command()
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
    from worker.commands import run_submit

    raw = _raw_submissions(provider, job_id, idempotency_key, integration_id, candidate_json, metadata_json, file)
    try:
        stored = run_submit(load_settings(), raw, label="line" if file else "")
    except InvalidSubmission as exc:
        fail(f"invalid submission, nothing was stored:\n{exc}", EXIT_INVALID)
    except IdempotencyConflict as exc:
        fail(f"{exc}; nothing was stored", EXIT_CONFLICT)
    for item in stored:
        print_json({"id": item.id, "status": item.status, "idempotency_key": item.idempotency_key})


def _raw_submissions(
    provider: Provider | None,
    job_id: str | None,
    idempotency_key: str | None,
    integration_id: str | None,
    candidate_json: str | None,
    metadata_json: str | None,
    file: str | None,
) -> list[Any]:
    from worker.enqueue import parse_json_lines

    if file is not None:
        if any(v is not None for v in (provider, job_id, idempotency_key, candidate_json)):
            fail("--file cannot be combined with the per-field options", EXIT_INVALID)
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
            return parse_json_lines(text)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", EXIT_INVALID)
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


@app.command()
def status(
    id_or_key: Annotated[str, typer.Argument(help="Submission id or idempotency key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one submission and its attempt history."""
    from worker.commands import get_status, render_status

    data = get_status(load_settings(), id_or_key)
    if data is None:
        fail(f"no submission with id or idempotency key {id_or_key!r}", EXIT_NOT_FOUND)
    if as_json:
        print_json(data)
    else:
        render_status(Console(), data)


@app.command("list")
def list_(
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    provider: Annotated[Provider | None, typer.Option(help="Only this provider.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List submissions, newest first."""
    from worker.commands import list_json, render_list

    rows = list_json(
        load_settings(),
        status=status.value if status else None,
        provider=provider.value if provider else None,
        limit=limit,
    )
    if as_json:
        print_json(rows)
    else:
        render_list(Console(), rows)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Threads (default APPLYQ_WORKER_CONCURRENCY).")] = None,
    dispatcher: Annotated[bool, typer.Option(help="Also run the dispatcher in this process.")] = True,
    hostname: Annotated[str, typer.Option(help="Celery node name.")] = "applyq@%h",
) -> None:
    """Run a Celery worker (thread pool, for I/O-bound calls) plus the dispatcher."""
    from worker.commands import run_worker

    run_worker(load_settings(), concurrency=concurrency, with_dispatcher=dispatcher, hostname=hostname)


@app.command("dispatcher")
def dispatcher_cmd() -> None:
    """Run only the dispatcher (publishes due submissions); safe to run several."""
    from worker.commands import run_dispatcher_process

    run_dispatcher_process(load_settings())


@app.command()
def health(
    max_idle_s: Annotated[float, typer.Option(help="Due work may wait this long without any consumption.")] = 120.0,
    max_dispatcher_silence_s: Annotated[float, typer.Option(help="Longest gap between dispatcher beats.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Exit 1 if due work is not being consumed or no dispatcher is running (for liveness probes)."""
    from worker.commands import get_health

    report = get_health(load_settings(), max_idle_s=max_idle_s, max_dispatcher_silence_s=max_dispatcher_silence_s)
    if as_json:
        print_json(report)
    else:
        err.print("healthy" if report["ok"] else "UNHEALTHY: " + "; ".join(report["problems"]))
    raise typer.Exit(0 if report["ok"] else 1)


@app.command()
def limits(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Traffic control per integration: rates, cooldowns after 429s, circuit breakers, requests in flight."""
    from worker.commands import get_limits, render_limits

    rows = get_limits(load_settings())
    if as_json:
        print_json(rows)
    else:
        render_limits(Console(), rows)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    from worker.db import migrate as do_migrate

    settings = load_settings()
    do_migrate(settings.database_url)
    err.print("database schema is up to date")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer.")] = 0.0,
    hang_s: Annotated[float, typer.Option(help="How long 'hang' scenarios hang.")] = 10.0,
    retry_after_s: Annotated[int, typer.Option(help="Retry-After sent on rate limits.")] = 1,
    rate_limit: Annotated[float | None, typer.Option(help="Enforced requests/s per integration.")] = None,
    celper_rate_limit: Annotated[int, typer.Option(help="Celper writes per 60 s in X-RateLimit-*.")] = 20,
) -> None:
    """Run the local provider sandbox (Kombo, StackOne and Celper wire formats, scripted by job id)."""
    from worker.sandbox import SandboxConfig, serve

    config = SandboxConfig(
        latency_ms=latency_ms,
        hang_s=hang_s,
        retry_after_s=retry_after_s,
        rate_limit_per_s=rate_limit,
        celper_rate_limit=celper_rate_limit,
    )
    serve(config, host, port)


@app.command()
def api(
    port: Annotated[int, typer.Option(help="TCP port.")] = 8800,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Serve the HTTP API (POST /submissions, GET /submissions/ID, /openapi.json); needs APPLYQ_API_TOKENS."""
    from worker.http_api import serve

    settings = load_settings()
    if not settings.api_tokens:
        fail("APPLYQ_API_TOKENS is empty: set at least one bearer token (comma-separated)", EXIT_INVALID)
    serve(settings, host, port)


@app.command()
def demo(
    timeout_s: Annotated[float, typer.Option(help="Give up waiting after this long.")] = 180.0,
) -> None:
    """Run ~90 scripted applications through a real worker and the sandbox; exit 0 if all went as scripted."""
    from worker.demo import run_demo

    raise typer.Exit(run_demo(load_settings(), timeout_s=timeout_s))


def _register_operator_commands() -> None:
    """``parked list``, ``show``, ``requeue``, ``cancel``, ``stats``, ``purge``, ``flower``, ``metrics``."""
    from worker.admin_cli import register

    register(app)


_register_operator_commands()


def main() -> None:
    """Console-script entry point."""
    app()
