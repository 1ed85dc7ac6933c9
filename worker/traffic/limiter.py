"""Shared traffic control in Redis: rate (GCRA with reservations), concurrency cap, cooldown, circuit breaker.

Every worker process on every host asks the same Redis keys, in one Lua script per decision, so a limit
holds across all of them. A submission the gate holds back is *deferred* in the database (no attempt, no
worker slot): for a rate limit it gets a reserved slot in the future, so a backlog is spread evenly instead
of stampeding back; a 429 bumps the key's generation, voiding reservations made at the old pace, and the
submissions that ask during its cooldown get their turns after it, at the rate.

An adaptive key (no configured rate) learns its rate from 429s. It starts optimistic and measures the
provider's pace at each 429, taking the provider for a token bucket that holds about a Retry-After's worth:
the bucket is empty at a 429, full again a Retry-After later (or full when a backlog began to press), so
what got through between two such moments, over the time between them less the time the bucket spent full
because our sends lagged behind, is its rate. The rate is set a little above that, and grows slowly while
a backlog presses and no 429 comes (faster the longer none comes). The 429s of requests already on their
way when the first one was answered belong to the same episode and teach nothing more.

Keys (``applyq:lim:{key}:…``): ``tat`` (theoretical arrival time), ``gen``, ``rate`` (adaptive), ``cool``
(cooldown until), ``inflight`` (zset token → lease expiry), ``cap`` (learned concurrency), ``brk`` (hash:
fails, open_until, open_s), ``probe``, ``send`` (send pacing), ``res:{submission}``; adaptive only:
``sent`` (zset of the last minute's sends, less those answered 429), ``ep`` (hash: the running measure of
the provider's pace, since the last 429 or since a backlog began to press) and ``learned``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis

from worker.config import LimitSpec

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
if cool > now then
  -- the waiters get their turns after the cooldown now, so that they come back spread at the rate
  -- instead of all at once (a reservation kept from before is still good if the generation is)
  local gen = redis.call('GET', p .. 'gen') or '0'
  local res = redis.call('HMGET', res_key, 'gen', 'slot')
  if res[1] == gen and res[2] then return {'cooldown', tostring(math.max(cool, tonumber(res[2])) - now)} end
  local rate = cfg_rate
  if rate <= 0 then rate = tonumber(redis.call('GET', p .. 'rate') or initial) end
  local slot = math.max(cool, tonumber(redis.call('GET', p .. 'tat') or '0'))
  redis.call('SET', p .. 'tat', tostring(slot + 1 / rate), 'EX', 86400)
  redis.call('HSET', res_key, 'gen', gen, 'slot', tostring(slot))
  redis.call('EXPIRE', res_key, math.ceil(slot - now) + 300)
  return {'cooldown', tostring(slot - now)}
end
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
if cfg_rate <= 0 then
  -- the adaptive rate learns from the sends of the last minute; a backlog pressing on the rate opens a
  -- measure of the provider's pace (see _OBSERVE) if none is running
  redis.call('ZADD', p .. 'sent', now, token)
  redis.call('ZREMRANGEBYSCORE', p .. 'sent', '-inf', now - 60)
  redis.call('EXPIRE', p .. 'sent', 120)
  if tonumber(redis.call('GET', p .. 'tat') or '0') > now and redis.call('EXISTS', p .. 'ep') == 0 then
    redis.call('HSET', p .. 'ep', 's', tostring(now), 'full', tostring(now), 'g', tostring(now))
    redis.call('EXPIRE', p .. 'ep', 86400)
  end
end
if probe then return {'probe', '0'} end
return {'go', '0'}
"""

_OBSERVE = """
local now, signal, token, probe = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4] == '1'
local adaptive, initial, min_rate, max_rate = ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local retry_after, exhausted_until, cap_hint = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local threshold, open_base, open_max = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local sent, margin, growth, growth_s = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
local p = KEYS[1]
local ep = p .. 'ep'
redis.call('ZREM', p .. 'inflight', token)
if probe then redis.call('DEL', p .. 'probe') end
-- the log of sends keeps those the provider let through (or may have): not what went unsent or got a 429
if signal == 'not_sent' or signal == 'rate_limited' then redis.call('ZREM', p .. 'sent', token) end
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
  -- what the provider let through counts towards the running measure of its pace; idle time is not its
  -- pace, so the measure ends with the backlog
  if adaptive then redis.call('ZADD', p .. 'sent', 'NX', sent, token) end
  if adaptive and not pressing then
    redis.call('DEL', ep)
  elseif adaptive and sent >= tonumber(redis.call('HGET', ep, 's') or '1e300') then
    redis.call('HINCRBY', ep, 'n', 1)
  end
end
if signal == 'success' and adaptive and pressing then
  -- grow only while a backlog presses on the current rate (no inflation while idle)
  if redis.call('GET', p .. 'learned') then
    -- a 429 has taught the limit: probe above it slowly at first, faster the longer no 429 comes
    local since = now - tonumber(redis.call('HGET', ep, 'g') or now)
    rate = rate + growth * 2 ^ math.min(5, math.max(0, since) / growth_s)
  else
    -- slow start, but never far ahead of what was actually sent in the last second
    local got = redis.call('ZCOUNT', p .. 'sent', sent - 1, sent)
    rate = math.max(rate, math.min(rate * 1.05, 2 * got))
  end
  redis.call('SET', p .. 'rate', tostring(math.min(max_rate, rate)), 'EX', 86400)
elseif signal == 'rate_limited' then
  local wait = retry_after
  if wait <= 0 then wait = 1 end
  local e = redis.call('HMGET', ep, 's', 'o', 'full', 'w', 'n')
  local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
  if e[2] and sent < tonumber(e[2]) then
    -- sent before the last 429 was answered: the same episode, no news about the rate. Its Retry-After
    -- holds, but while that cooldown lasts, the turns already handed out for after it stand.
    if cool <= now then
      cooldown(now + wait)
    elseif now + wait > cool then
      redis.call('SET', p .. 'cool', tostring(now + wait), 'EX', math.ceil(wait) + 60)
    end
    return 1
  end
  cooldown(now + wait)
  -- under light traffic a 429 says little about the rate, and the cooldown is answer enough
  if adaptive and (pressing or redis.call('ZCOUNT', p .. 'sent', sent - 1, sent) >= 0.5 * rate) then
    -- The provider is taken for a token bucket holding about a Retry-After's worth. It is empty now; it
    -- was empty at the last 429 (and full again a Retry-After later) or full when the backlog began to
    -- press. So what it let through since then (the sends before this one) is its rate times the time
    -- since it was last full plus a Retry-After, less the time it spent full, overflowing, because our
    -- sends lagged behind its refill (after a cooldown, or when the workers could not keep up).
    local estimate = nil
    if e[3] then
      local full = tonumber(e[3])
      local span = sent - full + tonumber(e[4] or wait)
      -- (the answers so far miss those still on their way; the sends before this one miss those sent
      -- a little later that overtook it: take the larger)
      local n = math.max(tonumber(e[5] or '0'), redis.call('ZCOUNT', p .. 'sent', e[1], '(' .. sent))
      local times = redis.call('ZRANGEBYSCORE', p .. 'sent', full, '(' .. sent, 'WITHSCORES', 'LIMIT', 0, 5000)
      if n > 0 then
        estimate = n / span
        for _ = 1, 3 do
          local lag = 0
          for i = 2, #times, 2 do lag = math.max(lag, (tonumber(times[i]) - full) - (i / 2 - 1) / estimate) end
          estimate = n / math.max(0.5, span - lag)
        end
      end
    end
    if estimate then
      rate = math.min(rate, estimate * (1 + margin))
    else
      -- nothing measured: what was sent in the last second is about the limit
      rate = math.min(rate * 0.9, math.max(rate * 0.5, redis.call('ZCOUNT', p .. 'sent', sent - 1, sent)))
    end
    redis.call('SET', p .. 'rate', tostring(math.max(min_rate, rate)), 'EX', 86400)
    redis.call('SET', p .. 'learned', '1', 'EX', 86400)
  end
  -- a new measure from this 429: the provider's bucket is full again a Retry-After from now
  redis.call('DEL', ep)
  redis.call('HSET', ep, 's', tostring(sent), 'o', tostring(now), 'g', tostring(now), 'w', tostring(wait))
  redis.call('HSET', ep, 'full', tostring(sent + wait))
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
    #: at a 429 the rate is set this much above the pace the provider was measured to let through: a
    #: little too fast costs a 429 now and then, while a backlog reserved too slowly stays too slow
    learned_margin: float = 0.03
    #: once a 429 has taught the limit, the rate grows by this share per second while a backlog presses
    #: (before, slow start: 5 % per success, up to twice what was sent in the last second)
    learned_growth: float = 0.003
    #: ... and that growth doubles for every so many seconds without a 429 (up to 32-fold)
    learned_growth_s: float = 10.0
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
                  _sent_at(gate.token, now), p.learned_margin, p.learned_growth, p.learned_growth_s,],
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
