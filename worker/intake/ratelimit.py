"""Request limits of ``applyq api``, counted in Redis so that every API process shares them.

Fixed windows (the counter is created with its expiry on the first request, then incremented; ``Retry-After``
is what is left of the window): one MULTI/EXEC round trip per request, whatever the verdict, and the time
comes from Redis, so API processes with different clocks count the same windows.

* per bearer token and per client address: ``APPLYQ_API_RATE_LIMIT`` each;
* per client address, requests with a missing or wrong token: ``APPLYQ_API_AUTH_FAILURE_LIMIT``. Past it,
  every request from the address gets 429, a valid token's too: otherwise a guesser would still tell a
  right guess (not 429) from a wrong one.

Keys: ``applyq:api:{queue}:{fail|addr|token}:{name}``; tokens are named by a hash, never by their value.
If Redis cannot be reached the request is let through (the database, not Redis, decides what is stored)
and a warning is logged, at most once a minute.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from worker.config import parse_window

__all__ = ["RedisRequestLimiter", "RequestLimiter", "Verdict", "Window", "async_redis_client"]

log = logging.getLogger("applyq.api")


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` requests per ``seconds``."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"1200/min"`` → 1200 per 60 s (checked when the settings were read)."""
        count, seconds = parse_window(text)
        return cls(max(1, int(count)), seconds)

    @property
    def ms(self) -> int:
        """The window in milliseconds (Redis ``PX``)."""
        return max(1, round(self.seconds * 1000))


@dataclass(frozen=True, slots=True)
class Verdict:
    """May the request go on? If not, when to try again (whole seconds, for ``Retry-After``)."""

    allowed: bool
    retry_after_s: int = 0


class RequestLimiter(Protocol):
    """Counts a request against its address's and its token's windows."""

    async def admit(self, address: str, token_name: str | None) -> Verdict:
        """Count one request from ``address`` with the token named ``token_name`` (None: no valid token)."""


class RedisRequestLimiter:
    """The shared limiter over a ``redis.asyncio`` client (fakeredis in unit tests)."""

    def __init__(self, client: redis.asyncio.Redis, *, rate: Window, auth_failures: Window, namespace: str) -> None:
        self._client = client
        self._rate = rate
        self._failures = auth_failures
        self._prefix = f"applyq:api:{namespace}:"
        self._warned_at = -math.inf

    async def admit(self, address: str, token_name: str | None) -> Verdict:
        """One round trip: a failed token counts against the address's failures; a valid one against its
        own window and the address's, after a check that the address has not used up its failures."""
        failures = self._prefix + "fail:" + address
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if token_name is None:
                    _count(pipe, failures, self._failures)
                else:
                    pipe.get(failures)
                    pipe.pttl(failures)
                    _count(pipe, self._prefix + "addr:" + address, self._rate)
                    _count(pipe, self._prefix + "token:" + token_name, self._rate)
                results = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._warn(exc)
            return Verdict(True)
        if token_name is None:
            return _verdict(results[0:3], self._failures)
        if int(results[0] or 0) > self._failures.count:
            return Verdict(False, _seconds(results[1]))
        return _verdict(results[2:5], self._rate, _verdict(results[5:8], self._rate))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()  # only paces this warning; no limit depends on it
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("API rate limits not applied: Redis unreachable", extra={"error_type": type(exc).__name__})


def _count(pipe: Any, key: str, window: Window) -> None:
    """Start the window on the first request (value 0, expiry), then count this one; read what is left."""
    pipe.set(key, 0, px=window.ms, nx=True)
    pipe.incr(key)
    pipe.pttl(key)


def _verdict(counted: list[Any], window: Window, otherwise: Verdict | None = None) -> Verdict:
    """Refused once the window's count is passed; else ``otherwise`` (another window's verdict) or allowed."""
    _, count, ttl_ms = counted
    if int(count) > window.count:
        return Verdict(False, _seconds(ttl_ms))
    return otherwise or Verdict(True)


def _seconds(ttl_ms: Any) -> int:
    """``Retry-After`` for a key's remaining life: whole seconds, at least 1."""
    return max(1, math.ceil(int(ttl_ms or 0) / 1000))


def async_redis_client(broker_url: str) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for a Celery broker URL (``redis://…`` or kombu's ``redis+socket://path``).

    It gives up fast (one retry, one-second timeouts): with Redis away, requests go on unlimited rather
    than wait for it.
    """
    options: dict[str, Any] = {"socket_timeout": 1, "socket_connect_timeout": 1, "retry": Retry(NoBackoff(), 1)}
    if broker_url.startswith("redis+socket://"):
        return redis.asyncio.Redis(unix_socket_path=broker_url.removeprefix("redis+socket://"), **options)
    return redis.asyncio.Redis.from_url(broker_url, **options)
