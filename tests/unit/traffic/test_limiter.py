"""The shared limiter against a real Redis (its Lua scripts are the point): rate, reservations,
concurrency, cooldown, adaptive rate and the circuit breaker."""

from __future__ import annotations

import os
import time
import types
import uuid
from collections.abc import Iterator

import pytest
import redis

from benchmarks.recovery import Storm, simulate
from tests.conftest import require_service
from worker.config import LimitSpec
from worker.traffic.limiter import AdaptiveParams, Gate, Hints, RedisLimiter, Signal, Wait

REDIS_URL = os.environ.get("APPLYQ_TEST_LIMITER_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.RedisError as exc:
        require_service("Redis", str(exc))
    yield conn
    conn.close()


@pytest.fixture
def key() -> str:
    return f"kombo:test-{uuid.uuid4().hex[:8]}"


def gates(limiter: RedisLimiter, key: str, spec: LimitSpec, n: int) -> list[Gate]:
    return [limiter.gate(key, spec, f"sub-{i}") for i in range(n)]


def test_the_rate_reserves_evenly_spaced_slots(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(burst_s=0.0))
    results = gates(limiter, key, LimitSpec(rate_per_s=10), 5)
    assert results[0].verdict is Wait.GO
    assert [g.verdict for g in results[1:]] == [Wait.RESERVED] * 4
    waits = [g.wait_s for g in results[1:]]
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.02)


def test_a_reservation_is_honoured_when_its_slot_comes(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(burst_s=0.0))
    spec = LimitSpec(rate_per_s=20)
    assert limiter.gate(key, spec, "a").go
    reserved = limiter.gate(key, spec, "b")
    assert reserved.verdict is Wait.RESERVED
    assert limiter.gate(key, spec, "b").verdict is Wait.RESERVED  # too early: still waits for its slot
    time.sleep(reserved.wait_s + 0.02)
    assert limiter.gate(key, spec, "b").go


def test_the_concurrency_cap_holds_and_releases(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000, concurrency=2)
    first, second, third = (limiter.gate(key, spec, f"s{i}") for i in range(3))
    assert (first.go, second.go, third.verdict) == (True, True, Wait.CONCURRENCY)
    limiter.observe(key, spec, first, Signal.SUCCESS, Hints())
    assert limiter.gate(key, spec, "s3").go


def test_retry_after_cools_the_whole_integration_down(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000)
    gate = limiter.gate(key, spec, "a")
    limiter.observe(key, spec, gate, Signal.RATE_LIMITED, Hints(retry_after_s=2))
    held = limiter.gate(key, spec, "someone-else")
    assert held.verdict is Wait.COOLDOWN
    assert 1.8 < held.wait_s <= 2.0


def test_x_ratelimit_remaining_zero_waits_until_reset(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000)
    gate = limiter.gate(key, spec, "a")
    limiter.observe(key, spec, gate, Signal.SUCCESS, Hints(exhausted_until=time.time() + 5))
    assert limiter.gate(key, spec, "b").verdict is Wait.COOLDOWN


def test_the_adaptive_rate_learns_the_limit_from_a_429(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(initial_rate=10))
    spec = LimitSpec()  # no rate known
    gates(limiter, key, spec, 40)  # a backlog presses on the rate: reservations reach seconds ahead
    for i in range(30):  # thirty successes within the last second...
        limiter.observe(key, spec, Gate(Wait.GO, token=f"t{i}"), Signal.SUCCESS, Hints())
    grown = float(client.get(f"applyq:lim:{key}:rate") or 0)
    assert grown > 10  # slow start grows the rate
    limiter.observe(key, spec, Gate(Wait.GO, token="x"), Signal.RATE_LIMITED, Hints(retry_after_s=1))
    learned = float(client.get(f"applyq:lim:{key}:rate") or 0)
    assert learned == pytest.approx(30, rel=0.1)  # ...so ~30/s is about the limit


def test_the_breaker_opens_after_repeated_unavailability_and_probes_one_at_a_time(
    client: redis.Redis, key: str
) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(breaker_threshold=3, breaker_open_s=0.3))
    spec = LimitSpec(rate_per_s=1000)
    for i in range(3):
        limiter.observe(key, spec, limiter.gate(key, spec, f"s{i}"), Signal.UNAVAILABLE, Hints())
    assert limiter.gate(key, spec, "held").verdict is Wait.BREAKER
    time.sleep(0.35)
    probe = limiter.gate(key, spec, "probe")
    assert probe.verdict is Wait.PROBE
    assert limiter.gate(key, spec, "second").verdict is Wait.BREAKER  # one probe at a time
    limiter.observe(key, spec, probe, Signal.SUCCESS, Hints())
    assert limiter.gate(key, spec, "after").go


def test_no_limit_key_is_kept_forever_and_the_snapshot_reads_them_in_one_round_trip(
    client: redis.Redis, key: str
) -> None:
    # Given an integration whose requests failed, then succeeded (the breaker closed again)
    limiter = RedisLimiter(client, AdaptiveParams(breaker_threshold=3))
    spec = LimitSpec(rate_per_s=1000, concurrency=5)
    limiter.observe(key, spec, limiter.gate(key, spec, "a"), Signal.UNAVAILABLE, Hints())
    limiter.observe(key, spec, limiter.gate(key, spec, "b"), Signal.SUCCESS, Hints())
    # Then no key of it lasts longer than a day (a key per integration ever seen was a leak)
    names = list(client.scan_iter(f"applyq:lim:{key}:*"))
    assert names and all(0 < client.ttl(name) <= 86400 for name in names)
    # ... and operators see its state, the breaker closed
    (row,) = [r for r in limiter.snapshot() if r["key"] == key]
    assert (row["breaker"], row["in_flight"], row["cooldown_s"]) == ("closed", 0, 0.0)


def test_limits_are_per_key(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000)
    limiter.observe(key, spec, limiter.gate(key, spec, "a"), Signal.RATE_LIMITED, Hints(retry_after_s=30))
    assert limiter.gate(key + "-other", spec, "b").go


def test_a_key_wide_429_cools_every_integration_of_the_key_and_no_other_key(client: redis.Redis, key: str) -> None:
    """Kombo's platform rate limit is the API key's (all its integrations); its concurrency stays per integration."""
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000)
    api_key, other_key = f"kombo:key-{uuid.uuid4().hex[:8]}", f"kombo:key-{uuid.uuid4().hex[:8]}"
    gate = limiter.gate(key, spec, "a", api_key)
    limiter.observe(key, spec, gate, Signal.KEY_RATE_LIMITED, Hints(retry_after_s=5), api_key)
    sibling = limiter.gate(key + "-sibling", spec, "b", api_key)
    assert sibling.verdict is Wait.COOLDOWN and 4.5 < sibling.wait_s <= 5.0
    assert limiter.gate(key + "-elsewhere", spec, "c", other_key).go
    [row] = [r for r in limiter.snapshot() if r["key"] == api_key]
    assert 4.5 < row["cooldown_s"] <= 5.0


def test_snapshot_shows_cooldowns_for_operators(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=1000)
    limiter.observe(key, spec, limiter.gate(key, spec, "a"), Signal.RATE_LIMITED, Hints(retry_after_s=30))
    [row] = [r for r in limiter.snapshot() if r["key"] == key]
    assert row["cooldown_s"] > 29 and row["breaker"] == "closed"


def test_a_429_under_light_traffic_cools_down_without_cutting_the_rate(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(initial_rate=10))
    spec = LimitSpec()
    limiter.observe(key, spec, Gate(Wait.GO, token="one"), Signal.SUCCESS, Hints())
    limiter.observe(key, spec, Gate(Wait.GO, token="x"), Signal.RATE_LIMITED, Hints(retry_after_s=1))
    assert client.get(f"applyq:lim:{key}:rate") is None  # still the initial 10/s
    assert limiter.gate(key, spec, "someone").verdict is Wait.COOLDOWN


def test_an_idle_integration_does_not_inflate_its_rate(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(initial_rate=10))
    for i in range(3):
        limiter.observe(key, LimitSpec(), Gate(Wait.GO, token=f"t{i}"), Signal.SUCCESS, Hints())
    assert client.get(f"applyq:lim:{key}:rate") is None


def test_late_reservations_arriving_together_are_paced_not_burst(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(burst_s=0.0, send_burst_s=0.2))
    spec = LimitSpec(rate_per_s=10)
    first = gates(limiter, key, spec, 6)
    assert [g.verdict for g in first[1:]] == [Wait.RESERVED] * 5
    time.sleep(0.6)  # every slot has come: they all arrive at once (e.g. behind a queue backlog)
    late = [limiter.gate(key, spec, f"sub-{i}") for i in range(1, 6)]
    sent = [g for g in late if g.go]
    assert 1 <= len(sent) <= 3  # the bucket holds 0.2 s worth (2) plus what refilled meanwhile
    assert all(g.verdict is Wait.RESERVED and g.wait_s <= 0.5 for g in late if not g.go)


def rate_of(client: redis.Redis, key: str) -> float:
    return float(client.get(f"applyq:lim:{key}:rate") or 0)


def test_the_429s_of_requests_already_in_flight_cut_the_rate_once(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client, AdaptiveParams(initial_rate=10))
    spec = LimitSpec()
    gates(limiter, key, spec, 40)  # a backlog presses on the rate
    in_flight = [Gate(Wait.GO, token=f"f{i}@{time.time()}") for i in range(20)]  # sent together
    for i in range(20):
        limiter.observe(key, spec, Gate(Wait.GO, token=f"t{i}"), Signal.SUCCESS, Hints())
    while in_flight:  # the first few are isolated 429s; once a third of the answers are 429s, it is a limit
        limiter.observe(key, spec, in_flight.pop(0), Signal.RATE_LIMITED, Hints(retry_after_s=1))
        if client.get(f"applyq:lim:{key}:cool"):
            break
    assert in_flight, "the 429s never cooled the integration down"
    learned = rate_of(client, key)
    generation = client.get(f"applyq:lim:{key}:gen")
    for gate in in_flight:  # their 429s tell nothing new: the provider was already out of tokens
        limiter.observe(key, spec, gate, Signal.RATE_LIMITED, Hints(retry_after_s=1))
    assert rate_of(client, key) == learned
    assert client.get(f"applyq:lim:{key}:gen") == generation  # the turns handed out since stand
    assert limiter.gate(key, spec, "someone").verdict is Wait.COOLDOWN


def test_the_rate_after_a_429_is_what_the_provider_let_through(client: redis.Redis, key: str) -> None:
    """A backlog pressing on a provider that lets 30/s through, then 20/s: each 429 sets the rate to that pace."""
    provider = Provider(client, key)
    start = provider.clock.now
    first = gates(provider.limiter, key, provider.spec, 200)  # a backlog presses on the rate
    sent = sum(g.go for g in first)
    provider.limited(provider.answers(start + sent / 30, 30, 30 - sent))
    assert rate_of(client, key) == pytest.approx(30, rel=0.1)
    # one 429 among thirty accepted: the provider still takes the integration's requests, no one waits
    assert Wait.COOLDOWN not in {g.verdict for g in gates(provider.limiter, key, provider.spec, 200)}
    # the provider slows down to 20/s: a second of that, then a 429
    provider.limited(provider.answers(provider.clock.now + 1, 20, 20))
    assert rate_of(client, key) == pytest.approx(20, rel=0.1)


def test_sporadic_429s_at_a_pressing_pace_do_not_lower_the_rate_below_what_got_through(
    client: redis.Redis, key: str
) -> None:
    """40/s against a guessed 50/s (pressing), one request in six answered 429: the rate stays near 40/s.

    Read as a token bucket emptied by each 429 and full a Retry-After later, five successes between two
    429s would say about 5/s; the provider kept accepting 40/s, so the rate does not go below that.
    """
    provider = Provider(client, key)
    provider.backlog()
    at = provider.answers(provider.clock.now, 40, 40)
    for _ in range(10):
        provider.limited(at)
        at = provider.answers(provider.clock.now + 1, 40, 5)
        at = provider.answers(at, 40, 35)  # the rest of a second at the pace, the backlog still pressing
        provider.backlog()
    assert rate_of(client, key) >= 0.9 * 40


def test_a_cooldown_hands_out_turns_after_it_at_the_rate(client: redis.Redis, key: str) -> None:
    limiter = RedisLimiter(client)
    spec = LimitSpec(rate_per_s=10)
    limiter.observe(key, spec, limiter.gate(key, spec, "a"), Signal.RATE_LIMITED, Hints(retry_after_s=2))
    waits = [limiter.gate(key, spec, f"w{i}") for i in range(3)]
    assert {g.verdict for g in waits} == {Wait.COOLDOWN}
    assert [g.wait_s for g in waits] == pytest.approx([2.0, 2.1, 2.2], abs=0.05)  # spread, not a stampede
    again = limiter.gate(key, spec, "w1")  # asking again keeps the turn
    assert again.verdict is Wait.COOLDOWN and again.wait_s == pytest.approx(2.1, abs=0.05)


class Provider:
    """Answers on a test clock: successes at a pace, 429s with Retry-After 1 s (a token on its send time)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.clock = types.SimpleNamespace(now=1_000_000.0)
        self.limiter = RedisLimiter(client, AdaptiveParams(initial_rate=50), clock=lambda: self.clock.now)
        self.key, self.spec = key, LimitSpec()

    def answers(self, start: float, rate: float, count: int) -> float:
        for i in range(count):
            sent = start + i / rate
            self.clock.now = sent + 0.05
            self.limiter.observe(self.key, self.spec, Gate(Wait.GO, token=f"s{sent}@{sent}"), Signal.SUCCESS, Hints())
        return start + count / rate

    def limited(self, sent: float) -> None:
        self.clock.now = sent + 0.05
        gate = Gate(Wait.GO, token=f"x{sent}@{sent}")
        self.limiter.observe(self.key, self.spec, gate, Signal.RATE_LIMITED, Hints(retry_after_s=1))

    def backlog(self) -> None:
        gates(self.limiter, self.key, self.spec, 200)


def test_a_429_soon_after_a_cooldown_costs_its_own_retry_not_the_learned_rate(client: redis.Redis, key: str) -> None:
    """A provider accepting 20/s learnt from a storm; then a relayed 429 four requests after a cooldown."""
    provider = Provider(client, key)
    provider.backlog()
    provider.limited(provider.answers(provider.clock.now, 40, 40))
    learned = rate_of(client, key)
    assert learned == pytest.approx(40, rel=0.1)  # learnt: what got through in the second before the 429
    cooled = provider.clock.now + 1
    provider.clock.now = cooled - 0.5
    provider.backlog()  # the backlog waits out the cooldown: that is no pressure on the rate
    provider.limited(provider.answers(cooled, learned, 4))
    assert rate_of(client, key) >= learned  # (the four successes under a backlog grew it a little)
    # one 429 among four successes, the provider not pressed: isolated, it holds back no one but its own retry
    assert client.get(f"applyq:lim:{key}:cool") is None or float(client.get(f"applyq:lim:{key}:cool")) <= cooled


def test_sporadic_429s_do_not_ratchet_the_rate_down(client: redis.Redis, key: str) -> None:
    """One request in six answered 429 (Retry-After 1 s) while a backlog waits: twenty cooldowns, one rate."""
    provider = Provider(client, key)
    provider.backlog()
    at = provider.answers(provider.clock.now, 10, 5)
    for _ in range(20):
        provider.limited(at)
        at = provider.answers(provider.clock.now + 1, 10, 5)
        provider.backlog()
    assert rate_of(client, key) in (0, 50)  # never cut: still the initial rate (or not set yet)


def test_an_isolated_429_holds_back_no_one_but_its_own_retry(client: redis.Redis, key: str) -> None:
    """Light traffic on the adaptive rate, one request in six answered 429: the others keep going."""
    limiter, spec = RedisLimiter(client), LimitSpec(concurrency=30)
    for i in range(5):
        limiter.observe(key, spec, limiter.gate(key, spec, f"s{i}"), Signal.SUCCESS, Hints())
    limiter.observe(key, spec, limiter.gate(key, spec, "x"), Signal.RATE_LIMITED, Hints(retry_after_s=1))
    assert limiter.gate(key, spec, "someone").verdict is not Wait.COOLDOWN
    assert float(client.get(f"applyq:lim:{key}:rate") or 50) >= 50  # not re-measured: not below the initial rate


def test_a_429_with_every_slot_in_flight_taken_is_a_limit(client: redis.Redis, key: str) -> None:
    """The provider pressed through the concurrency cap (not the optimistic rate): its 429 cools and teaches."""
    limiter, spec = RedisLimiter(client), LimitSpec(concurrency=3)
    taken = [limiter.gate(key, spec, f"s{i}") for i in range(3)]
    assert all(g.go for g in taken) and limiter.gate(key, spec, "waits").verdict is Wait.CONCURRENCY
    limiter.observe(key, spec, taken[0], Signal.RATE_LIMITED, Hints(retry_after_s=1))
    assert limiter.gate(key, spec, "someone").verdict is Wait.COOLDOWN


def test_a_slot_released_and_taken_for_a_waiting_submission_in_one_round_trip(client: redis.Redis, key: str) -> None:
    limiter, spec = RedisLimiter(client), LimitSpec(concurrency=1)
    first = limiter.gate(key, spec, "a")
    assert first.go and limiter.gate(key, spec, "b").verdict is Wait.CONCURRENCY
    # released with the answer to "a", taken for "b" in the same pipeline
    handed = limiter.observe_then_gate(key, spec, first, Signal.SUCCESS, Hints(), "", "b")
    assert handed.go and handed.token != first.token
    assert client.zcard(f"applyq:lim:{key}:inflight") == 1
    assert limiter.gate(key, spec, "c").verdict is Wait.CONCURRENCY
    # after a Redis restart forgot the scripts, the pipeline runs them again on its own
    client.script_flush()
    again = limiter.observe_then_gate(key, spec, handed, Signal.SUCCESS, Hints(), "", "c")
    assert again.go and client.zcard(f"applyq:lim:{key}:inflight") == 1


def test_429s_that_go_on_after_the_rate_was_cut_to_the_accepted_pace_are_sporadic(
    client: redis.Redis, key: str
) -> None:
    """1 in 6 answered 429 at 40/s: the first cuts the rate, the next ones show the cut changed nothing.

    A provider that accepted 40/s does not refuse 40/s: 429s still coming at a sixth of the requests after
    the cut do not follow the pace. The rate goes back to what it was, and later ones hold no one back.
    """
    provider = Provider(client, key)
    provider.backlog()
    at = provider.answers(provider.clock.now, 40, 40)
    provider.limited(at)  # pressed: the first 429 cuts the rate to the pace accepted
    before = 50.0
    assert rate_of(client, key) < before
    at = provider.clock.now + 1
    for _ in range(4):  # after the cooldown, the same pace and the same share of 429s
        at = provider.answers(at, 40, 5)
        provider.backlog()
        provider.limited(at)
        at += 1 / 40
    assert rate_of(client, key) >= before  # restored
    [row] = [r for r in provider.limiter.snapshot() if r["key"] == key]
    assert 0 < row["sporadic_s"] <= 60  # `applyq limits` shows the finding and how long it holds
    cooled_until = float(client.get(f"applyq:lim:{key}:cool") or 0)
    for _ in range(4):
        at = provider.answers(at, 40, 5)
        provider.backlog()
        provider.limited(at)
        at += 1 / 40
    assert rate_of(client, key) >= before
    assert float(client.get(f"applyq:lim:{key}:cool") or 0) == cooled_until  # no integration cooldown since


def test_a_bucket_the_cut_rate_still_overshoots_now_and_then_keeps_the_cut(client: redis.Redis, key: str) -> None:
    """A provider that lets 30/s through: after the cut, a 429 in fifty requests is the margin, not sporadic."""
    provider = Provider(client, key)
    first = gates(provider.limiter, key, provider.spec, 200)
    sent = sum(g.go for g in first)
    provider.limited(provider.answers(provider.clock.now + sent / 30, 30, 30 - sent))
    learned = rate_of(client, key)
    assert learned == pytest.approx(30, rel=0.1)
    at = provider.clock.now + 1
    for _ in range(3):  # a 429 every fifty requests at the learnt pace
        at = provider.answers(at, learned, 50)
        provider.backlog()
        provider.limited(at)
        at += 1 / learned
    assert rate_of(client, key) <= learned * 1.05
    assert client.get(f"applyq:lim:{key}:sporadic") is None
    [row] = [r for r in provider.limiter.snapshot() if r["key"] == key]
    assert row["sporadic_s"] == 0


def test_after_a_429_storm_the_rate_grows_back_to_the_lifted_limit(client: redis.Redis) -> None:
    """benchmarks/recovery.py's simulation, shorter: a storm at 20/s is learnt, and 40/s is reached after it."""
    figures = simulate(Storm(storm_limit=20, after_limit=40, storm_s=10, after_s=90), client)
    assert figures.learnt_in_s is not None and figures.learnt_in_s <= 2
    assert figures.storm_429_share < 0.1 and figures.after_429_share < 0.02  # (the storm: its first second)
    assert figures.recovered_90_in_s is not None and figures.recovered_90_in_s <= 60
