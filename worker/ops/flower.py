"""``applyq flower``: Flower, the live console, on this app's broker and queue, behind HTTP basic auth.

Flower is a view of what workers do now (from Celery events, in memory); the database and the
``applyq`` admin commands are the record and the way to act on parked work. By default Flower runs
``--read_only``: its control buttons (revoke, pool resize, worker shutdown) are off unless asked for.
Its ``/metrics`` and ``/healthcheck`` are not behind the auth (Flower's design): keep the port internal.

Workers send Celery's task events only while a monitor asks for them (``enable_events``): Flower does, at
start and every 5 s (its ``--enable_events``, on by default), so a worker started later is seen too.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.config import Settings
from worker.errors import InvalidInput
from worker.logs import configure_logging
from worker.runtime.broker import resolve_broker_url
from worker.runtime.tasks import create_celery

__all__ = ["FlowerOptions", "flower_argv", "parse_basic_auth", "run_flower"]


@dataclass(frozen=True, slots=True)
class FlowerOptions:
    """How ``applyq flower`` was asked to run."""

    port: int = 5555
    address: str = "127.0.0.1"
    unsafe_no_auth: bool = False
    allow_control: bool = False
    url_prefix: str | None = None


def parse_basic_auth(value: str) -> str:
    """Check ``user:password`` (several separated by commas, as Flower takes them); return it unchanged."""
    pairs = value.split(",")
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not (sep and user.strip() and password):
            raise InvalidInput("APPLYQ_FLOWER_BASIC_AUTH must be user:password (several separated by commas)")
    return value


def flower_argv(settings: Settings, options: FlowerOptions) -> list[str]:
    """Flower's command line; refuses (``InvalidInput``) without credentials unless ``unsafe_no_auth``."""
    argv = ["flower", f"--port={options.port}", f"--address={options.address}", "--logging=none"]
    if settings.flower_basic_auth is not None:
        argv.append("--basic_auth=" + parse_basic_auth(settings.flower_basic_auth.get_secret_value()))
    elif not options.unsafe_no_auth:
        raise InvalidInput(
            "APPLYQ_FLOWER_BASIC_AUTH is not set: Flower shows every worker and task to whoever reaches it. "
            "Set it to user:password, or pass --unsafe-no-auth (then Flower's HTTP API stays disabled)"
        )
    if not options.allow_control:
        argv.append("--read_only")
    if options.url_prefix:
        argv.append(f"--url_prefix={options.url_prefix}")
    return argv


def run_flower(settings: Settings, options: FlowerOptions) -> int:
    """Run Flower in this process until SIGINT/SIGTERM (the password never appears in the process list)."""

    argv = flower_argv(settings, options)
    configure_logging(settings.log_level)
    app = create_celery(settings, resolve_broker_url(settings))
    # workers send task events only when asked (worker/runtime/tasks.py); Flower asks every 5 s, from 5 s
    # after it starts: asking now shows the tasks of the first seconds too
    app.control.enable_events()
    return int(app.start(argv) or 0)
