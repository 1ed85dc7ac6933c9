"""Prometheus series for traffic control, read from the shared limiter's Redis state on each scrape.

The database says what happened; only Redis knows what the workers are *holding back* right now: a
cooldown a provider asked for, an open circuit breaker, the rate learned from 429s, a provider key
held after a configuration error. Those explain a backlog that grows while no attempt fails, so they
sit beside the database series on the same ``/metrics``:

* ``applyq_limit_cooldown_seconds{key}``: seconds left of a cooldown (Retry-After, 429) (gauge)
* ``applyq_limit_breaker_state{key,state}``: 1 for the breaker's current state, closed/half-open/open (gauge)
* ``applyq_limit_adaptive_rate_per_second{key}``: the rate learned from 429s, where one is learned (gauge)
* ``applyq_limit_in_flight{key}``: requests in flight under the key's concurrency limit (gauge)
* ``applyq_limit_sporadic_seconds{key}``: seconds left of a finding that the key's 429s are sporadic (they
  leave its adaptive rate alone meanwhile; ``docs/traffic-control.md``) (gauge)
* ``applyq_provider_key_held{key}`` / ``applyq_provider_key_next_probe_seconds{key}``: a provider key
  held after an authentication or allow-list error, and when it is probed next (gauges)

Labels are limit keys (``kombo:<integration>``, ``stackone:key-<hash>``): integration ids and hashed API
key names, never an API key or candidate data. One series set per active key: with thousands of
integrations, drop ``applyq_limit_*`` in the scrape config if its cardinality matters more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BREAKER_STATES", "LimiterState", "TrafficCollector"]

#: The breaker states ``RedisLimiter.snapshot`` reports (one series each, 1 for the current one).
BREAKER_STATES = ("closed", "half-open", "open")


class LimiterState(Protocol):
    """What the collector reads: ``worker.traffic.limiter.RedisLimiter`` satisfies it."""

    def snapshot(self) -> list[dict[str, Any]]: ...

    def holds(self) -> list[dict[str, Any]]: ...


class TrafficCollector(Collector):
    """Traffic-control gauges from one limiter; a Redis error fails the scrape (Prometheus records ``up=0``)."""

    def __init__(self, limiter: LimiterState) -> None:
        self._limiter = limiter

    def collect(self) -> Iterable[Metric]:
        """All traffic-control families, read now."""
        return [*limit_families(self._limiter.snapshot()), *hold_families(self._limiter.holds())]


def limit_families(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    """Cooldown, breaker, adaptive rate, in-flight and sporadic-finding gauges per limit key."""
    cooldown = GaugeMetricFamily("applyq_limit_cooldown_seconds", "Seconds left of a cooldown.", labels=["key"])
    breaker = GaugeMetricFamily(
        "applyq_limit_breaker_state", "Circuit breaker state (1 for the current one).", labels=["key", "state"]
    )
    rate = GaugeMetricFamily("applyq_limit_adaptive_rate_per_second", "Rate learned from 429s.", labels=["key"])
    in_flight = GaugeMetricFamily("applyq_limit_in_flight", "Requests in flight.", labels=["key"])
    sporadic = GaugeMetricFamily(
        "applyq_limit_sporadic_seconds", "Seconds left of a finding that the key's 429s are sporadic.", labels=["key"]
    )
    for row in rows:
        key = row["key"]
        cooldown.add_metric([key], row["cooldown_s"])
        for state in BREAKER_STATES:
            breaker.add_metric([key, state], 1.0 if row["breaker"] == state else 0.0)
        if row["adaptive_rate_per_s"] is not None:
            rate.add_metric([key], row["adaptive_rate_per_s"])
        in_flight.add_metric([key], row["in_flight"])
        sporadic.add_metric([key], row["sporadic_s"])
    yield from (cooldown, breaker, rate, in_flight, sporadic)


def hold_families(holds: list[dict[str, Any]]) -> Iterator[Metric]:
    """One series per held provider key, and when its next probe goes."""
    held = GaugeMetricFamily(
        "applyq_provider_key_held", "A provider key held after a configuration error.", labels=["key"]
    )
    probe = GaugeMetricFamily(
        "applyq_provider_key_next_probe_seconds", "Seconds until a held key is probed.", labels=["key"]
    )
    for hold in holds:
        held.add_metric([hold["key"]], 1.0)
        probe.add_metric([hold["key"]], hold["next_probe_s"])
    yield from (held, probe)
