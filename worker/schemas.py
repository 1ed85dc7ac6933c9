"""The canonical, provider-neutral submission, validated before anything is stored."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar, cast

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from worker.fit import MAX_FILES, fit_problems
from worker.states import Provider

__all__ = [
    "CANDIDATE_FIELDS",
    "Attachment",
    "AttachmentKind",
    "Candidate",
    "Consent",
    "Document",
    "ProviderFields",
    "ScreeningAnswer",
    "Source",
    "SubmissionIn",
    "control_character",
    "format_validation_error",
    "is_reference",
]

T = TypeVar("T")

#: Payload fields that hold candidate data (the person, their files, answers, consent, what goes to the vendor
#: about them): what a purge removes. The job board's ``metadata`` and the job are not candidate data.
CANDIDATE_FIELDS = ("candidate", "attachments", "screening_answers", "consent", "provider_fields")
#: The validation context of a payload read back from the database (``SubmissionIn.from_stored``).
_STORED = "stored"

_NAME = Field(min_length=1, max_length=100)
#: Celper's limit on ``cvText``.
_CELPER_CV_MAX_BYTES = 100 * 1024


#: Control characters (C0, DEL, C1) and lone surrogates: PostgreSQL refuses NUL in text and JSON, a lone
#: surrogate cannot be encoded as UTF-8, and the rest is never part of a name, an id or an address.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same, less tab, line feed and carriage return, which free text may contain.
_CONTROL_IN_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(text: str, *, free_text: bool = False) -> str | None:
    """The first forbidden character of ``text`` as ``U+XXXX`` (never the text itself), or None."""
    found = (_CONTROL_IN_FREE_TEXT if free_text else _CONTROL).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def is_reference(text: str) -> bool:
    """Could ``text`` name a submission (an id or an idempotency key)? Checked before a database sees it."""
    return 1 <= len(text) <= 255 and control_character(text) is None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    #: This model's fields of free text, where tab and line breaks are allowed (no other string has them).
    _free_text: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        """Every string of every model, so that no field can let one through (the field is named in the error).

        A dict's values (``metadata``: the job board's own) are free text; its keys are not.
        """
        free_text = info.field_name in cls._free_text
        if isinstance(value, dict):
            for key, item in value.items():
                _refuse_control(str(key), "a key ")
                if isinstance(item, str):
                    _refuse_control(item, f"the value of {str(key)[:40]!r} ", free_text=True)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str):
                    _refuse_control(item, free_text=free_text)
        elif isinstance(value, str | AnyHttpUrl):
            _refuse_control(str(value), free_text=free_text)
        return value


def _refuse_control(text: str, where: str = "", *, free_text: bool = False) -> None:
    found = control_character(text, free_text=free_text)
    if found is not None:
        raise ValueError(f"{where}contains a control character ({found}); remove it")


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


def _empty(value: object) -> bool:
    """Whether a field added with the full application is unset: left out of the payload, so that the
    stored form (and ``payload_hash``) of a submission without it stays what it was before those fields."""
    return value is None or (isinstance(value, list | dict) and not value)


_TEXT = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)


def _json_clean(value: T) -> T:
    """``value`` if no string in it (keys too, at any depth) holds a control character; PostgreSQL's JSON
    refuses NUL wherever it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_control(str(key), "a key ")
            _json_clean(item)
    elif isinstance(value, list):
        for item in value:
            _json_clean(item)
    elif isinstance(value, str):
        _refuse_control(value, free_text=True)
    return value


class AttachmentKind(StrEnum):
    """What a file is to the ATS (Kombo's attachment ``type``, StackOne's document ``category``)."""

    CV = "cv"
    COVER_LETTER = "cover_letter"
    OTHER = "other"


class Document(Attachment):
    """One file of the application besides ``candidate.cv``: a CV, a cover letter or another file."""

    kind: AttachmentKind


class Location(_Strict):
    """Where the candidate lives; Kombo requires the country when a location is given (KSPEC)."""

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, upper case (DE)")
    city: str | None = _TEXT
    state: str | None = _TEXT
    zip_code: str | None = Field(default=None, min_length=1, max_length=20)
    street: str | None = _TEXT


class Link(_Strict):
    """A profile or portfolio link (LinkedIn, GitHub, a website)."""

    url: AnyHttpUrl
    type: str | None = Field(default=None, min_length=1, max_length=50, description="e.g. linkedin")


class Candidate(_Strict):
    """The person applying."""

    first_name: str = _NAME
    last_name: str = _NAME
    email: EmailStr
    phone: str | None = Field(default=None, min_length=3, max_length=50, pattern=r"^\+?[0-9 ()./-]+$")
    cv: Attachment | None = None
    company: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)
    title: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)
    location: Location | None = Field(default=None, exclude_if=_empty)
    links: list[Link] = Field(default_factory=list, max_length=20, exclude_if=_empty)


#: A screening answer: text or an option id, yes/no, a number, or the option ids of a multi-select.
AnswerValue = StrictBool | StrictInt | StrictFloat | StrictStr | list[StrictStr]


class ScreeningAnswer(_Strict):
    """The answer to one of the job's screening questions, by the question's id in the provider's API."""

    _free_text: ClassVar[frozenset[str]] = frozenset({"answer"})

    question_id: str = Field(min_length=1, max_length=200)
    answer: AnswerValue
    #: StackOne groups questions into questionnaires; the answer goes into this one (Kombo has no groups)
    questionnaire_id: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)

    @field_validator("answer", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> AnswerValue:
        """One line for an answer of the wrong type, not one per alternative of the union."""
        try:
            return cast(AnswerValue, handler(value))
        except ValidationError:
            raise ValueError("must be text, true or false, a number, or a list of option ids") from None

    @field_validator("answer")
    @classmethod
    def _not_empty(cls, value: AnswerValue) -> AnswerValue:
        if isinstance(value, list) and not value:
            raise ValueError("a multi-select answer names at least one option")
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty")
        return value


class Consent(_Strict):
    """The candidate's consent to the processing of their data (GDPR), as the job board recorded it."""

    given: bool
    expires_at: AwareDatetime | None = Field(default=None, exclude_if=_empty)


class Source(_Strict):
    """Where the application comes from, as the ATS should show it (e.g. the job board's name)."""

    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)


#: A JSON object passed through to the vendor as it is.
Passthrough = dict[str, Any]


class KomboSourcedBy(_Strict):
    """Kombo's ``sourced_by``: the recruiter credited with the candidate (a Kombo id or ``remote:`` + id)."""

    user_id: str = Field(min_length=1, max_length=200)


class KomboFields(_Strict):
    """Kombo's own fields of ``POST /ats/jobs/{job_id}/applications`` (KSPEC), under their Kombo names."""

    stage_id: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)
    sourced_by: KomboSourcedBy | None = Field(default=None, exclude_if=_empty)
    #: per-ATS passthrough, keyed by the tool (``greenhouse``, ``workday``...), as Kombo documents it
    remote_fields: dict[str, Passthrough] = Field(default_factory=dict, exclude_if=_empty)

    @field_validator("remote_fields")
    @classmethod
    def _clean(cls, value: dict[str, Passthrough]) -> dict[str, Passthrough]:
        return _json_clean(value)


class StackOneFields(_Strict):
    """StackOne's own fields of ``POST /unified/ats/applications`` (``AtsCreateApplicationRequestDto``)."""

    job_posting_id: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)
    location_id: str | None = Field(default=None, min_length=1, max_length=200, exclude_if=_empty)
    #: the application's ``passthrough``
    passthrough: Passthrough = Field(default_factory=dict, exclude_if=_empty)
    #: the candidate's ``passthrough``
    candidate_passthrough: Passthrough = Field(default_factory=dict, exclude_if=_empty)
    #: the candidate's ``unified_custom_fields`` (the only place StackOne's spec has them)
    unified_custom_fields: Passthrough = Field(default_factory=dict, exclude_if=_empty)

    @field_validator("passthrough", "candidate_passthrough", "unified_custom_fields")
    @classmethod
    def _clean(cls, value: Passthrough) -> Passthrough:
        return _json_clean(value)


class CelperFields(_Strict):
    """Celper's own fields of ``POST /v1/candidates`` under Celper's names (docs.celper.ai/endpoints/candidates)."""

    _free_text: ClassVar[frozenset[str]] = frozenset({"notes"})

    notes: str | None = Field(default=None, min_length=1, exclude_if=_empty)
    skipAnalysis: bool | None = Field(default=None, exclude_if=_empty)  # Celper's own name


class ProviderFields(_Strict):
    """What only one vendor has, under the vendor's own names; only the submission's provider may be given."""

    kombo: KomboFields | None = Field(default=None, exclude_if=_empty)
    stackone: StackOneFields | None = Field(default=None, exclude_if=_empty)
    celper: CelperFields | None = Field(default=None, exclude_if=_empty)


class SubmissionIn(_Strict):
    """One application as the job board hands it to applyq."""

    provider: Provider
    integration_id: str | None = Field(default=None, min_length=1, max_length=200)
    job_id: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=255)
    candidate: Candidate
    screening_answers: list[ScreeningAnswer] = Field(default_factory=list, max_length=200, exclude_if=_empty)
    consent: Consent | None = Field(default=None, exclude_if=_empty)
    source: Source | None = Field(default=None, exclude_if=_empty)
    #: files besides ``candidate.cv`` (which stays the one CV of a simple application)
    attachments: list[Document] = Field(default_factory=list, max_length=MAX_FILES, exclude_if=_empty)
    provider_fields: ProviderFields | None = Field(default=None, exclude_if=_empty)
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

    @field_validator("screening_answers")
    @classmethod
    def _one_answer_per_question(cls, value: list[ScreeningAnswer]) -> list[ScreeningAnswer]:
        seen: set[tuple[str | None, str]] = set()
        for index, answer in enumerate(value):
            key = (answer.questionnaire_id, answer.question_id)
            if key in seen:
                raise ValueError(f"item {index} answers question {answer.question_id!r} a second time")
            seen.add(key)
        return value

    @model_validator(mode="after")
    def _fits_provider(self, info: ValidationInfo) -> Self:
        """What the provider cannot carry, or not that much of, is refused by name (``worker/fit.py``).

        A stored payload was checked when it was accepted: it is not checked again before each attempt
        (``from_stored``), so that a limit introduced later never strands a submission already queued.
        """
        if isinstance(info.context, dict) and info.context.get(_STORED):
            return self
        problems = fit_problems(self.payload())
        if problems:
            raise ValueError(problems[0])
        return self

    @classmethod
    def from_stored(cls, payload: dict[str, Any]) -> SubmissionIn:
        """A stored payload, for delivery: validated as a new one, less the provider limits (checked at intake)."""
        return cls.model_validate(payload, context={_STORED: True})

    def files(self) -> list[tuple[AttachmentKind, Attachment]]:
        """Every file of the application, ``candidate.cv`` first (the resume, where the ATS shows one)."""
        cv = [(AttachmentKind.CV, self.candidate.cv)] if self.candidate.cv is not None else []
        return [*cv, *((document.kind, document) for document in self.attachments)]

    def payload(self) -> dict[str, Any]:
        """The JSON-ready form that is stored and hashed (fields of the full application only when given)."""
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
