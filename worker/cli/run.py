"""The long-running commands: worker, dispatcher, api, sandbox, demo, flower and metrics; and migrate.

Each says where it listens or whom it calls in one line on stdout as it starts (``worker/cli/lifecycle.py``).
Each imports what it serves inside the function: Celery, FastAPI, uvicorn and Flower take a second or more
to import, and ``applyq status`` or ``applyq --help`` should not pay for them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.lifecycle import announce, calling_line, dispatcher_line
from worker.cli.output import EXIT_INVALID, err, fail, load_settings, parsed, sessions
from worker.clock import utcnow
from worker.db.engine import migrate as upgrade_schema
from worker.logs import configure_logging
from worker.runtime.broker import resolve_broker_url
from worker.traffic.limiter import RedisLimiter, redis_client

__all__ = ["api", "demo", "dispatcher", "flower", "metrics", "migrate", "sandbox", "worker"]

#: A TCP port to listen on; outside 1-65535 is a usage error (exit 2), not a traceback from the server.
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]

#: The sandbox's default webhook secrets (``SandboxConfig``'s), repeated here so ``--help`` needs no Starlette.
SANDBOX_KOMBO_WEBHOOK_SECRET = "sandbox-kombo-webhook-secret"
SANDBOX_STACKONE_WEBHOOK_SECRET = "sandbox-stackone-webhook-secret"


def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Threads (default APPLYQ_WORKER_CONCURRENCY).")] = None,
    dispatcher: Annotated[bool, typer.Option(help="Also run the dispatcher in this process.")] = True,
    hostname: Annotated[str, typer.Option(help="Celery node name.")] = "applyq@%h",
) -> None:
    """Run a Celery worker (thread pool, for I/O-bound calls) plus the dispatcher."""
    from worker.runtime.process import run_worker  # local: Celery is slow to import

    settings = load_settings()
    announce(settings, "worker", calling_line(settings))
    run_worker(settings, concurrency=concurrency, with_dispatcher=dispatcher, hostname=hostname)


def dispatcher() -> None:
    """Run only the dispatcher (publishes due submissions); safe to run several."""
    from worker.runtime.process import run_dispatcher_process  # local: Celery is slow to import

    settings = load_settings()
    announce(settings, "dispatcher", dispatcher_line(settings))
    run_dispatcher_process(settings)


def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    settings = load_settings()
    upgrade_schema(settings.database_url, pooler=settings.database_pooler)
    err.print("database schema is up to date")


def sandbox(
    port: Port = 8700,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(min=0, help="Delay before every answer.")] = 0.0,
    hang_s: Annotated[float, typer.Option(min=0, help="How long 'hang' scenarios hang.")] = 10.0,
    retry_after_s: Annotated[int, typer.Option(min=0, help="Retry-After sent on rate limits.")] = 1,
    rate_limit: Annotated[
        float | None, typer.Option(help="Enforced requests/s per vendor scope (Kombo integration, StackOne key).")
    ] = None,
    celper_rate_limit: Annotated[int, typer.Option(min=1, help="Celper writes per 60 s in X-RateLimit-*.")] = 20,
    kombo_events_url: Annotated[
        str | None, typer.Option(help="Where Kombo webhooks go when told to (applyq api's /vendor-events/kombo).")
    ] = None,
    kombo_webhook_secret: Annotated[
        str, typer.Option(help="The Kombo Webhook Secret they are signed with.")
    ] = SANDBOX_KOMBO_WEBHOOK_SECRET,
    stackone_events_url: Annotated[
        str | None, typer.Option(help="Where StackOne account events go (applyq api's /vendor-events/stackone).")
    ] = None,
    stackone_webhook_secret: Annotated[
        str, typer.Option(help="The StackOne signing secret they are signed with.")
    ] = SANDBOX_STACKONE_WEBHOOK_SECRET,
) -> None:
    """Run the local provider sandbox (Kombo, StackOne and Celper wire formats, scripted by job id)."""
    from worker.local.sandbox import SandboxConfig, serve  # local: Starlette and uvicorn are slow to import

    config = SandboxConfig(
        latency_ms=latency_ms,
        hang_s=hang_s,
        retry_after_s=retry_after_s,
        rate_limit_per_s=rate_limit,
        celper_rate_limit=celper_rate_limit,
        kombo_events_url=kombo_events_url,
        kombo_webhook_secret=kombo_webhook_secret,
        stackone_events_url=stackone_events_url,
        stackone_webhook_secret=stackone_webhook_secret,
    )
    url = f"http://{host}:{port}"
    announce(load_settings(), "sandbox", f"listening on {url} (Kombo {url}, StackOne {url}, Celper {url}/v1)")
    serve(config, host, port)


def api(
    port: Port = 8800,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Serve the HTTP API (POST /submissions, GET /submissions/ID, /openapi.json); needs APPLYQ_API_TOKENS."""
    from worker.intake.http import serve  # local: FastAPI is slow to import

    settings = load_settings()
    if not settings.api_tokens:
        fail("APPLYQ_API_TOKENS is empty: set at least one bearer token (comma-separated)", EXIT_INVALID)
    announce(settings, "api", f"listening on http://{host}:{port} (POST /submissions, GET /openapi.json)")
    serve(settings, host, port)


def demo(
    timeout_s: Annotated[float, typer.Option(min=0, help="Give up waiting after this long.")] = 180.0,
) -> None:
    """Run ~90 scripted applications through a real worker and the sandbox; exit 0 if all went as scripted."""
    from worker.local.demo import run_demo  # local: the demo starts Celery and the sandbox

    raise typer.Exit(run_demo(load_settings(), timeout_s=timeout_s))


def flower(
    port: Port = 5555,
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
    from worker.ops.flower import FlowerOptions, flower_argv, run_flower  # local: Flower is slow to import

    settings = load_settings()
    options = FlowerOptions(port, address, unsafe_no_auth, allow_control, url_prefix)
    parsed(lambda: flower_argv(settings, options))
    if unsafe_no_auth and settings.flower_basic_auth is None:
        err.print("[yellow]warning:[/yellow] Flower runs without authentication (--unsafe-no-auth)")
    announce(settings, "flower", f"listening on http://{address}:{port}/{(url_prefix or '').strip('/')}")
    raise typer.Exit(run_flower(settings, options))


def metrics(
    port: Port = 9808,
    address: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container).")] = "127.0.0.1",
) -> None:
    """Serve Prometheus metrics: outcomes, parked and due backlogs (database) and traffic control (Redis)."""
    from worker.ops.metrics import build_registry, serve_metrics  # local: prometheus_client's server
    from worker.ops.traffic_metrics import TrafficCollector

    settings = load_settings()
    configure_logging(settings.log_level)
    limiter = RedisLimiter(redis_client(resolve_broker_url(settings))) if settings.traffic_control else None
    extra = [TrafficCollector(limiter)] if limiter else []
    announce(settings, "metrics", f"listening on http://{address}:{port}/metrics")
    serve_metrics(build_registry(sessions(settings), utcnow, extra), address=address, port=port)
