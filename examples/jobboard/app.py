"""The job board's web app (Starlette): apply to a job, watch the outcome, receive applyq's webhooks."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from examples.jobboard.form import FIELDS, Refused, check
from examples.jobboard.models import Application, ReceivedEvent
from examples.jobboard.pages import JOBS, Job, application_page, apply_form, job_list
from worker import SIGNATURE_HEADER, Applyq, verify_signature

__all__ = ["JobBoard", "create_app"]

#: Statuses after which the page stops refreshing.
FINAL = {"succeeded", "terminal", "parked", "cancelled"}


class JobBoard:
    """The board's handlers over its database, applyq's library API and the shared webhook secret."""

    def __init__(self, applyq: Applyq, engine: sa.Engine, webhook_secret: SecretStr, integration_id: str) -> None:
        self.applyq = applyq
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self.webhook_secret = webhook_secret
        self.integration_id = integration_id

    def store_application(self, job: Job, form: dict[str, str]) -> str:
        """The application row and applyq's submission, in ONE transaction; applyq publishes after it commits.

        Raises ``Refused`` (the candidate's words for what to fix) before anything is stored.
        """
        application_id = str(uuid.uuid4())
        submission = check({
            "provider": "kombo",
            "integration_id": self.integration_id,
            "job_id": job.id,
            "idempotency_key": f"jobboard-application-{application_id}",
            "candidate": {field.name: form[field.name] for field in FIELDS},
            "metadata": {"application_id": application_id},
        })  # fmt: skip
        with self.sessions.begin() as session:
            application = Application(
                id=application_id, job_id=job.id, name=f"{form['first_name']} {form['last_name']}",
                email=form["email"], status="sending", message="",
            )  # fmt: skip
            session.add(application)
            enqueued = self.applyq.enqueue(submission, session=session)
            application.submission_id = enqueued.submission.id
            application.message = enqueued.submission.message
        return application.id

    def apply_event(self, event: dict[str, Any]) -> None:
        """Record an outcome once per event id; an event older than the one shown changes nothing."""
        try:
            with self.sessions.begin() as session:
                session.add(ReceivedEvent(id=event["id"]))
                session.flush()  # a repeated delivery stops here, on the primary key
                application = session.get(Application, str(event["metadata"].get("application_id")))
                at = datetime.fromisoformat(event["time"])
                if application is not None and (application.outcome_at is None or at >= application.outcome_at):
                    application.status, application.message, application.outcome_at = (
                        event["status"], event["message"], at,
                    )  # fmt: skip
        except IntegrityError:
            pass  # already handled: acknowledge again

    def view(self, application_id: str) -> tuple[Job, Application]:
        """The application and its job, or 404."""
        with self.sessions() as session:
            application = session.get(Application, application_id)
        if application is None:
            raise HTTPException(404)
        return JOBS[application.job_id], application


def _job(request: Request) -> Job:
    job = JOBS.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404)
    return job


def create_app(board: JobBoard) -> Starlette:
    """The web app: ``/``, ``/jobs/{id}`` (form and POST), ``/applications/{id}``, ``/webhooks/applyq``."""

    async def jobs(_: Request) -> Response:
        return HTMLResponse(job_list())

    async def job_form(request: Request) -> Response:
        return HTMLResponse(apply_form(_job(request)))

    async def apply(request: Request) -> Response:
        job = _job(request)
        raw = parse_qs((await request.body()).decode(), keep_blank_values=True)
        form = {field.name: raw.get(field.name, [""])[0].strip() for field in FIELDS}
        try:
            application_id = await run_in_threadpool(board.store_application, job, form)
        except Refused as refused:  # nothing was stored: not the application, not the submission
            return HTMLResponse(apply_form(job, form, refused), status_code=400)
        return RedirectResponse(f"/applications/{application_id}", status_code=303)

    async def application(request: Request) -> Response:
        job, row = await run_in_threadpool(board.view, request.path_params["application_id"])
        return HTMLResponse(application_page(job, row.status, row.message, final=row.status in FINAL))

    async def webhook(request: Request) -> Response:
        body = await request.body()  # verify the raw bytes, before parsing
        if not verify_signature(board.webhook_secret, request.headers.get(SIGNATURE_HEADER), body):
            return PlainTextResponse("bad signature", status_code=400)
        await run_in_threadpool(board.apply_event, json.loads(body))
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/", jobs),
            Route("/jobs/{job_id}", job_form, methods=["GET"]),
            Route("/jobs/{job_id}", apply, methods=["POST"]),
            Route("/applications/{application_id}", application),
            Route("/webhooks/applyq", webhook, methods=["POST"]),
        ]
    )
