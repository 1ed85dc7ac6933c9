"""Shared traffic control in Redis: rate (GCRA with reservations), concurrency cap, cooldown, circuit breaker.

Every worker process on every host asks the same Redis keys, in one Lua script per decision, so a limit
holds across all of them. A submission the gate holds back is *deferred* in the database (no attempt, no
worker slot): for a rate limit it gets a reserved slot in the future, so a backlog is spread evenly instead
of stampeding back; a 429 bumps the key's generation, voiding reservations made at the old pace.

Keys (``applyq:lim:{key}:…``): ``tat`` (theoretical arrival time), ``gen``, ``rate`` (adaptive), ``cool``
(cooldown until), ``inflight`` (zset token → lease expiry), ``cap`` (learned concurrency), ``brk`` (hash:
fails, open_until, open_s), ``probe``, ``ok`` (zset of recent successes), ``res:{submission}``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis

from worker.limits import LimitSpec

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
    #: the in-flight cap is reached
    CONCURRENCY = "concurrency"


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
    UNAVAILABLE = "unavailable"
    #: any other answer: the provider is up
    OTHER = "other"
    #: the gate said go but nothing was sent (the submission was taken by another worker)
    NOT_SENT = "not_sent"


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

    def gate(self, key: str, spec: LimitSpec, submission_id: str) -> Gate:
        """May this submission be sent now?"""

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints) -> None:
        """Record the answer to a request the gate let through (releases its concurrency slot)."""


class Unlimited:
    """A limiter that always says go (unit tests, and ``APPLYQ_TRAFFIC_CONTROL=false``)."""

    def gate(self, key: str, spec: LimitSpec, submission_id: str) -> Gate:
        """Always go."""
        return Gate(Wait.GO)

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints) -> None:
        """Nothing to learn."""


_GATE = """
local now, cfg_rate, initial, cap_cfg = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, token, burst, sub = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8]
local send_burst = tonumber(ARGV[9])
local p = KEYS[1]
local res_key = p .. 'res:' .. sub
local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
if cool > now then return {'cooldown', tostring(cool - now)} end
local open_until = tonumber(redis.call('HGET', p .. 'brk', 'open_until') or '0')
local probe = false
if open_until > now then return {'breaker', tostring(open_until - now)} end
if open_until > 0 then
  if not redis.call('SET', p .. 'probe', token, 'NX', 'PX', math.floor(lease * 1000)) then
    return {'breaker', '1'}
  end
  probe = true
end
local cap = cap_cfg
local learned = tonumber(redis.call('GET', p .. 'cap') or '0')
if learned > 0 and (cap <= 0 or learned < cap) then cap = learned end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', p .. 'inflight', '-inf', now)
  if redis.call('ZCARD', p .. 'inflight') >= cap then
    if probe then redis.call('DEL', p .. 'probe') end
    return {'concurrency', '0.2'}
  end
end
local gen = redis.call('GET', p .. 'gen') or '0'
local rate = cfg_rate
if rate <= 0 then rate = tonumber(redis.call('GET', p .. 'rate') or initial) end
local function hold(slot, wait)
  redis.call('HSET', res_key, 'gen', gen, 'slot', tostring(slot))
  redis.call('EXPIRE', res_key, math.ceil(wait) + 300)
  if probe then redis.call('DEL', p .. 'probe') end
  return {'reserved', tostring(wait)}
end
-- 1. the schedule: a reservation whose slot has come, or a slot taken now (reserved if not within burst)
local res = redis.call('HMGET', res_key, 'gen', 'slot')
local has_res = false
if res[1] == gen and res[2] then
  local slot = tonumber(res[2])
  if slot > now + 0.01 then return {'reserved', tostring(slot - now)} end
  has_res = slot > now - 2
end
if not has_res then
  local tat = tonumber(redis.call('GET', p .. 'tat') or '0')
  if tat < now then tat = now end
  redis.call('SET', p .. 'tat', tostring(tat + 1 / rate), 'EX', 86400)
  if tat - now > burst then return hold(tat, tat - now) end
end
-- 2. the pace of actual sends: late reservations arriving together must not burst past the rate
local cap_s = math.max(1, rate * send_burst)
local sb = redis.call('HMGET', p .. 'send', 'tokens', 'ts')
local tokens = tonumber(sb[1] or cap_s)
tokens = math.min(cap_s, tokens + (now - tonumber(sb[2] or now)) * rate)
if tokens < 1 then return hold(now, (1 - tokens) / rate) end
redis.call('HSET', p .. 'send', 'tokens', tostring(tokens - 1), 'ts', tostring(now))
redis.call('EXPIRE', p .. 'send', 3600)
redis.call('DEL', res_key)
if cap > 0 then
  redis.call('ZADD', p .. 'inflight', now + lease, token)
  redis.call('EXPIRE', p .. 'inflight', math.ceil(lease) + 60)
end
if probe then return {'probe', '0'} end
return {'go', '0'}
"""

_OBSERVE = """
local now, signal, token, probe = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4] == '1'
local adaptive, initial, min_rate, max_rate = ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local retry_after, exhausted_until, cap_hint = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local threshold, open_base, open_max = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local sent, margin, growth = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17])
local p = KEYS[1]
local ep = p .. 'ep'
redis.call('ZREM', p .. 'inflight', token)
if probe then redis.call('DEL', p .. 'probe') end
if signal == 'not_sent' then return 1 end
-- demand presses on the rate when reservations reach into the future (a backlog is waiting)
local pressing = tonumber(redis.call('GET', p .. 'tat') or '0') > now
if cap_hint > 0 then redis.call('SET', p .. 'cap', cap_hint, 'EX', 3600) end
local function cooldown(untill)
  local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
  if untill > cool then
    redis.call('SET', p .. 'cool', tostring(untill), 'EX', math.ceil(untill - now) + 60)
    redis.call('INCR', p .. 'gen')
    redis.call('SET', p .. 'tat', tostring(untill), 'EX', 86400)
  end
end
if exhausted_until > now then cooldown(exhausted_until) end
local rate = tonumber(redis.call('GET', p .. 'rate') or initial)
if signal == 'success' or signal == 'other' then
  redis.call('HSET', p .. 'brk', 'fails', 0)
  if tonumber(redis.call('HGET', p .. 'brk', 'open_until') or '0') > 0 then
    redis.call('HDEL', p .. 'brk', 'open_until', 'open_s')
  end
  -- the episode since the last 429: count what the provider let through, note when sending resumed after
  -- its cooldown, and forget it as a measure once the backlog is gone (idle time is not the provider's pace)
  if adaptive then
    local e = redis.call('HMGET', ep, 's', 'c', 'f')
    if e[1] and sent >= tonumber(e[1]) then
      if not pressing then
        redis.call('HSET', ep, 'idle', '1')
      else
        redis.call('HINCRBY', ep, 'n', 1)
        if sent >= tonumber(e[2]) and (not e[3] or sent < tonumber(e[3])) then
          redis.call('HSET', ep, 'f', tostring(sent))
        end
      end
    end
  end
end
if signal == 'success' then
  redis.call('ZADD', p .. 'ok', sent, token)
  redis.call('ZREMRANGEBYSCORE', p .. 'ok', '-inf', now - 60)
  redis.call('EXPIRE', p .. 'ok', 120)
  -- grow only while a backlog presses on the current rate (no inflation while idle); once a 429 has taught
  -- the limit, probe above it slowly (growth per success = growth per second, relative to the rate)
  if adaptive and pressing then
    if redis.call('GET', p .. 'learned') then rate = rate + growth else rate = rate * 1.05 end
    redis.call('SET', p .. 'rate', tostring(math.min(max_rate, rate)), 'EX', 86400)
  end
elseif signal == 'rate_limited' then
  local wait = retry_after
  if wait <= 0 then wait = 1 end
  cooldown(now + wait)
  if not adaptive then return 1 end
  local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
  local e = redis.call('HMGET', ep, 's', 'o', 'n', 'f', 'c', 'idle')
  -- a request sent before the last 429 was answered belongs to that episode: no news about the rate
  if e[2] and sent < tonumber(e[2]) then
    redis.call('HSET', ep, 'c', tostring(cool))
    return 1
  end
  -- Between two 429s (the provider's bucket empty at both) it issued exactly what it let through, give or
  -- take what overflowed while nothing was sent: so the answers sent since the previous 429, over the time
  -- since then less the idle gap between the end of its cooldown and the first send after it, are its rate.
  local estimate = nil
  if e[1] and not e[6] and redis.call('GET', p .. 'learned') then
    local busy = sent - tonumber(e[1])
    if e[4] then busy = busy - math.max(0, tonumber(e[4]) - tonumber(e[5])) end
    estimate = tonumber(e[3] or '0') / math.max(0.5, busy)
  end
  -- Without a previous 429 to measure from, what got through just before this one is about the limit, if
  -- we were sending near our own pace (under light traffic a 429 says little about the rate, and the
  -- cooldown is answer enough). The window spans up to 2 s of activity (or Retry-After, if longer).
  local first = redis.call('ZRANGE', p .. 'ok', 0, 0, 'WITHSCORES')
  local active = 1
  if first[2] then active = sent - tonumber(first[2]) end
  local window = math.max(1, math.min(60, math.max(wait, math.min(2, active))))
  local observed = redis.call('ZCOUNT', p .. 'ok', sent - window, sent) / window
  if pressing or observed >= 0.5 * rate then
    local new
    if estimate then
      new = math.max(0.5 * rate, math.min(rate, estimate * (1 + margin)))
    else
      new = math.min(rate * 0.9, 0.95 * observed)
    end
    redis.call('SET', p .. 'rate', tostring(math.max(min_rate, new)), 'EX', 86400)
    redis.call('SET', p .. 'learned', '1', 'EX', 86400)
  end
  redis.call('DEL', ep)
  redis.call('HSET', ep, 's', tostring(sent), 'o', tostring(now), 'n', 0, 'c', tostring(cool))
  redis.call('EXPIRE', ep, 86400)
elseif signal == 'unavailable' then
  local fails = redis.call('HINCRBY', p .. 'brk', 'fails', 1)
  if probe or fails >= threshold then
    local open_s = tonumber(redis.call('HGET', p .. 'brk', 'open_s') or '0')
    if open_s <= 0 then open_s = open_base elseif probe then open_s = math.min(open_max, open_s * 2) end
    redis.call('HSET', p .. 'brk', 'open_until', tostring(now + open_s), 'open_s', tostring(open_s))
    redis.call('EXPIRE', p .. 'brk', 86400)
  end
end
return 1
"""


@dataclass(frozen=True)
class AdaptiveParams:
    """Tuning of the adaptive rate and the circuit breaker."""

    #: optimistic on purpose: reservations made at a pace that is too fast are voided by the first 429
    #: (which bumps the generation); reservations made too slowly could only be honoured, never sped up
    initial_rate: float = 50.0
    min_rate: float = 1.0
    max_rate: float = 500.0
    #: a reservation this close is not worth a deferral: send now
    burst_s: float = 0.05
    #: actual sends are paced by a token bucket holding this many seconds' worth of the rate
    send_burst_s: float = 0.2
    lease_s: float = 60.0
    #: once a 429 has been measured, the rate is set this much above the pace the provider let through
    #: (overshooting a little costs one 429 now and then; undershooting costs throughput all the time)
    learned_margin: float = 0.03
    #: growth per second while a backlog presses, as a share of the rate, once the limit has been learned
    #: (before, the rate grows 5 % per success)
    learned_growth: float = 0.003
    breaker_threshold: int = 5
    breaker_open_s: float = 15.0
    breaker_open_max_s: float = 300.0


class RedisLimiter:
    """The shared limiter; one instance per process, thread-safe (redis-py pools connections)."""

    def __init__(self, client: redis.Redis, params: AdaptiveParams | None = None) -> None:
        self._client = client
        self._params = params or AdaptiveParams()
        self._gate = client.register_script(_GATE)
        self._observe = client.register_script(_OBSERVE)

    def gate(self, key: str, spec: LimitSpec, submission_id: str) -> Gate:
        """One atomic decision: cooldown → breaker → concurrency → rate (reserving a slot)."""
        now = time.time()
        token = f"{uuid.uuid4().hex}@{now:.6f}"  # when it was let through: observe() dates the answer by it
        p = self._params
        verdict, wait = self._gate(
            keys=[_prefix(key)],
            args=[now, spec.rate_per_s or 0, p.initial_rate, spec.concurrency or 0, p.lease_s, token,
                  p.burst_s, submission_id, p.send_burst_s],
        )  # fmt: skip
        return Gate(Wait(_text(verdict)), float(_text(wait)), token)

    def observe(self, key: str, spec: LimitSpec, gate: Gate, signal: Signal, hints: Hints) -> None:
        """Release the slot; learn cooldowns, the adaptive rate and the breaker state."""
        p = self._params
        now = time.time()
        self._observe(
            keys=[_prefix(key)],
            args=[now, signal.value, gate.token, "1" if gate.verdict is Wait.PROBE else "0",
                  "1" if spec.adaptive else "0", p.initial_rate, p.min_rate, p.max_rate,
                  hints.retry_after_s if hints.retry_after_s is not None else -1,
                  hints.exhausted_until or 0, hints.concurrency_limit or 0,
                  p.breaker_threshold, p.breaker_open_s, p.breaker_open_max_s,
                  _sent_at(gate.token, now), p.learned_margin, p.learned_growth],
        )  # fmt: skip

    def snapshot(self) -> list[dict[str, Any]]:
        """Per-key state for operators: rate, cooldown, breaker, in flight."""
        now = time.time()
        keys = sorted({k.decode().rsplit(":", 1)[0] for k in self._client.scan_iter("applyq:lim:*:tat")})
        return [self._describe(k.removeprefix("applyq:lim:"), now) for k in keys]

    def _describe(self, key: str, now: float) -> dict[str, Any]:
        p = _prefix(key)
        get = self._client.get
        cool = float(get(p + "cool") or 0)
        open_until = float(self._client.hget(p + "brk", "open_until") or 0)
        rate = get(p + "rate")
        return {
            "key": key,
            "adaptive_rate_per_s": round(float(rate), 2) if rate else None,
            "cooldown_s": round(cool - now, 2) if cool > now else 0.0,
            "breaker": "open" if open_until > now else "half-open" if open_until else "closed",
            "in_flight": self._client.zcount(p + "inflight", now, "+inf"),
            "backlog_s": round(max(0.0, float(get(p + "tat") or 0) - now), 2),
        }


def _prefix(key: str) -> str:
    return f"applyq:lim:{key}:"


def _sent_at(token: str, default: float) -> float:
    """When the gate let the request through, from its token (``default`` for a token without a time)."""
    _, at, stamp = token.rpartition("@")
    try:
        return min(float(stamp), default) if at else default
    except ValueError:
        return default


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_client(broker_url: str) -> redis.Redis:
    """A redis-py client for a Celery broker URL (``redis://…`` or kombu's ``redis+socket://path``)."""
    if broker_url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=broker_url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(broker_url)
