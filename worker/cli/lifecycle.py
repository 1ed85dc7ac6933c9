"""Starting and stopping local processes: each long-running command's one start line, and ``applyq stop``.

A long-running command registers itself (``worker/runtime/registry.py``) and prints one line on stdout saying
where it listens or whom it calls, before its logs (JSON, on stderr) begin: a person who started it in the
background with ``2> worker.log &`` still sees what it does. URLs are shown without passwords; keys never.
``applyq stop`` stops every process registered from this directory, then the embedded Redis.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from worker.cli.output import err, load_settings
from worker.config import EMBEDDED_BROKER, Settings
from worker.runtime import registry
from worker.runtime.broker import embedded_redis_running, stop_embedded_redis
from worker.states import Provider

__all__ = ["announce", "calling_line", "dispatcher_line", "shown_url", "stop"]


def shown_url(url: str) -> str:
    """``url`` as it may be printed: a password in it replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def announce(settings: Settings, command: str, line: str) -> None:
    """Register this process for ``applyq stop`` and print ``applyq COMMAND: LINE`` on stdout."""
    with contextlib.suppress(OSError), registry.locked(settings.embedded_redis_dir):
        registry.register(settings.embedded_redis_dir, command)  # best effort: a read-only directory is fine
    sys.stdout.write(f"applyq {command}: {line}\n")
    sys.stdout.flush()


def _broker(settings: Settings) -> str:
    if settings.broker_url == EMBEDDED_BROKER:
        return f"embedded Redis ({settings.embedded_redis_dir / 'redis.sock'})"
    return shown_url(settings.broker_url)


def calling_line(settings: Settings) -> str:
    """The worker's start line: each provider's base URL (and whether it has a key), the broker, the database."""
    urls = {
        Provider.KOMBO: (settings.kombo_base_url, settings.kombo_api_key),
        Provider.STACKONE: (settings.stackone_base_url, settings.stackone_api_key),
        Provider.CELPER: (settings.celper_base_url, settings.celper_api_key),
    }
    providers = ", ".join(
        f"{provider.value} at {shown_url(url)}" + ("" if key.get_secret_value() else " (no API key set)")
        for provider, (url, key) in urls.items()
    )
    return f"calling {providers}; broker {_broker(settings)}; database {shown_url(settings.database_url)}"


def dispatcher_line(settings: Settings) -> str:
    """The dispatcher's start line: the broker it publishes to and the database it reads."""
    return f"calling broker {_broker(settings)} with what is due in database {shown_url(settings.database_url)}"


def stop(
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Wait this long for each to finish its work, then kill it.")
    ] = 30.0,
) -> None:
    """Stop every applyq process started from this directory (worker, sandbox, api...), then the embedded Redis."""
    directory = load_settings().embedded_redis_dir
    redis_was_running = embedded_redis_running(directory)
    stopped, killed = registry.stop_all(directory, timeout_s)
    for entry in stopped:
        sys.stdout.write(f"stopped applyq {entry.command} (pid {entry.pid})\n")
    for entry in killed:
        sys.stdout.write(f"killed applyq {entry.command} (pid {entry.pid}): still running after {timeout_s:g} s\n")
    with registry.locked(directory):
        stop_embedded_redis(directory)  # if its last user did not already
    if redis_was_running:
        sys.stdout.write(f"stopped the embedded Redis ({directory / 'redis.sock'})\n")
    if not (stopped or killed or redis_was_running):
        err.print(f"nothing to stop: no applyq process registered in {directory}/ and no embedded Redis running")
