"""The sandbox's ASGI app: each provider's create-application endpoint plus the ``/_sandbox`` controls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.local.sandbox import kombo_fields
from worker.local.sandbox.celper import CelperProvider
from worker.local.sandbox.config import SandboxConfig
from worker.local.sandbox.events import EventSender
from worker.local.sandbox.kombo import KomboProvider
from worker.local.sandbox.provider import Exchange, Provider, Reply, Submission
from worker.local.sandbox.scenarios import Behaviour, Outcome, Scenario, decide, parse_scenario
from worker.local.sandbox.stackone import StackOneProvider
from worker.local.sandbox.state import RequestRecord, SandboxState, application_key

__all__ = ["create_app", "serve"]

_LOG_ROUTE = "sandbox_log"


def create_app(
    config: SandboxConfig | None = None, *, event_transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """A fresh sandbox with empty state; ``app.state.sandbox`` is its ``SandboxState``.

    ``event_transport`` carries the vendor events it sends (tests: an ``httpx.ASGITransport`` to applyq's API).
    """
    config = config or SandboxConfig()
    state = SandboxState(config.seed)
    providers: tuple[Provider, ...] = (
        KomboProvider(config, state),
        StackOneProvider(config, state),
        CelperProvider(config, state),
    )
    routes = [
        Route(path, _ProviderEndpoint(provider, config, state).handle, methods=["POST"])
        for provider in providers
        for path in provider.paths
    ]
    routes += [
        Route(path, _ReadEndpoint(provider, path, state).handle, methods=["GET"])
        for provider in providers
        for path in provider.read_paths
    ]
    sender = EventSender(config, state, event_transport)
    app = Starlette(routes=[*_control_routes(state), *_event_routes(state, sender), *routes])
    app.state.sandbox = state
    return app


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Run the sandbox in the foreground until interrupted."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)


class _ProviderEndpoint:
    """The create-application handler of one provider, over the shared state."""

    def __init__(self, provider: Provider, config: SandboxConfig, state: SandboxState) -> None:
        self._provider = provider
        self._config = config
        self._state = state

    async def handle(self, request: Request) -> Response:
        """Log the request, wait out the latency, answer it and note the status."""
        provider, state = self._provider, self._state
        body = _json_or_none(await request.body())
        record = _logged(state, provider, request, provider.job_id(request.path_params, body), body)
        with state.in_flight(provider.name, provider.integration_id(request.headers) or "") as in_flight:
            exchange = Exchange(str(request.url_for(_LOG_ROUTE, log_id=record.log_id)), in_flight, record.log_id)
            reply = self._over_the_cap(request, record.job_id or "", body, exchange)
            if reply is None:
                if self._config.latency_ms > 0:
                    await asyncio.sleep(self._config.latency_ms / 1000)
                reply = await self._answer(request, record.job_id or "", body, exchange)
        state.answered(record, reply.status)
        return Response(reply.body, reply.status, dict(reply.headers), reply.media_type)

    def _over_the_cap(self, request: Request, job_id: str, body: Any, exchange: Exchange) -> Reply | None:
        """The provider's immediate refusal of a request beyond its cap on requests in flight, if it is one."""
        cap = self._provider.concurrency_limit
        if cap is None or exchange.in_flight <= cap:
            return None
        submission = self._provider.admit(request.headers, job_id, body, exchange)
        if isinstance(submission, Reply):
            return submission
        return self._provider.render(Behaviour(Outcome.CONCURRENCY_LIMITED), submission, None, exchange)

    async def _answer(self, request: Request, job_id: str, body: Any, exchange: Exchange) -> Reply:
        """Admit the request, let its scenario decide, create and stall as told, then render."""
        provider, config, state = self._provider, self._config, self._state
        submission = provider.admit(request.headers, job_id, body, exchange)
        if isinstance(submission, Reply):
            return submission
        limit = config.rate_limit_per_s
        if limit and not state.take_token((provider.name, provider.rate_scope(submission)), limit, time.monotonic()):
            return provider.render(Behaviour(Outcome.RATE_LIMITED), submission, None, exchange)
        key = application_key(provider.name, submission.integration_id, submission.job_id, submission.email)
        attempt = state.begin_attempt(key)
        dedupe = config.dedupe and provider.detects_duplicates(submission)
        behaviour = decide(
            _script(state, provider.name, submission),
            attempt.number,
            already_created=dedupe and attempt.already_created,
            email=submission.email,
        )
        application = None
        if behaviour.creates:
            person = (submission.first_name, submission.last_name)
            application = state.create(key, allow_duplicate=not dedupe, person=person)
            if application is None:  # a concurrent attempt created it first
                behaviour = Behaviour(Outcome.ALREADY_APPLIED)
        # The answer is settled (and, for Celper, kept for its idempotency key) before the stall delays it.
        reply = provider.render(behaviour, submission, application, exchange)
        if behaviour.stalls:
            await asyncio.sleep(config.hang_s)
        return reply


class _ReadEndpoint:
    """One read endpoint of a provider (a lookup's or the account API), logged like every request."""

    def __init__(self, provider: Provider, path: str, state: SandboxState) -> None:
        self._provider = provider
        self._path = path
        self._state = state

    async def handle(self, request: Request) -> Response:
        """Log the read, answer it from the state, note the status."""
        provider, state = self._provider, self._state
        record = _logged(state, provider, request, None, None)
        reply = provider.read(self._path, request.headers, request.path_params, request.query_params)
        state.answered(record, reply.status)
        return Response(reply.body, reply.status, dict(reply.headers), reply.media_type)


def _script(state: SandboxState, provider: str, submission: Submission) -> Scenario:
    """The job id's scenario, unless the integration is broken (``/_sandbox/integrations/…``): then that fault's."""
    fault = state.fault(provider, submission.integration_id)
    if fault is None:
        return parse_scenario(submission.job_id)
    return Scenario(fault, parse_scenario(f"{fault}--").misbehaviour)  # every attempt, until it is fixed


def _logged(state: SandboxState, provider: Provider, request: Request, job_id: str | None, body: Any) -> RequestRecord:
    """Enter a provider request in the request log on arrival, its credentials redacted."""
    record = RequestRecord(
        log_id=state.new_uuid(),
        provider=provider.name,
        method=request.method,
        path=request.url.path,
        job_id=job_id,
        headers=_redacted(request.headers, provider.is_authorized(request.headers)),
        body=body,
    )
    state.log_request(record)
    return record


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


#: Request headers that carry a provider credential (Kombo and StackOne ``Authorization``, Celper ``X-API-Key``).
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})


def _redacted(headers: Mapping[str, str], authorized: bool) -> dict[str, str]:
    """Lower-cased headers with the credentials replaced by whether they were accepted."""
    redaction = "<redacted:ok>" if authorized else "<redacted:bad>"
    return {
        name.lower(): redaction if name.lower() in _CREDENTIAL_HEADERS else value for name, value in headers.items()
    }


def _control_routes(state: SandboxState) -> list[Route]:
    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(_: Request) -> Response:
        return JSONResponse(state.stats())

    async def requests(request: Request) -> Response:
        return JSONResponse(state.requests(request.query_params.get("job_id")))

    async def log(request: Request) -> Response:
        record = state.request(request.path_params["log_id"])
        if record is None:
            return JSONResponse({"error": "no such request in the log"}, status_code=404)
        return JSONResponse(record)

    async def applications(_: Request) -> Response:
        return JSONResponse(state.applications())

    async def reset(_: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def revoke(request: Request) -> Response:
        state.revoke(request.path_params["provider"], request.path_params["action"] == "revoke")
        return JSONResponse({"ok": True})

    async def restrictions(request: Request) -> Response:
        value = _json_or_none(await request.body())
        problem = kombo_fields.restrictions_problem(value)
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=400)
        state.set_restrictions(request.path_params["integration_id"], value)
        return JSONResponse({"attachment_restrictions": value})

    return [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/requests", requests, methods=["GET"]),
        Route("/_sandbox/applications", applications, methods=["GET"]),
        Route("/_sandbox/logs/{log_id}", log, methods=["GET"], name=_LOG_ROUTE),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        # refuse a provider's key as after a rotation (``revoke``), then accept it again (``restore``)
        Route("/_sandbox/keys/{provider}/{action:str}", revoke, methods=["POST"]),
        # what a Kombo integration's pre-flight answers (its ``attachment_restrictions``), enforced on its POSTs
        Route("/_sandbox/kombo/restrictions/{integration_id}", restrictions, methods=["PUT"]),
    ]


def _event_routes(state: SandboxState, sender: EventSender) -> list[Route]:
    """Break an integration (and fix it), and send the vendor events that announce it."""

    async def fault(request: Request) -> Response:
        provider, integration, name = (request.path_params[k] for k in ("provider", "integration_id", "fault"))
        broken = None if name == "ok" else name
        if broken is not None and parse_scenario(f"{broken}--").misbehaviour is None:
            return JSONResponse({"error": f"no scenario {name!r} (try permission, reauth, syncpending or ok)"}, 404)
        state.set_fault(provider, integration, broken)
        return JSONResponse({"provider": provider, "integration_id": integration, "fault": broken})

    async def send(request: Request) -> Response:
        overrides = _json_or_none(await request.body()) or {}
        if not isinstance(overrides, dict):
            return JSONResponse({"error": "the body, if any, is a JSON object of fields to override"}, 400)
        provider, integration, event_type = (
            request.path_params[k] for k in ("provider", "integration_id", "event_type")
        )
        signing = request.query_params.get("signing", "valid")
        status, answer = await sender.send(provider, integration, event_type, overrides, signing)
        return JSONResponse(answer, status)

    return [
        # every create for the integration answers as the scenario does (``permission``...), until ``ok``
        Route("/_sandbox/integrations/{provider}/{integration_id}/{fault}", fault, methods=["POST"]),
        Route("/_sandbox/events/{provider}/{integration_id}/{event_type}", send, methods=["POST"]),
    ]
