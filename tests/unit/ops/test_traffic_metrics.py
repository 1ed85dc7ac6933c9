"""Traffic control's Redis state as Prometheus series: cooldowns, breakers, learned rates, held keys."""

from __future__ import annotations

from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from worker.ops.traffic_metrics import BREAKER_STATES, TrafficCollector
from worker.traffic.limits import idle_state


class FakeLimiter:
    def snapshot(self) -> list[dict[str, Any]]:
        return [
            idle_state("kombo:greenhouse:1", adaptive_rate_per_s=4.5, cooldown_s=2.5, breaker="open", in_flight=3,
                       sporadic_s=42.0),
            idle_state("stackone:key-ab12"),
        ]  # fmt: skip

    def holds(self) -> list[dict[str, Any]]:
        return [{"key": "celper:key-cd34", "next_probe_s": 120.0}]


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrafficCollector(FakeLimiter()))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_limit_key_has_its_cooldown_breaker_rate_and_in_flight() -> None:
    got = scrape()
    key = (("key", "kombo:greenhouse:1"),)
    assert got[("applyq_limit_cooldown_seconds", key)] == 2.5
    assert got[("applyq_limit_adaptive_rate_per_second", key)] == 4.5
    assert got[("applyq_limit_in_flight", key)] == 3
    assert got[("applyq_limit_sporadic_seconds", key)] == 42.0
    states = {s: got[("applyq_limit_breaker_state", (*key, ("state", s)))] for s in BREAKER_STATES}
    assert states == {"closed": 0.0, "half-open": 0.0, "open": 1.0}


def test_a_key_without_a_learned_rate_has_no_rate_series() -> None:
    assert ("applyq_limit_adaptive_rate_per_second", (("key", "stackone:key-ab12"),)) not in scrape()


def test_a_held_provider_key_is_a_series_with_its_next_probe() -> None:
    got = scrape()
    assert got[("applyq_provider_key_held", (("key", "celper:key-cd34"),))] == 1.0
    assert got[("applyq_provider_key_next_probe_seconds", (("key", "celper:key-cd34"),))] == 120.0
