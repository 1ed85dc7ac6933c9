"""The job board's HTML: plain strings, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

__all__ = ["JOBS", "Job", "application_page", "apply_form", "job_list"]


@dataclass(frozen=True, slots=True)
class Job:
    """A job ad; ``id`` is the ATS's job id (its prefix scripts the sandbox's answer)."""

    id: str
    title: str
    employer: str


JOBS = {
    job.id: job
    for job in (
        Job("ok--backend-engineer", "Backend Engineer", "Acme Analytics"),
        Job("ratelimit1--data-analyst", "Data Analyst", "Globex"),  # rate-limited once: applyq retries
        Job("closed--product-designer", "Product Designer", "Initech"),  # the ATS says the job is closed
    )
}

_STYLE = "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}label{display:block}"


def _page(title: str, body: str, *, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="1">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def job_list() -> str:
    """Every open position."""
    items = "".join(
        f'<li><a href="/jobs/{escape(job.id)}">{escape(job.title)}</a> at {escape(job.employer)}</li>'
        for job in JOBS.values()
    )
    return _page("Jobs", f"<ul>{items}</ul>")


def apply_form(job: Job, values: dict[str, str] | None = None, error: str = "") -> str:
    """The application form, refilled with ``values`` and showing ``error`` after a refusal."""
    values = values or {}
    fields = "".join(
        f'<label>{label} <input name="{name}" value="{escape(values.get(name, ""))}" required></label>'
        for name, label in (("first_name", "First name"), ("last_name", "Last name"), ("email", "Email"))
    )
    problem = f'<p role="alert" id="error">{escape(error)}</p>' if error else ""
    form = f'<form method="post" action="/jobs/{escape(job.id)}">{fields}<button>Apply</button></form>'
    return _page(f"{job.title} at {job.employer}", problem + form)


def application_page(job: Job, status: str, message: str, *, final: bool) -> str:
    """Where the application is: refreshes itself until applyq reports the outcome."""
    body = f'<p id="outcome" data-status="{escape(status)}">{escape(message)}</p><p><a href="/">More jobs</a></p>'
    return _page(f"Your application: {job.title}", body, refresh=not final)
