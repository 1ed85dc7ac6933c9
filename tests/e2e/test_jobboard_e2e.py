"""The example job board end to end: a candidate applies over HTTP and sees the outcome applyq reports back.

Real processes: the board (``python -m examples.jobboard``), a worker whose webhooks go to the board, the
sandbox, PostgreSQL and Redis.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.jobboard import Board, running_board
from worker.states import Reason, Status
from worker.webhooks.outcomes import BY_REASON, BY_STATUS

pytestmark = pytest.mark.e2e

OUTCOME = re.compile(r'<p id="outcome" data-status="([a-z_]+)">([^<]*)</p>')


@pytest.fixture(scope="module")
def running(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    with running_board(redis_url, tmp_path_factory.mktemp("jobboard")) as board:
        yield board


@pytest.fixture(scope="module")
def board(running: Board) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, follow_redirects=True, timeout=10) as client:
        yield client


def apply(board: httpx.Client, job_id: str, email: str) -> str:
    """Fill in the form as a candidate would; return the page the board redirects to."""
    assert board.get(f"/jobs/{job_id}").status_code == 200
    page = board.post(f"/jobs/{job_id}", data={"first_name": "Ada", "last_name": "Lovelace", "email": email})
    assert page.status_code == 200, page.text
    return str(page.url)


def wait_outcome(
    board: httpx.Client, page_url: str, timeout_s: float = 30.0, *, after: str = "sending"
) -> tuple[str, str]:
    """Reload the application page (as its refresh tag does) until it shows a status other than ``after``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = OUTCOME.search(board.get(page_url).text)
        assert found, "no outcome paragraph on the page"
        if found.group(1) != after:
            return found.group(1), html.unescape(found.group(2))
        time.sleep(0.2)
    raise AssertionError(f"{page_url} still {after} after {timeout_s}s")


def test_a_candidate_sees_the_application_was_sent(board: httpx.Client) -> None:
    assert "Backend Engineer" in board.get("/").text
    page = apply(board, "ok--backend-engineer", "ada.sent@example.com")
    assert wait_outcome(board, page) == ("succeeded", "Your application has been sent to the employer.")


def test_a_rate_limited_ats_is_retried_and_the_candidate_sees_success(board: httpx.Client) -> None:
    page = apply(board, "ratelimit1--data-analyst", "ada.retried@example.com")
    assert wait_outcome(board, page) == ("succeeded", "Your application has been sent to the employer.")


def test_a_candidate_learns_the_job_is_closed(board: httpx.Client) -> None:
    page = apply(board, "closed--product-designer", "ada.closed@example.com")
    assert wait_outcome(board, page) == ("terminal", "This job is closed.")


def test_applying_twice_tells_the_candidate_they_already_applied(board: httpx.Client) -> None:
    first = apply(board, "ok--backend-engineer", "ada.twice@example.com")
    assert wait_outcome(board, first)[0] == "succeeded"
    second = apply(board, "ok--backend-engineer", "ada.twice@example.com")
    assert wait_outcome(board, second) == ("terminal", "You've already applied to this position.")


def test_an_invalid_email_is_shown_on_the_form_in_plain_words(board: httpx.Client) -> None:
    answer = board.post("/jobs/ok--backend-engineer", data={"first_name": "A", "last_name": "L", "email": "nope"})
    assert answer.status_code == 400
    assert '<div role="alert" id="error"><p>Please enter a valid email address, such as ada@example.com.</p>' in (
        answer.text
    )
    assert "candidate.email" not in answer.text


def test_an_operator_cancelling_parked_work_tells_the_candidate_through_a_signed_webhook(
    board: httpx.Client, running: Board
) -> None:
    # Given an application the ATS refused for its details (the sandbox refuses invalid.example): parked
    page = apply(board, "ok--backend-engineer", "ada@invalid.example")
    assert wait_outcome(board, page) == (Status.PARKED, BY_REASON[Reason.INVALID_INPUT])
    # When the operator withdraws it
    key = "jobboard-application-" + page.rsplit("/", 1)[1]
    cancelled = running.stack.cli("cancel", key, "--reason", "candidate withdrew", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    # Then the board, which accepts only signed events, shows it withdrawn
    assert wait_outcome(board, page, after=Status.PARKED) == (Status.CANCELLED, BY_STATUS[Status.CANCELLED])
