"""Kombo's pre-flight: restrictions read once per integration, what cannot be taken left out, required files."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import SPECS, submission_dict
from worker.providers.base import Accepted, Delivery, ErrorKind, ProviderError
from worker.providers.kombo import KomboAdapter
from worker.providers.kombo_preflight import (
    PREFLIGHT_FAILED_TTL_S,
    PREFLIGHT_TIMEOUT_S,
    PREFLIGHT_TTL_S,
    PreflightCache,
    Restrictions,
    TypeRule,
    fit,
)
from worker.routing.router import route
from worker.schemas import SubmissionIn
from worker.states import Decision, Provider, Reason

PDF = base64.b64encode(b"%PDF-1.4 fake").decode()  # 13 bytes
UNKNOWN = {"is_supported": True, "min_amount": None, "max_amount": None, "max_file_size_bytes": None,
           "accepted_mime_types": None}  # fmt: skip
NO_COVER_LETTERS = {"total_size_bytes": None, "types": {"CV": UNKNOWN, "COVER_LETTER": {"is_supported": False},
                                                        "OTHER": UNKNOWN}}  # fmt: skip
CV_REQUIRED = {"total_size_bytes": None, "types": {"CV": {**UNKNOWN, "min_amount": 1}, "COVER_LETTER": UNKNOWN,
                                                   "OTHER": UNKNOWN}}  # fmt: skip


def item(kind: str, content_type: str = "application/pdf", data: str = PDF) -> dict[str, Any]:
    return {"name": "private-name.pdf", "type": kind, "content_type": content_type, "data": data}


def test_the_specs_example_is_read_as_kombo_means_it() -> None:
    spec = json.loads((SPECS / "kombo-openapi.json").read_text())
    operation = spec["paths"]["/ats/actions/ats_create_application"]["get"]
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]["example1"]["value"]

    restrictions = Restrictions.parse(example["data"])

    assert restrictions.total_size_bytes == 20_000_000
    assert restrictions.types["CV"] == TypeRule(
        True, 1, 1, 10_000_000, frozenset({"application/pdf", "application/msword"})
    )
    assert restrictions.types["COVER_LETTER"] == TypeRule(True, 0, None, None, None)
    assert restrictions.types["OTHER"] == TypeRule(False)
    assert Restrictions.parse({"attachment_restrictions": None}) == Restrictions()


def test_an_unsupported_type_is_left_out_with_a_warning_that_names_no_file() -> None:
    fitted = fit([item("CV"), item("COVER_LETTER")], Restrictions.parse({"attachment_restrictions": NO_COVER_LETTERS}))

    assert [a["type"] for a in fitted.attachments] == ["CV"]
    assert fitted.unmet is None
    assert fitted.warnings == (
        "attachment 2 (COVER_LETTER) left out: the integration does not support COVER_LETTER attachments "
        "(Kombo pre-flight)",
    )
    assert "private-name" not in " ".join(fitted.warnings)


@pytest.mark.parametrize(
    ("rule", "attachments", "kept", "why"),
    [
        ({**UNKNOWN, "max_amount": 1}, [item("CV"), item("CV")], 1, "at most 1 CV"),
        ({**UNKNOWN, "accepted_mime_types": ["application/pdf"]}, [item("CV", "application/msword")], 0,
         "only as application/pdf"),
        ({**UNKNOWN, "max_file_size_bytes": 12}, [item("CV")], 0, "larger than the integration's 12 bytes"),
    ],
)  # fmt: skip
def test_what_the_type_cannot_take_is_left_out(
    rule: dict[str, Any], attachments: list[Any], kept: int, why: str
) -> None:
    restrictions = Restrictions.parse({"attachment_restrictions": {"total_size_bytes": None, "types": {"CV": rule}}})
    fitted = fit(attachments, restrictions)
    assert len(fitted.attachments) == kept and why in fitted.warnings[0]


def test_the_total_size_drops_the_last_files_first() -> None:
    restrictions = Restrictions(total_size_bytes=30, types={})
    fitted = fit([item("CV"), item("COVER_LETTER"), item("OTHER")], restrictions)
    assert [a["type"] for a in fitted.attachments] == ["CV", "COVER_LETTER"]
    assert "exceed the integration's 30 bytes in total" in fitted.warnings[0]


def test_a_required_type_the_application_lacks_is_unmet() -> None:
    fitted = fit([item("COVER_LETTER")], Restrictions.parse({"attachment_restrictions": CV_REQUIRED}))
    assert fitted.unmet is not None and "requires at least 1 CV attachment(s)" in fitted.unmet


def test_the_cache_keeps_restrictions_for_the_ttl() -> None:
    now = [0.0]
    cache = PreflightCache(clock=lambda: now[0])
    cache.put("int-1", Restrictions(total_size_bytes=1))
    now[0] = PREFLIGHT_TTL_S - 1
    assert cache.get("int-1") == (Restrictions(total_size_bytes=1), ())
    now[0] = PREFLIGHT_TTL_S
    assert cache.get("int-1") is None


def test_the_cache_keeps_a_failed_read_for_a_minute_with_its_warning() -> None:
    now = [0.0]
    cache = PreflightCache(clock=lambda: now[0])
    assert cache.put_failure("int-1", "not read") == (Restrictions(), ("not read",))
    now[0] = PREFLIGHT_FAILED_TTL_S - 1
    assert cache.get("int-1") == (Restrictions(), ("not read",))
    now[0] = PREFLIGHT_FAILED_TTL_S
    assert cache.get("int-1") is None


# --- the adapter ------------------------------------------------------------------------------------


class Kombo:
    """A fake Kombo: a pre-flight answer (or error status), then the POST's answer; records every request."""

    def __init__(self, restrictions: Any = None, preflight_status: int = 200, post_status: int = 200) -> None:
        self.restrictions, self.preflight_status, self.post_status = restrictions, preflight_status, post_status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET":
            if self.preflight_status != 200:
                return httpx.Response(self.preflight_status, json=_error("PLATFORM.RATE_LIMIT_EXCEEDED"))
            return httpx.Response(
                200, json={"status": "success", "data": {"attachment_restrictions": self.restrictions}}
            )
        if self.post_status != 200:
            return httpx.Response(self.post_status, json=_error("PLATFORM.INPUT_INVALID"))
        body = {"status": "success", "data": {"id": "A1", "remote_id": "1"}, "warnings": [{"message": "kombo's own"}]}
        return httpx.Response(200, json=body)

    @property
    def posted(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]


def _error(code: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "title": "t", "message": "m", "log_url": None}}


def full(**overrides: Any) -> Delivery:
    data: dict[str, Any] = {
        "candidate": {"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": {"name": "cv.pdf", "data": PDF}},
        "attachments": [{"kind": "cover_letter", "name": "l.pdf", "data": PDF}],
        **overrides,
    }
    return Delivery("s", "k", SubmissionIn.model_validate(submission_dict(**data)))


def adapter(kombo: Kombo) -> KomboAdapter:
    return KomboAdapter(httpx.Client(base_url="https://api.kombo.dev/v1/", transport=httpx.MockTransport(kombo)), "k")


def test_an_unsupported_attachment_is_left_out_and_the_warning_is_on_the_answer() -> None:
    kombo = Kombo(NO_COVER_LETTERS)
    answer, _ = adapter(kombo).deliver(full())

    assert [a["type"] for a in kombo.posted[0]["attachments"]] == ["CV"]
    assert isinstance(answer, Accepted)
    assert answer.warnings[0].startswith("attachment 2 (COVER_LETTER) left out")
    assert answer.warnings[-1] == "kombo's own"


def test_a_missing_required_attachment_sends_nothing_and_parks() -> None:
    kombo = Kombo(CV_REQUIRED)
    answer, _ = adapter(kombo).deliver(full(candidate={"first_name": "A", "last_name": "B", "email": "a@b.co"}))

    assert kombo.posted == []
    assert isinstance(answer, ProviderError) and answer.kind is ErrorKind.UNMET_REQUIREMENT
    assert answer.label == "PREFLIGHT.REQUIREMENT_UNMET"
    rule = route(Provider.KOMBO, answer)
    assert (rule.decision, rule.reason) == (Decision.PARK, Reason.INVALID_INPUT)
    assert "--set attachments=" in rule.remediation


def test_the_pre_flight_is_read_once_per_integration_and_again_after_an_input_error() -> None:
    kombo = Kombo(NO_COVER_LETTERS)
    sender = adapter(kombo)
    sender.deliver(full())
    sender.deliver(full())
    assert [r.method for r in kombo.requests] == ["GET", "POST", "POST"]

    kombo.post_status = 400
    answer, _ = sender.deliver(full())
    assert isinstance(answer, ProviderError) and answer.details == {"warnings": [answer.details["warnings"][0]]}
    sender.deliver(full())
    assert [r.method for r in kombo.requests][-2:] == ["GET", "POST"]  # the refusal made it read again


def test_an_unreadable_pre_flight_sends_the_application_as_it_is_with_a_warning() -> None:
    kombo = Kombo(preflight_status=429)
    answer, _ = adapter(kombo).deliver(full())

    assert [a["type"] for a in kombo.posted[0]["attachments"]] == ["CV", "COVER_LETTER"]
    assert isinstance(answer, Accepted)
    assert answer.warnings[0] == "Kombo pre-flight not read (PLATFORM.RATE_LIMIT_EXCEEDED): attachments sent unchecked"


def test_the_pre_flight_read_gets_a_short_timeout_of_its_own() -> None:
    """The lease is sized for the POST (Kombo's 300 s): the read before it must not take as long."""
    kombo = Kombo(NO_COVER_LETTERS)
    client = httpx.Client(base_url="https://api.kombo.dev/v1/", transport=httpx.MockTransport(kombo), timeout=300)
    KomboAdapter(client, "k").deliver(full())

    get, post = kombo.requests
    assert get.extensions["timeout"]["read"] == PREFLIGHT_TIMEOUT_S
    assert post.extensions["timeout"]["read"] == 300


def test_an_unreadable_pre_flight_is_not_asked_again_by_every_delivery() -> None:
    """A failing read before each POST would double the requests against the key's rate while Kombo refuses."""
    kombo = Kombo(preflight_status=503)
    sender = adapter(kombo)
    answers = [sender.deliver(full())[0] for _ in range(3)]

    assert [r.method for r in kombo.requests] == ["GET", "POST", "POST", "POST"]
    assert all(isinstance(a, Accepted) and a.warnings[0].startswith("Kombo pre-flight not read") for a in answers)
