"""The example job board in a real browser: headless Chromium, driven by Selenium through ChromeDriver.

The same stack as ``test_jobboard_e2e.py`` (board, worker, sandbox, PostgreSQL, Redis). A candidate clicks
through: sent, job closed, already applied, an invalid email (the browser's own check first, then the
board's). Each step leaves a screenshot in ``test-artifacts/jobboard-browser/`` (ignored by git).

Debian's ``chromium`` and ``chromium-driver`` packages provide ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` (a matched pair); giving Selenium the driver's path keeps Selenium Manager from
looking for, or downloading, anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import JavascriptException
from selenium.webdriver import Chrome, ChromeOptions, ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import REPO, require_service
from tests.e2e.jobboard import running_board
from worker.states import Reason, Status
from worker.webhooks.outcomes import BY_REASON, BY_STATUS

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Headless, no sandbox (root in a container), and nothing that talks to the network on its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,700",
)
ARTIFACTS = REPO / "test-artifacts" / "jobboard-browser"
#: The application page refreshes itself every second until the outcome is in.
OUTCOME_WAIT_S = 30
#: Status and message of the outcome box, read together from one document (null while it is not there).
READ_OUTCOME = """
const shown = document.getElementById("outcome");
return shown ? [shown.getAttribute("data-status") || "", shown.innerText.trim()] : null;
"""


@pytest.fixture(scope="module")
def site(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_board(redis_url, tmp_path_factory.mktemp("jobboard-browser")) as board:
        yield board.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        require_service("Chromium", f"{', '.join(missing)} missing: apt-get install chromium chromium-driver")
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = ChromeService(str(CHROMEDRIVER), log_output=str(profile.parent / "chromedriver.log"))
    driver = Chrome(options=options, service=service)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(browser: Chrome, name: str) -> None:
    """Keep what the candidate saw."""
    assert browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def apply(browser: Chrome, site: str, job_title: str, email: str) -> None:
    """From the job list: open the job, fill in the form, press Apply."""
    browser.get(site)
    browser.find_element(By.LINK_TEXT, job_title).click()
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.NAME, "email"))  # the form has loaded
    fill(browser, first_name="Ada", last_name="Lovelace", email=email)
    browser.find_element(By.TAG_NAME, "button").click()


def fill(browser: Chrome, **values: str) -> None:
    for name, value in values.items():
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def outcome(browser: Chrome) -> tuple[str, str]:
    """Wait, as the candidate does, until the page shows a final status; (status, message).

    The page reloads itself every second, so status and message are read in one script: an element found in
    one WebDriver call may belong to a document that is gone by the next (Chromium then answers "Node with
    given id does not belong to the document", not a stale-element error).
    """

    def final(driver: Chrome) -> tuple[str, str] | None:
        shown = driver.execute_script(READ_OUTCOME)
        if not shown or shown[0] in ("", "sending"):
            return None
        return (shown[0], shown[1])

    ignored = (JavascriptException,)  # a script that runs while the page is being replaced
    found = WebDriverWait(browser, OUTCOME_WAIT_S, 0.2, ignored_exceptions=ignored).until(final)
    assert found is not None
    return found


def unique_email() -> str:
    return f"ada.{uuid.uuid4().hex[:8]}@example.com"


def test_a_candidate_applies_and_sees_it_sent(browser: Chrome, site: str) -> None:
    apply(browser, site, "Backend Engineer", unique_email())
    assert outcome(browser) == (Status.SUCCEEDED, BY_STATUS[Status.SUCCEEDED])
    shot(browser, "1-sent")


def test_a_candidate_learns_the_job_is_closed(browser: Chrome, site: str) -> None:
    apply(browser, site, "Product Designer", unique_email())
    assert outcome(browser) == (Status.TERMINAL, BY_REASON[Reason.JOB_CLOSED])
    shot(browser, "2-job-closed")


def test_applying_twice_says_already_applied(browser: Chrome, site: str) -> None:
    email = unique_email()
    apply(browser, site, "Backend Engineer", email)
    assert outcome(browser)[0] == Status.SUCCEEDED
    apply(browser, site, "Backend Engineer", email)
    assert outcome(browser) == (Status.TERMINAL, BY_REASON[Reason.ALREADY_APPLIED])
    shot(browser, "3-already-applied")


def test_an_invalid_email_is_stopped_by_the_browser_then_explained_by_the_board(browser: Chrome, site: str) -> None:
    # Given an address without an @-sign, the browser's own check (type=email) keeps the form from going out
    apply(browser, site, "Backend Engineer", "ada.example.com")
    email = browser.find_element(By.NAME, "email")
    assert browser.execute_script("return arguments[0].validity.typeMismatch", email) is True
    assert browser.find_elements(By.ID, "error") == []
    shot(browser, "4-invalid-email-browser")
    # When the address passes the browser's check but not applyq's (no dot in the domain)
    fill(browser, email="ada@example")
    browser.find_element(By.TAG_NAME, "button").click()
    # Then the board says what to fix in plain words, with the form refilled
    [alert] = WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.ID, "error"))
    assert alert.text == "Please enter a valid email address, such as ada@example.com."
    assert browser.find_element(By.NAME, "email").get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.NAME, "first_name").get_attribute("value") == "Ada"
    shot(browser, "5-invalid-email-board")
