"""A new user's first hour: every command of docs/try-it-by-hand.md, run as written, then nothing left running.

The commands come from the page's ``sh`` blocks, so the page and this test cannot drift apart: a line ending
in ``&`` starts in the background (as in the user's terminal), ``.`` and ``export`` lines carry over to the
commands after them, and each other command runs in a shell of its own and must exit 0. What the page shows
in its ``text`` blocks (start lines, the parked submission's provider reason, the list, what ``applyq stop``
prints) is compared with what the commands really print. A command that reads a submission (``list``,
``show``, ``status``) runs once the submissions have settled, as a person reading the page waits "a moment".

Real processes throughout: the sandbox, the worker, the embedded Redis and SQLite in a temporary directory
(``.venv`` is linked there). Running ``make demo`` from a fresh clone is checked separately.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from tests.conftest import REPO
from worker.db.models import Submission
from worker.states import FINAL_STATUSES

pytestmark = pytest.mark.e2e

DOC = REPO / "docs" / "try-it-by-hand.md"
FINAL = {status.value for status in FINAL_STATUSES}
READS = re.compile(r"^applyq (list|show|status|parked)\b")


def blocks(text: str, language: str) -> list[str]:
    """The page's fenced blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def commands(text: str) -> list[str]:
    """Every command of the ``sh`` blocks, continuation lines joined, comments and blank lines left out."""
    found = []
    for block in blocks(text, "sh"):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(line.strip())
    return found


def shown_after(text: str, command: str) -> list[str]:
    """The lines of the ``text`` block that follows the ``sh`` block running ``command`` (what it prints)."""
    in_block, between = r"(?:.*\n)*?", r"(?:(?!```sh).*\n)*?"  # the text block before any other sh block
    pattern = rf"^```sh\n{in_block}{re.escape(command)}\n{in_block}```\n{between}```text\n({in_block})```"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"the page shows no output for {command!r}"
    return [line for line in match.group(1).splitlines() if line.strip() and line.strip() != "…"]


def words(line: str) -> str:
    return " ".join(line.split())


@dataclass
class Terminal:
    """One terminal, as the page's reader has: state from ``.`` and ``export`` lines, jobs in the background."""

    cwd: Path
    env: dict[str, str]
    preamble: list[str] = field(default_factory=list)
    jobs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _script(self, command: str) -> str:
        return "\n".join(["set -e", *self.preamble, command])

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", "-c", self._script(command)], cwd=self.cwd, env=self.env, text=True,
                                capture_output=True, timeout=120, check=False)  # fmt: skip
        assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
        if command.startswith((". ", "source ", "export ")):
            self.preamble.append(command)
        return result

    def start(self, command: str) -> None:
        """``COMMAND &``: its stdout goes where the test can read it (the terminal, for a person)."""
        name = command.split()[1]
        with (self.cwd / f"{name}.stdout").open("wb") as stdout:
            self.jobs[name] = subprocess.Popen(  # exec: the job's pid is the applyq process's own
                ["bash", "-c", self._script("exec " + command.removesuffix("&").strip())],
                cwd=self.cwd, env=self.env, stdout=stdout, start_new_session=True,
            )  # fmt: skip

    def stdout(self, name: str) -> str:
        return (self.cwd / f"{name}.stdout").read_text()

    def wait_for_line(self, name: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while "\n" not in self.stdout(name):
            assert self.jobs[name].poll() is None, f"{name} exited: see {self.cwd}/.applyq/{name}.log"
            assert time.monotonic() < deadline, f"{name} printed nothing in {timeout_s} s"
            time.sleep(0.1)
        return self.stdout(name).splitlines()[0]


def settled(database: Path, timeout_s: float = 60.0) -> None:
    """Wait until every submission is in a final status."""
    engine = sa.create_engine(f"sqlite:///{database}")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with engine.connect() as conn:
                statuses = conn.scalars(sa.select(Submission.status)).all()
            if statuses and set(statuses) <= FINAL:
                return
            assert time.monotonic() < deadline, f"not settled after {timeout_s} s: {statuses}"
            time.sleep(0.2)
    finally:
        engine.dispose()


def table_rows(output: str) -> set[tuple[str, ...]]:
    """The cells of a rich table's body rows (``│ a │ b │``), without the first and last (id, time) columns."""
    return {tuple(cell.strip() for cell in line.split("│")[2:-2]) for line in output.splitlines() if "│" in line}


def left_behind(directory: Path) -> list[str]:
    """Processes still running from ``directory`` or serving its embedded Redis (zombies have ended)."""
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        if process.info["pid"] == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        command = " ".join(process.info["cmdline"] or [])
        if process.info["cwd"] == str(directory) or str(directory) in command:
            found.append(f"{process.info['pid']}: {command}")
    return found


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    """A terminal in an empty directory that has the repository's ``.venv``, and no APPLYQ_* of the caller's."""
    tmp_path = tmp_path.resolve()
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLYQ_") and k != "VIRTUAL_ENV"}
    shell = Terminal(tmp_path, env)
    yield shell
    for job in shell.jobs.values():  # only after a failure: leave nothing running
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    for line in left_behind(tmp_path):
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


@pytest.mark.timeout(600)
def test_the_first_hour_as_the_page_tells_it(terminal: Terminal) -> None:
    page = DOC.read_text(encoding="utf-8")
    steps = commands(page)
    port = int(re.search(r"applyq sandbox --port (\d+)", page).group(1))  # type: ignore[union-attr]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port}, the page's, is taken: stop what uses it"
    outputs: dict[str, str] = {}

    for command in steps:
        if command.endswith("&"):
            terminal.start(command)
            terminal.wait_for_line(command.split()[1])
            continue
        if READS.match(command):
            settled(terminal.cwd / "applyq.db")
        outputs[command] = terminal.run(command).stdout

    # each long-running command printed one line, the page's, on stdout
    started = shown_after(page, "applyq worker 2> .applyq/worker.log &")
    for name in ("sandbox", "worker"):
        own = [line for line in terminal.stdout(name).splitlines() if line.startswith("applyq ")]
        assert own == [line for line in started if line.startswith(f"applyq {name}:")]

    # the parked StackOne submission, in the list as on the page, and the provider's reason in `show`
    assert table_rows(outputs["applyq list"]) == table_rows("\n".join(shown_after(page, "applyq list")))
    shown = words(outputs["applyq show try-stackone-1"])
    for line in shown_after(page, "applyq show try-stackone-1"):
        assert words(line) in shown
    assert "candidate.email is not valid." in shown

    # fixed, requeued, succeeded
    [requeue] = [c for c in steps if c.startswith("applyq requeue try-stackone-1 --set candidate.email=")]
    assert "requeued" in outputs[requeue]
    settled(terminal.cwd / "applyq.db")
    final = terminal.run("applyq status try-stackone-1 --json").stdout
    assert '"status": "succeeded"' in final and '"outcome_reason": "created"' in final

    # `applyq stop` said what the page says, and nothing is left
    pids = {name: job.pid for name, job in terminal.jobs.items()}
    expected = {
        re.sub(r"pid \d+", f"pid {pids.get(line.split()[2], 0)}", line) for line in shown_after(page, "applyq stop")
    }
    assert set(outputs["applyq stop"].splitlines()) == expected
    for job in terminal.jobs.values():
        assert job.wait(timeout=30) in (0, 128 + signal.SIGTERM)  # each exited; none was killed
    assert left_behind(terminal.cwd) == []
    assert list((terminal.cwd / ".applyq" / "procs").iterdir()) == []
