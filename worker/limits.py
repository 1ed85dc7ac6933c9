"""Traffic limits per provider integration: parsing ``APPLYQ_RATE_LIMITS`` and the vendors' defaults.

``APPLYQ_RATE_LIMITS`` is a JSON object mapping ``"provider:integration"`` (or ``"provider:*"``) to a rate
such as ``"20/s"``, ``"20/min"`` or ``"1000/60s"``, or to ``{"rate": "20/s", "concurrency": 5}``. A key
with no configured rate and no published vendor rate is *adaptive*: the limiter learns it from 429s.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.states import Provider

__all__ = ["VENDOR_DEFAULTS", "LimitSpec", "limit_key", "parse_rate", "parse_rate_limits", "resolve_spec"]

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """The limits of one integration: requests per second (None = learn it) and in-flight cap."""

    rate_per_s: float | None = None
    concurrency: int | None = None

    @property
    def adaptive(self) -> bool:
        """No known rate: the limiter adapts it (additive increase, multiplicative decrease)."""
        return self.rate_per_s is None


#: Published vendor limits: Celper 20 writes / 60 s per company; StackOne 1,000 requests / minute per key;
#: Kombo caps in-flight actions per integration at about 30 and publishes no rate.
VENDOR_DEFAULTS: Mapping[Provider, LimitSpec] = {
    Provider.KOMBO: LimitSpec(rate_per_s=None, concurrency=30),
    Provider.STACKONE: LimitSpec(rate_per_s=1000 / 60, concurrency=None),
    Provider.CELPER: LimitSpec(rate_per_s=20 / 60, concurrency=None),
}


def parse_rate(text: str) -> float:
    """``"20/s"`` → 20.0, ``"20/min"`` → 0.333…, ``"1000/60s"`` → 16.66… requests per second."""
    match = _RATE.match(text.lower())
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(f"rate {text!r}: expected N/s, N/min, N/h or N/<k>s, e.g. '20/s' or '1000/60s'")
    count, multiple, unit = float(match.group(1)), float(match.group(2) or 1), match.group(3)
    if count <= 0 or multiple <= 0:
        raise ValueError(f"rate {text!r}: must be positive")
    return count / (multiple * _UNITS[unit])


def _spec(key: str, value: Any) -> LimitSpec:
    if isinstance(value, str):
        return LimitSpec(rate_per_s=parse_rate(value))
    if not isinstance(value, dict) or not set(value) <= {"rate", "concurrency"} or not value:
        raise ValueError(f"{key}: expected a rate string or {{'rate': '20/s', 'concurrency': 5}}")
    concurrency = value.get("concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"{key}: concurrency must be a positive integer")
    rate = value.get("rate")
    return LimitSpec(rate_per_s=parse_rate(rate) if rate is not None else None, concurrency=concurrency)


def parse_rate_limits(raw: str) -> dict[str, LimitSpec]:
    """Parse and check ``APPLYQ_RATE_LIMITS``; errors name the offending key."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object such as {"kombo:*": "20/s"}')
    specs = {}
    for key, value in data.items():
        provider, _, integration = key.partition(":")
        if provider not in {p.value for p in Provider} or not integration:
            raise ValueError(f"{key}: keys are 'provider:integration' or 'provider:*'")
        specs[key] = _spec(key, value)
    return specs


def limit_key(provider: Provider, integration_id: str | None, celper_api_key: str = "") -> str:
    """Whose limit a submission counts against: the integration, or the Celper company (its API key)."""
    if provider is Provider.CELPER:
        return "celper:" + hashlib.sha256(celper_api_key.encode()).hexdigest()[:12]
    return f"{provider.value}:{integration_id}"


def resolve_spec(key: str, configured: Mapping[str, LimitSpec]) -> LimitSpec:
    """Exact key, else ``provider:*``, else the vendor default."""
    provider = Provider(key.partition(":")[0])
    return configured.get(key) or configured.get(f"{provider.value}:*") or VENDOR_DEFAULTS[provider]
