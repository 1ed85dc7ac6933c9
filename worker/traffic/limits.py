"""Whose limit a request counts against, and what that limit is: configured, else the vendor's default.

``APPLYQ_RATE_LIMITS`` is parsed with the other settings (``worker.config.LimitSpec``).

``APPLYQ_RATE_LIMITS`` is a JSON object mapping ``"provider:integration"`` (or ``"provider:*"``) to a rate
such as ``"20/s"``, ``"20/min"`` or ``"1000/60s"``, or to ``{"rate": "20/s", "concurrency": 5}``. A key
with no configured rate and no published vendor rate is *adaptive*: the limiter learns it from 429s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from worker.config import LimitSpec
from worker.states import Provider

__all__ = ["VENDOR_DEFAULTS", "describe_limits", "idle_state", "limit_key", "provider_key", "resolve_spec"]


#: Published vendor limits: Celper 20 writes / 60 s per company; StackOne 1,000 requests / minute per key;
#: Kombo caps in-flight actions per integration at 30 (enforced since 2026-03-20: the 31st is refused with 429
#: PLATFORM.CONCURRENCY_LIMIT_EXCEEDED, docs.kombo.dev/ats/important-changes; "the limit may vary per
#: integration": a lower announced ``Concurrency-Limit`` wins, concurrency-limiting guide) and publishes no rate.
VENDOR_DEFAULTS: Mapping[Provider, LimitSpec] = {
    Provider.KOMBO: LimitSpec(rate_per_s=None, concurrency=30),
    Provider.STACKONE: LimitSpec(rate_per_s=1000 / 60, concurrency=None),
    Provider.CELPER: LimitSpec(rate_per_s=20 / 60, concurrency=None),
}


def limit_key(provider: Provider, integration_id: str | None, key_name: str) -> str:
    """Whose limit a submission counts against, as each vendor counts it.

    * StackOne: the API key, across all its accounts ("Each API key is limited to a maximum of 1000 requests per
      minute", docs.stackone.com/guides/rate-limiting); a 429 cools the whole key.
    * Celper: the company, i.e. its API key ("per-company rate limits", docs.celper.ai/concepts/rate-limiting).
    * Kombo: the integration, whose concurrency Kombo caps ("per integration", Kombo's concurrency-limiting
      guide). Kombo's rate limit covers "all API requests" of the key (same guide) and publishes no number:
      its pace is learnt per integration, and a ``PLATFORM.RATE_LIMIT_EXCEEDED`` cools the whole key
      (``Rule.key_wide``, ``Signal.KEY_RATE_LIMITED``).

    ``key_name`` is the API key as ``provider_key`` names it: by a short hash, never the key itself.
    """
    if provider in (Provider.CELPER, Provider.STACKONE):
        return key_name
    return f"{provider.value}:{integration_id}"


def provider_key(provider: Provider, api_key: str) -> str:
    """One API key of a provider, named by a short hash (``stackone:key-1a2b…``), never by the key itself."""
    return f"{provider.value}:key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def resolve_spec(key: str, configured: Mapping[str, LimitSpec]) -> LimitSpec:
    """Exact key, else ``provider:*``, else the vendor default."""
    provider = Provider(key.partition(":")[0])
    return configured.get(key) or configured.get(f"{provider.value}:*") or VENDOR_DEFAULTS[provider]


def idle_state(key: str, **state: Any) -> dict[str, Any]:
    """A limit key's row with nothing learnt, cooling or in flight, ``state`` overriding: the one list of a row's
    fields (``applyq limits``, its ``--json`` and the traffic metrics read them)."""
    return {"key": key, "adaptive_rate_per_s": None, "in_flight": 0, "cooldown_s": 0.0, "breaker": "closed",
            "backlog_s": 0.0, "sporadic_s": 0.0, **state}  # fmt: skip


def describe_limits(
    rows: list[dict[str, Any]], configured: Mapping[str, LimitSpec], holds: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Each limit key's state (``RedisLimiter.snapshot``) with its configured limits, then the held provider keys.

    A provider key is held after a configuration error (``RedisLimiter.holds``): its row says when it is probed.
    """
    for row in rows:
        spec = resolve_spec(row["key"], configured)
        row["rate_per_s"] = round(spec.rate_per_s, 3) if spec.rate_per_s else None
        row["concurrency"] = spec.concurrency
    for hold in holds:
        breaker = f"held: probe in {hold['next_probe_s']:g} s"
        rows.append(idle_state(hold["key"], rate_per_s=None, concurrency=None, breaker=breaker))
    return rows
