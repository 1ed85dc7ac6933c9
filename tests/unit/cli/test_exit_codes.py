"""Every command's failure paths exit with the code docs/cli.md documents, with a message and no traceback.

Each command runs in-process through ``worker.cli.app.main`` (what the console script runs) on a fresh SQLite
database, with the in-memory broker; commands that would start a server are only given bad flags.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import submission_dict
from tests.unit.admin.helpers import make
from worker.cli.app import main

OK, ERROR, INVALID, CONFLICT, NOT_FOUND, REFUSED = 0, 1, 2, 3, 4, 5
#: Nothing listens on port 1: connecting is refused at once.
DEAD_POSTGRES = "postgresql+psycopg://applyq@127.0.0.1:1/applyq"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@dataclass(frozen=True)
class Case:
    """``applyq ARGS`` exits ``code`` and says ``says`` (on stderr for errors; the actions' results on stdout)."""

    args: tuple[str, ...]
    code: int
    says: str = ""
    stdin: bytes | None = None
    env: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return " ".join(self.args) or "(nothing)"


def case(*args: str, code: int, says: str = "", stdin: bytes | None = None, **env: str) -> Case:
    return Case(args, code, says, stdin, tuple(env.items()))


@pytest.fixture(autouse=True)
def cli_env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A migrated SQLite database and the in-memory broker; the CLI's logging and SIGTERM handler undone after."""
    monkeypatch.setenv("APPLYQ_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("APPLYQ_BROKER_URL", "memory://")
    monkeypatch.setenv("APPLYQ_EMBEDDED_REDIS_DIR", str(tmp_path / ".applyq"))
    for name in ("APPLYQ_FLOWER_BASIC_AUTH", "APPLYQ_API_TOKENS", "APPLYQ_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root, sigterm = logging.getLogger(), signal.getsignal(signal.SIGTERM)
    handlers, level = root.handlers[:], root.level
    yield
    signal.signal(signal.SIGTERM, sigterm)
    root.handlers[:] = handlers
    root.setLevel(level)


def applyq(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, c: Case) -> tuple[int, str, str]:
    """Run ``c`` as the console script does; its exit code, stdout and stderr."""
    for name, value in c.env:
        monkeypatch.setenv(name, value)
    if c.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(c.stdin)))
    capsys.readouterr()
    code = main(c.args)
    out, err = capsys.readouterr()
    return code, out, err


def check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, c: Case) -> None:
    code, out, err = applyq(capsys, monkeypatch, c)
    assert code == c.code, f"applyq {c}: exit {code}, expected {c.code}\n{out}{err}"
    assert "Traceback" not in out + err
    if c.code != OK:
        assert err.strip() or out.strip(), f"applyq {c}: exit {code} without a word"
    assert c.says in out + err, f"applyq {c}:\n{out}{err}"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "latin1.jsonl").write_bytes('{"candidate": {"first_name": "Jörg"}}\n'.encode("latin-1"))
    (tmp_path / "broken.jsonl").write_text('{"provider": "kombo",\n')
    (tmp_path / "ok.jsonl").write_text(json.dumps(submission_dict(idempotency_key="file-1")) + "\n")
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(submission_dict(idempotency_key="bom")).encode())
    return tmp_path


GLOBAL = [
    case(code=INVALID, says="Usage"),  # no command: the help, as a usage error
    case("no-such-command", code=INVALID, says="No such command"),
    case("--no-such-flag", code=INVALID, says="No such option"),
    case("parked", code=INVALID, says="Usage"),
    case("parked", "nope", code=INVALID, says="No such command"),
]

SUBMIT = [
    case("submit", code=INVALID, says="candidate"),
    case("submit", "--provider", "nope", code=INVALID, says="--provider"),
    case("submit", "--no-such-flag", code=INVALID, says="No such option"),
    case("submit", "--file", "latin1.jsonl", code=INVALID, says="latin1.jsonl is not UTF-8 text (byte 0xf6"),
    case("submit", "--file", "-", stdin=b'{"provider": "k\xf6mbo"}', code=INVALID, says="standard input is not UTF-8"),
    case("submit", "--file", "missing.jsonl", code=INVALID, says="cannot read missing.jsonl"),
    case("submit", "--file", ".", code=INVALID, says="cannot read ."),
    case("submit", "--file", "broken.jsonl", code=INVALID, says="nothing was stored"),
    case("submit", "--file", "ok.jsonl", "--provider", "kombo", code=INVALID, says="cannot be combined"),
    case("submit", "--candidate-json", "{", code=INVALID, says="--candidate-json: not valid JSON"),
    case("submit", "--file", "ok.jsonl", code=OK, says='"idempotency_key": "file-1"'),
    case("submit", "--file", "bom.jsonl", code=OK, says='"idempotency_key": "bom"'),
]

QUERIES = [
    case("status", code=INVALID, says="Missing argument"),
    case("status", "no-such-key", code=NOT_FOUND, says="no submission"),
    case("list", "--status", "nope", code=INVALID, says="--status"),
    case("list", "--provider", "nope", code=INVALID, says="--provider"),
    case("list", "--limit", "0", code=INVALID, says="--limit"),
    case("list", "--limit", "many", code=INVALID, says="--limit"),
    case("list", "--json", code=OK, says="[]"),
    case("show", code=INVALID, says="Missing argument"),
    case("show", "no-such-key", code=NOT_FOUND, says="no submission"),
    case("parked", "list", "--since", "99999999999d", code=INVALID, says="longer than 36500d"),
    case("parked", "list", "--since", "yesterday", code=INVALID, says="neither a duration"),
    case("parked", "list", "--limit", "0", code=INVALID, says="--limit"),
    case("parked", "list", "--json", code=OK, says="[]"),
    case("stats", "--since", "99999999999d", code=INVALID, says="longer than 36500d"),
    case("stats", "--since", "0001-01-01T00:00:00+14:00", code=INVALID, says="neither a duration"),
    case("stats", "--json", code=OK, says='"limits": null'),
]

ACTIONS = [
    case("requeue", code=INVALID, says="name submission ids"),
    case("requeue", "no-such-key", code=NOT_FOUND, says="no-such-key"),
    case("requeue", "--all", code=INVALID, says="needs a filter"),
    case("requeue", "--all", "--since", "99999999999d", "--yes", code=INVALID, says="longer than 36500d"),
    case("requeue", "no-such-key", "--set", "nonsense", code=INVALID, says="FIELD=VALUE"),
    case("cancel", "no-such-key", code=INVALID, says="--reason"),
    case("cancel", "no-such-key", "--reason", "withdrawn", code=NOT_FOUND, says="no-such-key"),
    case("resume", code=INVALID, says="--provider"),
    case("resume", "--provider", "nope", code=INVALID, says="--provider"),
    case("resume", "--provider", "kombo", code=INVALID, says="APPLYQ_BROKER_URL"),
    case("purge", code=INVALID, says="exactly one of"),
    case("purge", "--older-than", "90d", "--email", "a@example.com", code=INVALID, says="exactly one of"),
    case("purge", "--older-than", "99999999999d", code=INVALID, says="longer than 36500d"),
    case("purge", "--older-than", "1e5d", code=INVALID, says="not a duration"),
    case("purge", "--older-than", "90d", "--dry-run", code=OK),
    case("prune", code=INVALID, says="--older-than"),
    case("prune", "--older-than", "1e5d", code=INVALID, says="not a duration"),
    case("prune", "--older-than", "90d", "--dry-run", code=OK, says="would remove the history of 0 submissions"),
    case("prune", "--older-than", "90d", code=OK, says="removed the history of 0 submissions"),
]

PROCESSES = [
    case("health", "--max-idle-s", "-1", code=INVALID, says="--max-idle-s"),
    case("health", code=ERROR, says="UNHEALTHY"),  # no dispatcher beats: the documented 1
    case("limits", code=INVALID, says="APPLYQ_BROKER_URL"),
    case("limits", code=ERROR, says="Redis (APPLYQ_BROKER_URL) cannot be reached", APPLYQ_BROKER_URL=DEAD_REDIS),
    case("migrate", code=OK, says="up to date"),
    case("migrate", code=ERROR, says="the database cannot be used", APPLYQ_DATABASE_URL=DEAD_POSTGRES),
    case("migrate", code=INVALID, says="APPLYQ_DATABASE_URL", APPLYQ_DATABASE_URL="no-such-dialect://x"),
    case("status", "x", code=ERROR, says="the database cannot be used", APPLYQ_DATABASE_URL=DEAD_POSTGRES),
    case("status", "x", code=INVALID, says="APPLYQ_DATABASE_URL", APPLYQ_DATABASE_URL="not a url"),
    case("list", code=INVALID, says="invalid APPLYQ_* setting", APPLYQ_BATCH_SIZE="many"),
    case("worker", "--concurrency", "0", code=INVALID, says="--concurrency"),
    case("dispatcher", "--no-such-flag", code=INVALID, says="No such option"),
    case("sandbox", "--port", "0", code=INVALID, says="--port"),
    case("sandbox", "--port", "70000", code=INVALID, says="--port"),
    case("sandbox", "--latency-ms", "-1", code=INVALID, says="--latency-ms"),
    case("api", "--port", "70000", code=INVALID, says="--port"),
    case("api", code=INVALID, says="APPLYQ_API_TOKENS"),
    case("demo", "--timeout-s", "-1", code=INVALID, says="--timeout-s"),
    case("flower", code=INVALID, says="APPLYQ_FLOWER_BASIC_AUTH"),
    case("flower", "--port", "0", code=INVALID, says="--port"),
    case("metrics", "--port", "70000", code=INVALID, says="--port"),
]


@pytest.mark.parametrize("c", GLOBAL, ids=str)
def test_usage(c: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    check(capsys, monkeypatch, c)


@pytest.mark.parametrize("c", SUBMIT, ids=str)
def test_submit(c: Case, files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    check(capsys, monkeypatch, c)


@pytest.mark.parametrize("c", QUERIES, ids=str)
def test_queries(c: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    check(capsys, monkeypatch, c)


@pytest.mark.parametrize("c", ACTIONS, ids=str)
def test_operator_actions(c: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    check(capsys, monkeypatch, c)


@pytest.mark.parametrize("c", PROCESSES, ids=str)
def test_processes_and_their_surroundings(
    c: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    check(capsys, monkeypatch, c)


def test_a_key_reused_with_another_payload_is_3_and_a_refused_action_is_5(
    sessions: sessionmaker[Session], files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    check(capsys, monkeypatch, case("submit", "--file", "ok.jsonl", code=OK))
    (files / "changed.jsonl").write_text(json.dumps(submission_dict(idempotency_key="file-1", job_id="other")))
    check(capsys, monkeypatch, case("submit", "--file", "changed.jsonl", code=CONFLICT, says="file-1"))
    succeeded = make(sessions, "succeeded")
    check(capsys, monkeypatch, case("requeue", succeeded, code=REFUSED, says="not parked"))
    check(capsys, monkeypatch, case("cancel", succeeded, "--reason", "withdrawn", code=REFUSED, says="refused"))
