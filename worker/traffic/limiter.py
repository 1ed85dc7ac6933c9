"""Shared traffic control in Redis: rate (GCRA with reservations), concurrency cap, cooldown, circuit breaker.

Every worker process on every host asks the same Redis keys, in one Lua script per decision, so a limit
holds across all of them. A submission the gate holds back is *deferred* in the database (no attempt, no
worker slot): for a rate limit it gets a reserved slot in the future, so a backlog is spread evenly instead
of stampeding back; a 429 bumps the key's generation, voiding reservations made at the old pace, and the
submissions that ask during its cooldown get their turns after it, at the rate.

An adaptive key (no configured rate) learns its rate from 429s. Until the first, it grows with what gets
through (slow start) and reserves nothing: a turn over the guessed pace waits in the worker (``PACING``).
It measures the
provider's pace at each 429, taking the provider for a token bucket that holds about a Retry-After's worth:
the bucket is empty at a 429, full again a Retry-After later (or full when a backlog began to press), so
what got through between two such moments, over the time between them less the time the bucket spent full
because our sends lagged behind, is its rate. The rate is set a little above that (never below the pace the
provider accepted in the second before: sporadic 429s among accepted requests read as a slow bucket in
that measure, at any pace), and grows slowly while
a backlog presses and no 429 comes (faster the longer none comes). The 429s of requests already on their
way when the first one was answered belong to the same episode and teach nothing more; nor does a 429 that
comes when the provider was not pressed (less than half the rate tried in the second before it and a slot
in flight free, counting no time a cooldown held the sends back). Such a 429 that is also rare (under a
third of the last second's answers) is isolated: it costs its own request's Retry-After and nothing more.

Time is Redis's: each script reads ``TIME`` itself, so cooldowns, reservations, rate windows, in-flight
leases and holds are stamped and compared on one clock, whichever worker asks and however its own clock
runs. A wait the gate answers is a duration; the database turns it into a due time on its own clock.

Keys (``applyq:lim:{key}:…``): ``tat`` (theoretical arrival time), ``gen``, ``rate`` (adaptive), ``cool``
(cooldown until), ``inflight`` (zset token → lease expiry), ``cap`` (learned concurrency), ``brk`` (hash:
fails, open_until, open_s), ``probe``, ``send`` (send pacing), ``res:{submission}``; adaptive only:
``sent`` (zset of the last minute's sends, less those answered 429), ``r429`` (the last second's 429s),
``paced`` (when a turn last waited for the slow start), ``ep`` (hash: the running measure of
the provider's pace, since the last 429 or since a backlog began to press) and ``learned``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, Protocol

import redis

from worker.config import LimitSpec
from worker.traffic.limits import idle_state

__all__ = ["Gate", "Hints", "Limiter", "RedisLimiter", "Signal", "Unlimited", "Wait", "redis_client"]


class Wait(StrEnum):
    """Why a submission may not be sent now (or ``GO`` / ``PROBE`` when it may)."""

    GO = "go"
    #: the circuit is half-open and this request is the one probe
    PROBE = "probe"
    #: the rate allows it later: a slot is reserved
    RESERVED = "reserved"
    #: the provider said Retry-After (or X-RateLimit-Remaining: 0)
    COOLDOWN = "cooldown"
    #: the circuit breaker is open after repeated "unavailable" answers
    BREAKER = "breaker"
    #: the provider key is held after a configuration error; one probe per hold period
    HELD = "held"
    #: the in-flight cap is reached
    CONCURRENCY = "concurrency"
    #: slow start: the adaptive rate has learnt no limit yet and grows with what gets through; the turn
    #: waits in the worker without a reservation (``worker/traffic/slots.py``)
    PACING = "pacing"


@dataclass(frozen=True, slots=True)
class Gate:
    """The limiter's answer for one submission."""

    verdict: Wait
    wait_s: float = 0.0
    token: str = ""

    @property
    def go(self) -> bool:
        """The request may be sent now."""
        return self.verdict in (Wait.GO, Wait.PROBE)


class Signal(StrEnum):
    """What an answer tells the limiter."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"
    #: rate limited for the whole API key, not only this limit key (Kombo's platform rate limit): every
    #: integration of the key cools down
    KEY_RATE_LIMITED = "key_rate_limited"
    UNAVAILABLE = "unavailable"
    #: any other answer: the provider is up
    OTHER = "other"
    #: the gate said go but nothing was sent (the submission was taken by another worker)
    NOT_SENT = "not_sent"
    #: the provider refused the API key itself (revoked, IP not allow-listed): hold the key, probe now and then
    MISCONFIGURED = "misconfigured"


@dataclass(frozen=True, slots=True)
class Hints:
    """Limits announced in response headers."""

    retry_after_s: float | None = None
    #: X-RateLimit-Remaining: 0 → wait until X-RateLimit-Reset (unix seconds)
    exhausted_until: float | None = None
    #: Kombo ``Concurrency-Limit``
    concurrency_limit: int | None = None


class Limiter(Protocol):
    """Decides whether a submission may call its provider now, and learns from the answers."""

    def gate(self, key: str, spec: LimitSpec, submission_id: str, hold_key: str = "") -> Gate:
        """May this submission be sent now? (``hold_key``: the provider key, held after a configuration error)"""

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str = "") -> None:
        """Record the answer to a request the gate let through (releases its concurrency slot)."""

    def observe_then_gate(
        self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str, submission_id: str
    ) -> Gate:
        """``observe``, then ``gate`` for another submission of the same key, in one round trip."""


class Unlimited:
    """A limiter that always says go (unit tests, and ``APPLYQ_TRAFFIC_CONTROL=false``)."""

    def gate(self, key: str, spec: LimitSpec, submission_id: str, hold_key: str = "") -> Gate:
        """Always go."""
        return Gate(Wait.GO)

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str = "") -> None:
        """Nothing to learn."""

    def observe_then_gate(
        self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str, submission_id: str
    ) -> Gate:
        """Always go."""
        return Gate(Wait.GO)


@dataclass(frozen=True)
class AdaptiveParams:
    """Tuning of the adaptive rate and the circuit breaker."""

    #: the pace of the slow start: until a 429 teaches the provider's limit, the rate is a guess that grows
    #: with what gets through, so turns over it wait in the worker (``Wait.PACING``) and reserve nothing (a
    #: burst on one integration reserved a minute ahead at a guessed 50/s would be honoured at that pace)
    initial_rate: float = 50.0
    min_rate: float = 1.0
    max_rate: float = 500.0
    #: a reservation this close is not worth a deferral: send now
    burst_s: float = 0.05
    #: actual sends are paced by a token bucket holding this many seconds' worth of the rate
    send_burst_s: float = 0.2
    lease_s: float = 60.0
    #: at a 429 the rate is set this much above the pace the provider was measured to let through: a
    #: little too fast costs a 429 now and then, while a backlog reserved too slowly stays too slow
    learned_margin: float = 0.03
    #: once a 429 has taught the limit, the rate grows by this share per second while a backlog presses
    #: (before, slow start: 5 % per success, up to twice what was sent in the last second)
    learned_growth: float = 0.003
    #: ... and that growth doubles for every so many seconds without a 429 (up to 32-fold)
    learned_growth_s: float = 10.0
    #: a cut of the rate is undone when 429s keep coming at this share of the requests sent since (the pace
    #: the provider accepted is refused no more by a bucket; a margin's overshoot is about ``learned_margin``)
    sporadic_share: float = 0.08
    #: ... and for so long, 429s under a third of the answers leave the rate alone (then the test runs again)
    sporadic_s: float = 60.0
    breaker_threshold: int = 5
    breaker_open_s: float = 15.0
    breaker_open_max_s: float = 300.0
    #: how long a key is held after a configuration error before one probe may go (``APPLYQ_HOLD_PROBE_S``)
    hold_s: float = 300.0


class RedisLimiter:
    """The shared limiter; one instance per process, thread-safe (redis-py pools connections).

    ``clock`` (unix seconds) replaces Redis's ``TIME`` for tests that play out minutes in a moment; in
    production it stays ``None``, so that no worker's own clock enters a decision shared with the others.
    """

    def __init__(
        self, client: redis.Redis, params: AdaptiveParams | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self._client = client
        self._params = params or AdaptiveParams()
        self._clock = clock
        self._gate = client.register_script(_script("gate.lua"))
        self._observe = client.register_script(_script("observe.lua"))

    def gate(self, key: str, spec: LimitSpec, submission_id: str, hold_key: str = "") -> Gate:
        """One atomic decision: held key → cooldown → breaker → concurrency → rate (reserving a slot).

        The token the script answers ends with Redis's time at the decision: observe() dates the answer by it.
        """
        return _answer(self._gate(keys=_keys(key, hold_key), args=self._gate_args(spec, submission_id)))

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str = "") -> None:
        """Release the slot; learn cooldowns, the adaptive rate, the breaker state and a held key."""
        self._observe(keys=_keys(key, hold_key), args=self._observe_args(spec, gate, signal, hints))

    def observe_then_gate(
        self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints, hold_key: str, submission_id: str
    ) -> Gate:
        """Release the slot and ask for one for a submission waiting in this process, in one round trip.

        The two scripts run one after the other (another worker's may run between them: that is fairness).
        A plain pipeline of EVALSHA: redis-py's pipelined scripts would first ask whether they are loaded, a
        round trip of its own; a script Redis no longer knows (after a restart) is run again on its own.
        """
        keys = _keys(key, hold_key)
        told_args, gate_args = self._observe_args(spec, gate, signal, hints), self._gate_args(spec, submission_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._observe.sha, len(keys), *keys, *told_args)
        pipe.evalsha(self._gate.sha, len(keys), *keys, *gate_args)
        told, answer = pipe.execute(raise_on_error=False)
        if isinstance(told, redis.exceptions.NoScriptError):
            self._observe(keys=keys, args=told_args)
        elif isinstance(told, Exception):
            raise told
        if isinstance(answer, redis.exceptions.NoScriptError):
            answer = self._gate(keys=keys, args=gate_args)
        elif isinstance(answer, Exception):
            raise answer
        return _answer(answer)

    def _gate_args(self, spec: LimitSpec, submission_id: str) -> list[Any]:
        p = self._params
        return [self._now(), spec.rate_per_s or 0, p.initial_rate, spec.concurrency or 0, p.lease_s,
                secrets.token_hex(16), p.burst_s, submission_id, p.send_burst_s]  # fmt: skip

    def _observe_args(self, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints) -> list[Any]:
        p = self._params
        return [self._now(), signal.value, gate.token, "1" if gate.verdict is Wait.PROBE else "0",
                "1" if spec.adaptive else "0", p.initial_rate, p.min_rate, p.max_rate,
                hints.retry_after_s if hints.retry_after_s is not None else -1,
                hints.exhausted_until or 0, hints.concurrency_limit or 0,
                p.breaker_threshold, p.breaker_open_s, p.breaker_open_max_s,
                _sent_at(gate.token), p.learned_margin, p.learned_growth, p.learned_growth_s, p.hold_s,
                spec.concurrency or 0, p.sporadic_share, p.sporadic_s]  # fmt: skip

    def _now(self) -> float | str:
        """What the scripts take for now: empty means Redis's ``TIME``."""
        return "" if self._clock is None else self._clock()

    def _redis_now(self) -> float:
        """Redis's time (or the test's clock), for the operators' views: one round trip, off the hot path."""
        if self._clock is not None:
            return self._clock()
        seconds, micros = self._client.time()
        return seconds + micros / 1e6

    def snapshot(self) -> list[dict[str, Any]]:
        """Per-key state for operators: rate, cooldown, breaker, in flight."""
        now = self._redis_now()
        found = self._client.scan_iter(_prefix("*") + "tat", count=1000)
        keys = sorted({name.decode().removeprefix("applyq:lim:").rsplit(":", 1)[0] for name in found})
        pipe = self._client.pipeline(transaction=False)  # one round trip for every key, however many
        for key in keys:
            self._read_state(pipe, _prefix(key), now)
        states = pipe.execute()
        rows = [
            self._describe(key, states[n * _STATE_READS : (n + 1) * _STATE_READS], now) for n, key in enumerate(keys)
        ]
        return rows + self._key_cooldowns(now)

    def _key_cooldowns(self, now: float) -> list[dict[str, Any]]:
        """A row per API key cooling down as a whole (``Signal.KEY_RATE_LIMITED``)."""
        rows = []
        for name in sorted(self._client.scan_iter("applyq:keycool:*", count=1000)):
            until = float(self._client.get(name) or 0)
            if until > now:
                rows.append(idle_state(name.decode().removeprefix("applyq:keycool:"), cooldown_s=round(until - now, 2)))
        return rows

    def holds(self) -> list[dict[str, Any]]:
        """Every held provider key: how long until its next probe."""
        now = self._redis_now()
        out = []
        for name in self._client.scan_iter("applyq:hold:*", count=1000):
            text = name.decode()
            if text.endswith(":probe"):
                continue
            until = float(self._client.hget(name, "until") or 0)
            out.append({"key": text.removeprefix("applyq:hold:"), "next_probe_s": round(max(0.0, until - now), 2)})
        return sorted(out, key=lambda hold: str(hold["key"]))

    def release(self, provider: str) -> list[str]:
        """Release every held key of ``provider`` (``applyq resume``); the keys released."""
        released = []
        for name in self._client.scan_iter(f"applyq:hold:{provider}:*"):
            self._client.delete(name)
            if not name.decode().endswith(":probe"):
                released.append(name.decode().removeprefix("applyq:hold:"))
        return sorted(released)

    @staticmethod
    def _read_state(pipe: Any, p: str, now: float) -> None:
        """Queue the ``_STATE_READS`` reads ``_describe`` takes, in its order, for the key whose prefix is ``p``."""
        pipe.get(p + "cool")
        pipe.hget(p + "brk", "open_until")
        pipe.get(p + "rate")
        pipe.zcount(p + "inflight", now, "+inf")
        pipe.get(p + "tat")
        pipe.ttl(p + "sporadic")

    @staticmethod
    def _describe(key: str, state: list[Any], now: float) -> dict[str, Any]:
        cool_at, open_at, rate, in_flight, tat, sporadic_ttl = state
        cool, open_until = float(cool_at or 0), float(open_at or 0)
        return idle_state(
            key,
            adaptive_rate_per_s=round(float(rate), 2) if rate else None,
            cooldown_s=round(cool - now, 2) if cool > now else 0.0,
            breaker="open" if open_until > now else "half-open" if open_until else "closed",
            in_flight=int(in_flight),
            backlog_s=round(max(0.0, float(tat or 0) - now), 2),
            # the causal test found this key's 429s sporadic: for this long they leave the rate alone (observe.lua)
            sporadic_s=float(max(0, sporadic_ttl)),
        )


def _script(name: str) -> str:
    """A Lua script shipped beside this module (``worker/traffic/lua/``), read once per limiter."""
    return resources.files("worker.traffic").joinpath("lua", name).read_text(encoding="utf-8")


def _hold(provider_key: str) -> str:
    """Where a provider key's hold lives (one per API key, across its integrations)."""
    return f"applyq:hold:{provider_key}"


def _key_cooldown(provider_key: str) -> str:
    """Where a cooldown of the whole API key lives (``Signal.KEY_RATE_LIMITED``), across its limit keys."""
    return f"applyq:keycool:{provider_key}"


#: the reads per limit key of ``RedisLimiter._read_state``, which ``_describe`` unpacks
_STATE_READS = 6


def _prefix(key: str) -> str:
    return f"applyq:lim:{key}:"


def _sent_at(token: str) -> float:
    """When the gate let the request through, from its token (-1 for a token without a time: "now")."""
    _, at, stamp = token.rpartition("@")
    try:
        return float(stamp) if at else -1.0
    except ValueError:
        return -1.0


def _keys(key: str, hold_key: str) -> list[str]:
    """The scripts' keys: the limit key's prefix, its provider key's hold and the provider key's cooldown."""
    return [_prefix(key), _hold(hold_key or key), _key_cooldown(hold_key or key)]


def _answer(reply: list[bytes | str]) -> Gate:
    """The gate script's reply: verdict, wait and token."""
    verdict, wait, token = reply
    return Gate(Wait(_text(verdict)), float(_text(wait)), _text(token))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_client(broker_url: str) -> redis.Redis:
    """A redis-py client for a Celery broker URL (``redis://…`` or kombu's ``redis+socket://path``)."""
    if broker_url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=broker_url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(broker_url)
