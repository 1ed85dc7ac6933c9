"""Operating applyq end to end: a parked submission from the parked list to a fix that succeeds."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Stack, kombo_submission

pytestmark = pytest.mark.e2e


def cli_json(stack: Stack, *args: str) -> Any:
    result = stack.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_parked_submission_is_listed_fixed_with_requeue_set_and_succeeds(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    bad, good = f"ada.{tag}@invalid.example", f"ada.{tag}@example.com"
    payload = kombo_submission("ok--job", candidate={"first_name": "Ada", "last_name": "Lovelace", "email": bad})
    submission_id = stack.submit(payload)
    stack.wait_final(submission_id)

    # the alert's first step: what is parked, why, what to do, where the provider's log is
    listed = cli_json(
        stack, "parked", "list", "--code", "REMOTE.INPUT_INVALID", "--integration", payload["integration_id"]
    )
    [item] = [x for x in listed if x["id"] == submission_id]
    assert (item["reason"], item["attempt_count"]) == ("invalid_input", 1)
    assert item["remediation"] and item["log_url"]
    assert bad not in json.dumps(listed)  # candidate data only in `show`
    assert submission_id in stack.cli("parked", "list", "--integration", payload["integration_id"]).stdout

    # the fix
    result = stack.cli("requeue", submission_id, "--set", f"candidate.email={good}", "--actor", "e2e-operator",
                       "--note", "typo in the email domain")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"requeued       {submission_id}" in result.stdout
    [log_line] = [json.loads(x) for x in result.stderr.splitlines() if '"admin requeue"' in x]
    assert (log_line["actor"], log_line["fields"]) == ("e2e-operator", ["candidate.email"])
    assert good not in result.stderr and bad not in result.stderr

    stack.wait_final(submission_id)
    status = stack.status(submission_id)
    assert status["status"] == "succeeded"
    assert [a["decision"] for a in status["attempts"]] == ["park", "success"]
    first, second = stack.sandbox_requests(payload["job_id"])
    assert (first["body"]["candidate"]["email_address"], second["body"]["candidate"]["email_address"]) == (bad, good)
    # the worker logged each state change: park at warning, success at info, with ids and code only
    worker_logs = "".join(proc.output() for proc in stack.procs)
    lines = [json.loads(x) for x in worker_logs.splitlines() if submission_id in x and x.startswith("{")]
    changes = [(x["level"], x.get("code"), x["status"]) for x in lines if "status" in x]
    assert changes == [("WARNING", "REMOTE.INPUT_INVALID", "parked"), ("INFO", None, "succeeded")]
    assert bad not in worker_logs and good not in worker_logs

    # `show` lists the requeue with its actor
    shown = cli_json(stack, "show", submission_id)
    [event] = shown["audit"]
    assert (event["actor"], event["action"], event["note"]) == ("e2e-operator", "requeue", "typo in the email domain")
    assert event["changes"]["fields"] == ["candidate.email"] and good not in json.dumps(event)
    text = stack.cli("show", submission_id).stdout
    assert "e2e-operator" in text and "requeue" in text and good in text

    # not parked any more: refused, exit 5
    again = stack.cli("requeue", submission_id)
    assert again.returncode == 5 and "is succeeded, not parked" in again.stdout

    # a data-protection request for the old address finds it through the provider's message (PostgreSQL JSON)
    purged = cli_json(stack, "purge", "--email", bad.upper(), "--actor", "dpo")
    assert purged["purged"] == [submission_id]
    after = cli_json(stack, "show", submission_id)
    assert after["payload"]["candidate"] is None and after["status"] == "succeeded"
    assert bad not in json.dumps(after) and good not in json.dumps(after)
    assert [e["action"] for e in after["audit"]] == ["requeue", "purge"]


def test_bulk_requeue_of_one_integration_after_the_customer_reauthenticated(stack: Stack) -> None:
    integration = f"greenhouse:reauth-{uuid.uuid4().hex[:8]}"
    ids = [stack.submit(kombo_submission("permission--job", integration_id=integration)) for _ in range(2)]
    stack.wait_final(*ids)
    args = ("requeue", "--all", "--code", "INTEGRATION.PERMISSION_MISSING", "--integration", integration)
    dry = cli_json(stack, *args, "--dry-run")
    assert sorted(r["id"] for r in dry) == sorted(ids) and {r["result"] for r in dry} == {"would_requeue"}
    done = cli_json(stack, *args, "--note", "customer re-authenticated", "--yes")
    assert {r["result"] for r in done} == {"requeued"}
    stack.wait_final(*ids)  # the sandbox still refuses: parked again, after a second attempt
    for submission_id in ids:
        shown = cli_json(stack, "show", submission_id)
        assert (shown["status"], shown["attempt_count"], shown["window_attempt_base"]) == ("parked", 2, 1)
    stats = cli_json(stack, "stats")
    assert stats["by_integration"][integration] == {"parked": 2, "total": 2}
    assert stats["time_to_final_s"]["all"]["count"] >= 2
