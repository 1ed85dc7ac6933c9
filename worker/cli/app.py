"""The ``applyq`` command: one typer app, its commands grouped by who runs them.

* the job board: ``submit``, ``status``, ``list`` (``worker/cli/submit.py``);
* the processes: ``worker``, ``dispatcher``, ``api``, ``sandbox``, ``demo``, ``flower``, ``metrics``,
  ``migrate`` (``worker/cli/run.py``), and ``stop`` (``worker/cli/lifecycle.py``);
* the operator: ``parked list``, ``show``, ``requeue``, ``cancel``, ``stats``, ``purge``, ``prune``, ``health``,
  ``limits`` (``worker/cli/operate.py``).

Exit codes are defined once, in ``worker/cli/output.py``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer

from worker.cli import lifecycle, operate, run, submit
from worker.cli.helptext import Command, Group
from worker.cli.output import err, service_failure

__all__ = ["app", "main"]

app = typer.Typer(
    name="applyq",
    cls=Group,
    help="Deliver job applications to ATS providers, reliably. See `applyq COMMAND --help`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("submit", submit.submit),
    ("status", submit.status),
    ("list", submit.list_),
    ("worker", run.worker),
    ("dispatcher", run.dispatcher),
    ("health", operate.health),
    ("limits", operate.limits),
    ("migrate", run.migrate),
    ("sandbox", run.sandbox),
    ("api", run.api),
    ("demo", run.demo),
    ("show", operate.show),
    ("requeue", operate.requeue),
    ("cancel", operate.cancel),
    ("resume", operate.resume),
    ("stats", operate.stats),
    ("purge", operate.purge),
    ("prune", operate.prune),
    ("flower", run.flower),
    ("metrics", run.metrics),
    ("stop", lifecycle.stop),
]

for _name, _command in _COMMANDS:
    app.command(_name, cls=Command)(_command)
app.add_typer(operate.parked_app, name="parked")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``applyq`` command (``argv``, default the process's) and return its exit code.

    The console script and ``python -m worker`` exit with it. Typer exits 2 on a bad flag or argument; a
    command exits through ``worker/cli/output.py``; a database or Redis that cannot be reached is one line and
    exit 1 here, never a traceback (a bug keeps its traceback).

    SIGTERM (``applyq stop``, ``kill``, a container stopping) ends the command as a normal exit would, so that
    it leaves the process registry and, as the embedded Redis's last user, stops it (``atexit`` runs then,
    not on Python's default SIGTERM). Celery and uvicorn install their own handlers, which also exit cleanly.
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        app(args=None if argv is None else list(argv))
    except SystemExit as exc:
        return _exit_code(exc.code)
    except Exception as exc:
        failure = service_failure(exc)
        if failure is None:
            raise
        err.print(f"[red]error:[/red] {failure[0]}", highlight=False, soft_wrap=True)
        return failure[1]
    return 0


def _exit_code(code: object) -> int:
    """``SystemExit.code`` as a number: None is 0; a message is printed and is 1, as Python itself does."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.print(str(code), highlight=False, markup=False)
    return 1
