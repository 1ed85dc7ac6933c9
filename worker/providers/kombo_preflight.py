"""Kombo's pre-flight: what an integration accepts of an application's attachments, read before sending.

``GET /ats/actions/ats_create_application`` (KSPEC, operation ``GetAtsActionsAtsCreateApplication``) answers
``attachment_restrictions``: a total size and, per type (``CV``, ``COVER_LETTER``, ``OTHER``), whether the
integration supports it, how many it takes (``min_amount``/``max_amount``), the largest file and the MIME types
accepted; ``null`` anywhere means Kombo does not know. It describes attachments only: KSPEC's pre-flight says
nothing of other fields (screening answers, consent...), which Kombo itself reports as warnings.

applyq leaves out what the integration cannot take, with a warning on the attempt, and does not send at all
when that leaves a type below its ``min_amount`` (an attachment the integration requires): the submission is
parked for a human to add the file. The answer is cached per integration (``PREFLIGHT_TTL_S``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.fit import decoded_size

__all__ = [
    "PREFLIGHT_FAILED_TTL_S", "PREFLIGHT_PATH", "PREFLIGHT_TIMEOUT_S", "PREFLIGHT_TTL_S", "Fitted", "PreflightCache",
    "Restrictions", "TypeRule", "fit",
]  # fmt: skip

PREFLIGHT_PATH = "ats/actions/ats_create_application"
#: How long an integration's restrictions are trusted. Kombo says nothing of how often they change (they follow
#: the customer's ATS configuration): an hour is our choice, as for StackOne's accounts, and a refusal of the
#: input (``PLATFORM.INPUT_INVALID``, ``REMOTE.INPUT_INVALID``) forgets them at once.
PREFLIGHT_TTL_S = 3600.0
#: How long a pre-flight that could not be read (an error, a timeout, an ATS without it) is not asked again: each
#: delivery of the integration would otherwise make the failing read first, one more request against the key's
#: rate limit (which counts every API request, docs.kombo.dev/ats/guides/concurrency-limiting) in the very moment
#: the API is refusing or slow. Kombo names no interval: a minute is our choice; meanwhile attachments go unchecked,
#: with the warning on each attempt, as on the failed read itself.
PREFLIGHT_FAILED_TTL_S = 60.0
#: The longest the pre-flight read may take (or the call's own timeout, if shorter). It runs inside the attempt's
#: lease, before the POST that the lease is sized for (Kombo's 300 s plus ``APPLYQ_LEASE_MARGIN_S``, 30 s): a read
#: allowed the POST's 300 s could outlast the lease while the POST is still in flight. Kombo's SDK sets 300 s on
#: its writes and names no timeout for this read: 10 s is our choice, within the default margin; a read that
#: takes longer counts as failed (the application goes unchecked, with a warning).
PREFLIGHT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class TypeRule:
    """What the integration takes of one attachment type; ``None``: Kombo does not know."""

    supported: bool
    min_amount: int | None = None
    max_amount: int | None = None
    max_file_size_bytes: int | None = None
    accepted_mime_types: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Restrictions:
    """An integration's ``attachment_restrictions``; no types: Kombo knows nothing about them."""

    total_size_bytes: int | None = None
    types: Mapping[str, TypeRule] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: object) -> Restrictions:
        """The restrictions in a pre-flight's ``data`` (anything unreadable counts as unknown)."""
        raw = data.get("attachment_restrictions") if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            return cls()
        types = raw.get("types") if isinstance(raw.get("types"), dict) else {}
        assert isinstance(types, dict)
        return cls(
            _number(raw.get("total_size_bytes")),
            {name: _rule(rule) for name, rule in types.items() if isinstance(rule, dict)},
        )


@dataclass(frozen=True, slots=True)
class Fitted:
    """The attachments to send, a warning per one left out, and why nothing can be sent (``unmet``)."""

    attachments: list[dict[str, Any]]
    warnings: tuple[str, ...] = ()
    unmet: str | None = None


def fit(attachments: Sequence[dict[str, Any]], restrictions: Restrictions) -> Fitted:
    """Leave out what the integration cannot take; ``unmet`` if a required type is then short.

    Warnings name attachments by position and type, never by file name (candidate data).
    """
    kept: list[tuple[int, dict[str, Any]]] = []
    warnings: list[str] = []
    for index, item in enumerate(attachments):
        why = _refusal(item, restrictions.types.get(item["type"]), sum(1 for _, k in kept if k["type"] == item["type"]))
        if why is None:
            kept.append((index, item))
        else:
            warnings.append(f"attachment {index + 1} ({item['type']}) left out: {why} (Kombo pre-flight)")
    total = restrictions.total_size_bytes
    while total is not None and kept and sum(_size(item) for _, item in kept) > total:
        index, item = kept.pop()
        warnings.append(
            f"attachment {index + 1} ({item['type']}) left out: the attachments exceed the integration's "
            f"{total:,} bytes in total (Kombo pre-flight)"
        )
    return Fitted([item for _, item in kept], tuple(warnings), _unmet(restrictions, [item for _, item in kept]))


def _refusal(item: dict[str, Any], rule: TypeRule | None, already: int) -> str | None:
    """Why the integration cannot take this attachment, or None."""
    kind = item["type"]
    if rule is None:
        return None
    if not rule.supported:
        return f"the integration does not support {kind} attachments"
    content_type = str(item.get("content_type") or "").split(";")[0].strip().lower()
    if rule.accepted_mime_types is not None and content_type and content_type not in rule.accepted_mime_types:
        return f"the integration takes {kind} only as {', '.join(sorted(rule.accepted_mime_types))}"
    if rule.max_file_size_bytes is not None and _size(item) > rule.max_file_size_bytes:
        return f"larger than the integration's {rule.max_file_size_bytes:,} bytes for {kind}"
    if rule.max_amount is not None and already >= rule.max_amount:
        return f"the integration takes at most {rule.max_amount} {kind}"
    return None


def _unmet(restrictions: Restrictions, kept: list[dict[str, Any]]) -> str | None:
    for kind, rule in sorted(restrictions.types.items()):
        have = sum(1 for item in kept if item["type"] == kind)
        if rule.supported and rule.min_amount and have < rule.min_amount:
            return (
                f"the integration requires at least {rule.min_amount} {kind} attachment(s) and the application "
                f"has {have} it can take (Kombo pre-flight); nothing was sent"
            )
    return None


def _size(item: dict[str, Any]) -> int:
    """Bytes of an attachment given as data; one given as a URL is fetched by Kombo and counts as 0 here."""
    data = item.get("data")
    return decoded_size(data) if isinstance(data, str) else 0


def _number(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _rule(raw: dict[str, Any]) -> TypeRule:
    if raw.get("is_supported") is not True:
        return TypeRule(supported=False)
    mime = raw.get("accepted_mime_types")
    return TypeRule(
        supported=True,
        min_amount=_number(raw.get("min_amount")),
        max_amount=_number(raw.get("max_amount")),
        max_file_size_bytes=_number(raw.get("max_file_size_bytes")),
        accepted_mime_types=frozenset(str(m).lower() for m in mime) if isinstance(mime, list) else None,
    )


class PreflightCache:
    """Each integration's restrictions for ``ttl_s`` seconds (a failed read for ``failed_ttl_s``), shared by the
    worker's threads. What it holds is the restrictions and the warnings every attempt that relies on them carries."""

    def __init__(
        self,
        ttl_s: float = PREFLIGHT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        failed_ttl_s: float = PREFLIGHT_FAILED_TTL_S,
    ) -> None:
        self._ttl_s, self._failed_ttl_s = ttl_s, failed_ttl_s
        self._clock = clock
        self._held: dict[str, tuple[Restrictions, tuple[str, ...], float]] = {}
        self._lock = threading.Lock()

    def get(self, integration_id: str) -> tuple[Restrictions, tuple[str, ...]] | None:
        """The restrictions and their warnings, if read (or found unreadable) recently enough."""
        with self._lock:
            held = self._held.get(integration_id)
        if held is None or self._clock() >= held[2]:
            return None
        return held[0], held[1]

    def put(self, integration_id: str, restrictions: Restrictions) -> None:
        """Remember what the pre-flight said, from now."""
        with self._lock:
            self._held[integration_id] = (restrictions, (), self._clock() + self._ttl_s)

    def put_failure(self, integration_id: str, warning: str) -> tuple[Restrictions, tuple[str, ...]]:
        """Remember that the pre-flight could not be read: nothing is known (``Restrictions()``), with ``warning``."""
        held = (Restrictions(), (warning,))
        with self._lock:
            self._held[integration_id] = (*held, self._clock() + self._failed_ttl_s)
        return held

    def forget(self, integration_id: str) -> None:
        """Read the integration's restrictions again next time."""
        with self._lock:
            self._held.pop(integration_id, None)
