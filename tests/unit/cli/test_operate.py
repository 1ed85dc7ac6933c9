"""The operator commands as a user runs them (in-process, SQLite): output, --json and exit codes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.unit.admin.helpers import make, row
from worker.cli.app import app


@pytest.fixture(autouse=True)
def env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads the database URL from the environment; its JSON logging is undone afterwards."""
    monkeypatch.setenv("APPLYQ_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("APPLYQ_BROKER_URL", "memory://")
    monkeypatch.delenv("APPLYQ_FLOWER_BASIC_AUTH", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def applyq(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_parked_list_shows_reason_remediation_and_log_url(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, integration_id="greenhouse:abc123")
    result = applyq("parked", "list", "--json", "--code", "REMOTE.INPUT_INVALID")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert (item["id"], item["reason"], item["log_url"]) == (submission_id, "invalid_input", "https://logs.example/1")
    assert item["remediation"] == "Fix the payload"
    assert "candidate" not in item and "email" not in result.stdout
    table = applyq("parked", "list")
    assert submission_id[:8] in table.stdout and "Fix the payload" in table.stdout and "1 parked" in table.stdout
    assert json.loads(applyq("parked", "list", "--json", "--provider", "celper").stdout) == []


def test_requeue_with_an_edit_then_show_lists_it_with_its_actor(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions)
    result = applyq("requeue", submission_id, "--set", "candidate.email=fixed@example.com", "--actor", "carol",
                    "--note", "typo", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"id": submission_id, "result": "requeued", "status": "parked", "message": ""}]
    shown = applyq("show", submission_id)
    assert shown.exit_code == 0
    assert "fixed@example.com" in shown.stdout
    assert "carol" in shown.stdout and "requeue" in shown.stdout and "candidate.email" in shown.stdout
    data = json.loads(applyq("show", submission_id, "--json").stdout)
    assert [(e["actor"], e["action"]) for e in data["audit"]] == [("carol", "requeue")]


def test_requeue_exit_codes(sessions: sessionmaker[Session]) -> None:
    parked_id, succeeded_id = make(sessions), make(sessions, "succeeded")
    refused = applyq("requeue", succeeded_id, parked_id)
    assert refused.exit_code == 5
    assert f"{succeeded_id} (succeeded): is succeeded, not parked" in refused.stdout
    assert row(sessions, parked_id).status == "queued"  # the others named are still done
    assert applyq("requeue", "no-such-id").exit_code == 4
    invalid = applyq("requeue", make(sessions), "--set", "candidate.email=nope")
    assert invalid.exit_code == 2 and "candidate.email" in invalid.stderr
    assert applyq("requeue").exit_code == 2
    assert applyq("requeue", parked_id, "--code", "X").exit_code == 2
    assert applyq("requeue", "--all", "--set", "job_id=x").exit_code == 2
    assert applyq("requeue", parked_id, "--set", "provider=celper").exit_code == 2


def test_bulk_requeue_dry_run_then_for_real(sessions: sessionmaker[Session]) -> None:
    ids = [make(sessions, code="INTEGRATION.PERMISSION_MISSING", integration_id="g:1") for _ in range(3)]
    other = make(sessions, code="INTEGRATION.PERMISSION_MISSING", integration_id="g:2")
    args = ("requeue", "--all", "--code", "INTEGRATION.PERMISSION_MISSING", "--integration", "g:1")
    dry = applyq(*args, "--dry-run")
    assert dry.exit_code == 0 and "would requeue 3" in dry.stdout
    assert {row(sessions, i).status for i in ids} == {"parked"}
    unconfirmed = applyq(*args, "--actor", "ops")  # not a terminal, no --yes: only says what it would do
    assert unconfirmed.exit_code == 0 and "would requeue 3" in unconfirmed.stdout and "--yes" in unconfirmed.stderr
    assert {row(sessions, i).status for i in ids} == {"parked"}
    done = applyq(*args, "--actor", "ops", "--yes")
    assert done.exit_code == 0 and "requeued 3" in done.stdout
    assert {row(sessions, i).status for i in ids} == {"queued"}
    assert row(sessions, other).status == "parked"
    assert "nothing to do" in applyq(*args, "--yes").stdout


def test_requeue_all_without_a_filter_is_refused(sessions: sessionmaker[Session]) -> None:
    parked = make(sessions)
    refused = applyq("requeue", "--all", "--yes")
    assert refused.exit_code == 2 and "needs a filter" in refused.stderr
    assert row(sessions, parked).status == "parked"


def test_ids_are_whole_in_piped_tables_and_a_unique_prefix_names_one(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions)
    listed = applyq("list")
    assert submission_id in listed.stdout  # not cut at 80 columns
    status = applyq("status", submission_id[:8], "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["id"] == submission_id
    assert applyq("show", submission_id[:8], "--json").exit_code == 0


def test_an_ambiguous_prefix_exits_2_listing_the_matches(sessions: sessionmaker[Session]) -> None:
    import sqlalchemy as sa

    from worker.db.models import Submission

    first, second = "0916c50f-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "0916c50f-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
    for new_id in (first, second):
        made = make(sessions, attempts=0)
        with sessions() as session:
            session.execute(sa.update(Submission).where(Submission.id == made).values(id=new_id))
            session.commit()
    ambiguous = applyq("status", "0916c50f")
    assert ambiguous.exit_code == 2 and first in ambiguous.stderr and second in ambiguous.stderr


def test_show_includes_the_providers_details(sessions: sessionmaker[Session]) -> None:
    import sqlalchemy as sa

    from worker.db.models import Attempt

    submission_id = make(sessions)
    details = {"provider_errors": [{"status": 422, "raw": {"message": "The job is closed."}}]}
    with sessions() as session:
        session.execute(sa.update(Attempt).where(Attempt.submission_id == submission_id).values(details=details))
        session.commit()
    data = json.loads(applyq("show", submission_id, "--json").stdout)
    assert data["attempts"][0]["details"] == details
    shown = applyq("show", submission_id)
    assert "The job is closed." in shown.stdout
    status = json.loads(applyq("status", submission_id, "--json").stdout)
    assert "details" not in status["attempts"][0]  # candidate data and provider echoes: show only


def test_cancel_needs_a_reason_and_refuses_final_work(sessions: sessionmaker[Session]) -> None:
    queued, done = make(sessions, "queued"), make(sessions, "succeeded")
    assert applyq("cancel", queued).exit_code == 2
    result = applyq("cancel", queued, done, "--reason", "withdrawn", "--json")
    assert result.exit_code == 5
    assert [r["result"] for r in json.loads(result.stdout)] == ["cancelled", "refused"]


def test_stats_as_json_and_as_tables(sessions: sessionmaker[Session]) -> None:
    make(sessions, "succeeded", code=None)
    make(sessions)
    data = json.loads(applyq("stats", "--json").stdout)
    assert data["by_status"] == {"succeeded": 1, "parked": 1}
    text = applyq("stats", "--since", "3650d").stdout
    assert "time to final state" in text and "2 submissions" in text
    assert "timings of the latest 2 to reach a final state (--latest 10000)" in text
    assert applyq("stats", "--since", "last week").exit_code == 2


def test_purge_takes_exactly_one_criterion(sessions: sessionmaker[Session]) -> None:
    submission_id = make(sessions, "succeeded", candidate={"first_name": "A", "last_name": "B", "email": "a@b.org"})
    assert applyq("purge").exit_code == 2
    assert applyq("purge", "--older-than", "1d", "--email", "a@b.org").exit_code == 2
    assert applyq("purge", "--older-than", "soon").exit_code == 2
    result = applyq("purge", "--email", "a@b.org", "--json")
    assert result.exit_code == 0
    assert {k: v for k, v in json.loads(result.stdout).items() if k != "scope"} == {
        "purged": [submission_id], "cancelled": [], "skipped": [], "dry_run": False,
    }  # fmt: skip
    assert row(sessions, submission_id).payload["candidate"] is None


def test_a_purge_by_age_covers_ended_submissions_and_its_dry_run_says_so(sessions: sessionmaker[Session]) -> None:
    make(sessions, "succeeded", code=None)
    make(sessions, "parked")  # could still be delivered after a fix: not old, waiting
    text = applyq("purge", "--older-than", "0d", "--dry-run").stdout
    assert text.startswith("would purge 1 (succeeded, terminal or cancelled, unchanged since "), text
    assert "; of them would cancel 0 that could still be delivered; skipped 0" in text
    data = json.loads(applyq("purge", "--older-than", "0d", "--include-parked", "--dry-run", "--json").stdout)
    assert (len(data["purged"]), len(data["cancelled"]), data["dry_run"]) == (2, 1, True)
    assert "or parked (cancelled by the purge)" in data["scope"]
    assert applyq("purge", "--email", "a@b.org", "--include-parked").exit_code == 2


def test_flower_will_not_start_without_credentials() -> None:
    result = applyq("flower", "--port", "5599")
    assert result.exit_code == 2
    assert "APPLYQ_FLOWER_BASIC_AUTH is not set" in result.stderr


def test_show_of_an_unknown_id_exits_4() -> None:
    assert applyq("show", "nope").exit_code == 4
