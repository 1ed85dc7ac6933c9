"""The job board's HTML: plain strings, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from examples.jobboard.form import FIELDS, Field, Refused

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

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}label{display:block}"
    "#error{color:#a40000}"
)


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


def apply_form(job: Job, values: dict[str, str] | None = None, refused: Refused | None = None) -> str:
    """The application form, refilled with ``values`` and saying what to fix after a refusal."""
    values, wrong = values or {}, set(refused.fields if refused else ())
    fields = "".join(_input(f, values.get(f.name, ""), invalid=f.name in wrong) for f in FIELDS)
    problems = "".join(f"<p>{escape(message)}</p>" for message in refused.messages) if refused else ""
    alert = f'<div role="alert" id="error">{problems}</div>' if problems else ""
    form = f'<form method="post" action="/jobs/{escape(job.id)}">{fields}<button>Apply</button></form>'
    return _page(f"{job.title} at {job.employer}", alert + form)


def _input(field: Field, value: str, *, invalid: bool) -> str:
    """A labelled input; the browser checks what it can (``required``, ``type=email``) before applyq does."""
    flagged = ' aria-invalid="true" aria-describedby="error"' if invalid else ""
    return (
        f'<label>{escape(field.label)} <input name="{field.name}" type="{field.type}" '
        f'autocomplete="{field.autocomplete}" maxlength="{field.max_length}" value="{escape(value)}" '
        f"required{flagged}></label>"
    )


def application_page(job: Job, status: str, message: str, *, final: bool) -> str:
    """Where the application is: refreshes itself until applyq reports the outcome."""
    body = f'<p id="outcome" data-status="{escape(status)}">{escape(message)}</p><p><a href="/">More jobs</a></p>'
    return _page(f"Your application: {job.title}", body, refresh=not final)
