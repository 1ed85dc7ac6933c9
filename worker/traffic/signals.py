"""Traffic control glue: which limit a submission counts against, and what each answer tells the limiter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.config import LimitSpec
from worker.providers.base import Accepted, Answer, ProviderError
from worker.routing.router import route
from worker.states import TOO_FAST_REASONS, UNAVAILABLE_REASONS, Provider
from worker.traffic.limiter import Hints, Limiter, Signal, Unlimited
from worker.traffic.limits import limit_key, provider_key, resolve_spec

__all__ = ["Traffic", "hints_for", "signal_for"]


@dataclass(frozen=True)
class Traffic:
    """The limiter with the configured limits; ``Traffic()`` is unlimited."""

    limiter: Limiter = field(default_factory=Unlimited)
    configured: Mapping[str, LimitSpec] = field(default_factory=dict)
    #: each provider's API key as ``provider_key`` names it (a short hash, computed once: never the key itself)
    provider_keys: Mapping[Provider, str] = field(default_factory=dict)

    def key(self, provider: Provider, integration_id: str | None) -> str:
        """The limit key of a submission."""
        return limit_key(provider, integration_id, self.hold_key(provider))

    def hold_key(self, provider: Provider) -> str:
        """The provider key a configuration error holds: the API key (by a short hash), across integrations."""
        return self.provider_keys.get(provider) or provider_key(provider, "")

    def spec(self, key: str) -> LimitSpec:
        """The limits that apply to a key."""
        return resolve_spec(key, self.configured)


def signal_for(provider: Provider, ats: str | None, answer: Answer) -> Signal:
    """Success, rate limited, unavailable, or any other answer (which proves the provider is up)."""
    if isinstance(answer, Accepted):
        return Signal.SUCCESS
    rule = route(provider, answer, ats)
    if rule.holds_key:
        return Signal.MISCONFIGURED
    reason = rule.reason
    if reason in TOO_FAST_REASONS:
        return Signal.KEY_RATE_LIMITED if rule.key_wide else Signal.RATE_LIMITED
    if reason in UNAVAILABLE_REASONS:
        return Signal.UNAVAILABLE
    return Signal.OTHER


def hints_for(answer: Answer) -> Hints:
    """Limits announced in headers: Retry-After, X-RateLimit-Remaining/Reset, Concurrency-Limit."""
    headers = answer.headers
    exhausted_until = None
    if headers.get("x-ratelimit-remaining", "").strip() == "0":
        exhausted_until = _float(headers.get("x-ratelimit-reset"))
    retry_after = answer.retry_after_s if isinstance(answer, ProviderError) else None
    limit = _float(headers.get("concurrency-limit"))
    return Hints(retry_after, exhausted_until, int(limit) if limit and limit >= 1 else None)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
