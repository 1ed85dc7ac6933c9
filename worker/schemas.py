"""The canonical, provider-neutral submission, validated before anything is stored."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.states import Provider

__all__ = ["Attachment", "Candidate", "SubmissionIn", "format_validation_error"]

_NAME = Field(min_length=1, max_length=100)
#: Celper's limit on ``cvText``.
_CELPER_CV_MAX_BYTES = 100 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Attachment(_Strict):
    """A CV, as base64 data or a URL the provider fetches (exactly one of the two)."""

    name: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/pdf", min_length=3, max_length=127)
    data: str | None = Field(default=None, description="base64-encoded file content")
    url: AnyHttpUrl | None = None

    @field_validator("data")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("is not valid base64") from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of 'data' (base64) or 'url'")
        return self


class Candidate(_Strict):
    """The person applying."""

    first_name: str = _NAME
    last_name: str = _NAME
    email: EmailStr
    phone: str | None = Field(default=None, min_length=3, max_length=50, pattern=r"^\+?[0-9 ()./-]+$")
    cv: Attachment | None = None


class SubmissionIn(_Strict):
    """One application as the job board hands it to applyq."""

    provider: Provider
    integration_id: str | None = Field(default=None, min_length=1, max_length=200)
    job_id: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=255)
    candidate: Candidate
    metadata: dict[str, Any] = Field(default_factory=dict, description="the job board's own ids (flat)")

    @field_validator("metadata")
    @classmethod
    def _flat_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        nested = sorted(k for k, v in value.items() if not isinstance(v, str | int | float | bool | None))
        if nested:
            raise ValueError(f"values must be strings, numbers, booleans or null; not so for {nested}")
        return value

    @model_validator(mode="after")
    def _integration_matches_provider(self) -> Self:
        if self.provider is Provider.CELPER:
            if self.integration_id is not None:
                raise ValueError("integration_id: must be empty for provider 'celper'")
        elif self.integration_id is None:
            raise ValueError(f"integration_id: is required for provider '{self.provider.value}'")
        return self

    @model_validator(mode="after")
    def _cv_fits_provider(self) -> Self:
        """StackOne uploads a CV only as base64 content; Celper takes it only as text (``cvText``, ≤ 100 KB)."""
        cv = self.candidate.cv
        if cv is None or self.provider is Provider.KOMBO:
            return self
        if cv.data is None:
            raise ValueError(f"candidate.cv: provider '{self.provider.value}' needs the CV as base64 'data', not a url")
        if self.provider is Provider.CELPER:
            raw = base64.b64decode(cv.data)
            if not cv.content_type.lower().startswith("text/") or len(raw) > _CELPER_CV_MAX_BYTES:
                raise ValueError("candidate.cv: Celper takes the CV as text: content_type text/plain, at most 100 KB")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError("candidate.cv: Celper takes the CV as UTF-8 text") from exc
        return self

    def payload(self) -> dict[str, Any]:
        """The JSON-ready form that is stored and hashed."""
        return self.model_dump(mode="json")

    def payload_hash(self) -> str:
        """A stable fingerprint of the payload, to tell a replay from a reused key."""
        canonical = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path, e.g. ``candidate.email: ...``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return "\n".join(lines)
