"""What an operator types: durations (``90d``), points in time (``--since``) and ``--set FIELD=VALUE`` edits."""

from __future__ import annotations

import copy
import functools
import getpass
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from worker.errors import InvalidInput, InvalidSubmission
from worker.schemas import SubmissionIn, format_validation_error

__all__ = [
    "EDITABLE",
    "MAX_DURATION",
    "Edit",
    "apply_edits",
    "default_actor",
    "parse_duration",
    "parse_edit",
    "parse_since",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhdw])$")
#: The longest duration accepted: a duration reaches back from now, and ``datetime`` ends at year 1 (an
#: ``--older-than 99999999999d`` would overflow). A century is beyond any retention period.
MAX_DURATION = timedelta(days=36_500)

#: Top-level payload fields ``--set`` may change. ``provider`` and ``idempotency_key`` name the submission
#: itself: changing them is a new submission, not an edit.
EDITABLE = frozenset(
    {
        "candidate",
        "job_id",
        "integration_id",
        "metadata",
        "screening_answers",
        "consent",
        "source",
        "attachments",
        "provider_fields",
    }
)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w``; at most ``MAX_DURATION``."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise InvalidInput(f"{text!r} is not a duration such as 90d, 12h, 30m or 45s")
    seconds = float(match[1]) * _UNITS[match[2]]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"{text!r} is longer than {MAX_DURATION.days}d, the longest duration accepted")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime) -> datetime:
    """A duration ago (``2h``) or an ISO 8601 time; a time without a zone is UTC."""
    if _DURATION.match(text.strip().lower()):
        return now - parse_duration(text)
    try:
        value = datetime.fromisoformat(text.strip())
        # in UTC, as the database compares it: a time at the edge of year 1 or 9999 cannot be moved there
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{text!r} is neither a duration (2h, 7d) nor an ISO 8601 time") from exc


def default_actor() -> str:
    """Who runs the command: the OS user name, or ``unknown`` where there is none (some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True, slots=True)
class Edit:
    """One ``--set``: a dotted path into the payload and its new value."""

    path: tuple[str, ...]
    value: Any

    @property
    def field(self) -> str:
        """The dotted field name, e.g. ``candidate.email``."""
        return ".".join(self.path)


def parse_edit(text: str) -> Edit:
    """``FIELD=VALUE`` sets a string, or JSON where the field takes no text (a list, an object, a boolean, a
    number: ``screening_answers='[...]'``); ``FIELD:=JSON`` always sets a JSON value (``null``, ``"007"``)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise InvalidInput(f"--set {text!r}: expected FIELD=VALUE or FIELD:=JSON")
    as_json = name.endswith(":")
    name = name.removesuffix(":").strip()
    if not _FIELD.match(name):
        raise InvalidInput(f"--set {text!r}: {name!r} is not a dotted field name such as candidate.email")
    path = tuple(name.split("."))
    if path[0] not in EDITABLE:
        raise InvalidInput(f"--set {name}: only {', '.join(sorted(EDITABLE))} can be edited")
    if not as_json and not _takes_json(path):
        return Edit(path, raw)
    try:
        return Edit(path, json.loads(raw))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--set {name}: not valid JSON ({exc.msg}), which this field takes") from exc


def _takes_json(path: tuple[str, ...]) -> bool:
    """Whether the field at ``path`` takes no text at all (only lists, objects, booleans or numbers), as the
    submission's JSON schema says; a key of a free object (``metadata``, a passthrough) takes text."""
    node: dict[str, Any] | None = {"$ref": "#"}
    for part in path:
        node = next((o["properties"][part] for o in _options(node) if part in o.get("properties", {})), None)
        if node is None:
            return False
    return "string" not in {option.get("type") for option in _options(node)}


@functools.cache
def _schema() -> dict[str, Any]:
    return SubmissionIn.model_json_schema()


def _options(node: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The alternatives a schema node allows, references resolved (``anyOf``, ``oneOf``, ``$ref``)."""
    if node is None:
        return []
    if "$ref" in node:
        target = _schema()
        for part in node["$ref"].removeprefix("#").strip("/").split("/") if node["$ref"] != "#" else []:
            target = target[part]
        return _options(target)
    choices = node.get("anyOf") or node.get("oneOf")
    return [option for choice in choices for option in _options(choice)] if choices else [node]


def apply_edits(payload: dict[str, Any], edits: Sequence[Edit]) -> tuple[SubmissionIn, list[str]]:
    """The edited payload validated exactly like a new submission, and the fields whose value changed."""
    edited = copy.deepcopy(payload)
    for edit in edits:
        _set_path(edited, edit)
    try:
        item = SubmissionIn.model_validate(edited)
    except ValidationError as exc:
        raise InvalidSubmission(format_validation_error(exc)) from exc
    after = item.payload()
    changed = [e.field for e in edits if _get_path(after, e.path) != _get_path(payload, e.path)]
    return item, list(dict.fromkeys(changed))


def _set_path(payload: dict[str, Any], edit: Edit) -> None:
    node = payload
    for part in edit.path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InvalidInput(f"--set {edit.field}: {part!r} is not an object")
        node = child
    node[edit.path[-1]] = edit.value


def _get_path(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
