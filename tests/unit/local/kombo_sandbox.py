"""Shared by the Kombo sandbox tests: a client with Kombo shortcuts, spec checks, and constants."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from worker.local.sandbox import SandboxConfig, create_app

SPECS = Path(__file__).resolve().parents[3].parent / "shared" / "specs"
REPO = Path(__file__).resolve().parents[3]

KEY = "sandbox-kombo-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "X-Integration-Id": "greenhouse:HWUTwvyx2wLoSUHphiWVrp28"}
HANG_S = 0.05
#: Long enough that a second request surely finishes while the first is still stalled.
OVERLAP_HANG_S = 0.3

EXISTS = "ATS.APPLICATION_ALREADY_EXISTS"
#: Shapes of answers that are not Kombo JSON, so the spec cannot describe them.
NOT_JSON = {"html", "empty", "truncated"}


def candidate(email: str = "ada@example.com") -> dict[str, Any]:
    """A create-application body that is valid by Kombo's spec."""
    return {
        "candidate": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email_address": email,
            "phone_number": "+44 20 7946 0000",
        }
    }


class Sandbox:
    """An httpx client on a sandbox app, with Kombo shortcuts."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def apply(
        self,
        job_id: str,
        *,
        email: str = "ada@example.com",
        headers: dict[str, str] | None = None,
        body: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """POST a create-application request to the Kombo endpoint."""
        url = f"/v1/ats/jobs/{job_id}/applications"
        headers = HEADERS if headers is None else headers
        if content is not None:
            return await self.client.post(url, content=content, headers=headers)
        return await self.client.post(url, json=candidate(email) if body is None else body, headers=headers)

    async def get(self, path: str, **params: str) -> Any:
        """GET a control endpoint's JSON."""
        response = await self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()


@asynccontextmanager
async def running(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    """A sandbox app served in-process through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield Sandbox(client)


def shape(response: httpx.Response) -> str:
    """``success``, the error code (``null`` for none), or what kind of non-JSON body it is."""
    if response.headers.get("content-type", "").startswith("text/html"):
        return "html"
    if not response.content:
        return "empty"
    try:
        body = response.json()
    except json.JSONDecodeError:
        return "truncated"
    if response.status_code == 200:
        assert body["status"] == "success"
        return "success"
    assert body["status"] == "error"
    return body["error"]["code"] or "null"


def _null_in_nullable_enum(error: Any) -> bool:
    """The spec's nullable enums (``type: [string, null]``) forget ``null`` in ``enum``; see below."""
    types = error.schema.get("type", [])
    return error.validator == "enum" and error.instance is None and "null" in types


def assert_matches_spec(spec: OpenAPI, response: httpx.Response) -> None:
    """The response is a valid answer of ``POST /ats/jobs/{job_id}/applications``."""
    path = response.request.url.path
    request = MockRequest(
        "https://api.kombo.dev",
        "post",
        path if path.startswith("/v1/") else f"/v1{path}",
        headers=dict(response.request.headers),
        data=response.request.content,
        content_type="application/json",
    )
    mock = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers["content-type"],
    )
    try:
        spec.validate_response(request, mock)
    except InvalidData as exc:
        errors = getattr(exc.__cause__, "schema_errors", None)
        if errors is None or not all(_null_in_nullable_enum(error) for error in errors):
            raise
