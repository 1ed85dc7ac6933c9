"""The API key never reaches an attempt: scrubbed from the provider's ``details`` as from its message.

StackOne's details (``provider_errors``) are checked in test_stackone_adapter.py; Kombo stores no details of
its own (only applyq's pre-flight warnings); Celper's field errors are checked here.
"""

from __future__ import annotations

import json

import httpx

from tests.unit.providers.test_celper_adapter import KEY, deliver
from worker.providers import ProviderError


def test_the_celper_key_echoed_in_field_errors_is_scrubbed_from_details() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        key = request.headers["x-api-key"]
        details = [{"field": "email", "message": f"key {key} may not apply"}, {key: "as a field name too"}]
        body = {"success": False, "error": "VALIDATION_ERROR", "message": "m", "details": details, "requestId": "r"}
        return httpx.Response(422, json=body)

    answer = deliver(echo)

    assert isinstance(answer, ProviderError) and answer.details is not None
    dump = json.dumps([answer.message, answer.title, answer.details])
    assert KEY not in dump and dump.count("[redacted]") == 2
