"""The example job board's stack, for its end-to-end tests over HTTP and in a browser.

Real processes: the board (``python -m examples.jobboard``), a worker whose webhooks go to the board, the
sandbox, PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.conftest import Stack, fresh_database, start_stack
from worker.local.processes import Proc, free_port, wait_http

__all__ = ["Board", "running_board"]


@dataclass(frozen=True, slots=True)
class Board:
    """The running board's base URL, and the stack behind it (for the operator's side: ``stack.cli``)."""

    url: str
    stack: Stack


@contextlib.contextmanager
def running_board(redis_url: str, tmp: Path) -> Iterator[Board]:
    """Start the board, a worker and the sandbox on a fresh database."""
    port = free_port()
    with fresh_database() as pg_url, start_stack(pg_url, redis_url, tmp, with_worker=False) as stack:
        stack.env.update(
            APPLYQ_WEBHOOK_URL=f"http://127.0.0.1:{port}/webhooks/applyq",
            APPLYQ_WEBHOOK_SECRET="whsec-jobboard-e2e",
            JOBBOARD_INTEGRATION_ID="greenhouse:jobboard-e2e",
        )
        _start_board(stack, port)
        stack.start_worker("jobboard-worker")
        yield Board(f"http://127.0.0.1:{port}", stack)


def _start_board(stack: Stack, port: int) -> None:
    log = stack.tmp / "jobboard.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "examples.jobboard", "--port", str(port)],
        cwd=REPO, env=stack.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    stack.procs.append(Proc(popen, log))
    wait_http(f"http://127.0.0.1:{port}/")
