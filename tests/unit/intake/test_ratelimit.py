"""The API's request limits over fakeredis: fixed windows per token and address, failures per address."""

from __future__ import annotations

import logging

import fakeredis
import pytest
import redis.asyncio

from worker.intake.ratelimit import RedisRequestLimiter, Verdict, Window, async_redis_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client() -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis()


def limiter(client: redis.asyncio.Redis, rate: str = "3/min", auth_failures: str = "2/10min") -> RedisRequestLimiter:
    return RedisRequestLimiter(
        client, rate=Window.parse(rate), auth_failures=Window.parse(auth_failures), namespace="q"
    )


def test_windows_are_read_from_the_rate_syntax() -> None:
    assert Window.parse("1200/min") == Window(1200, 60.0)
    assert Window.parse("20/10min") == Window(20, 600.0)
    assert Window.parse("0.5/s") == Window(1, 1.0)


async def test_a_token_gets_its_count_per_window_then_429_until_the_window_ends(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    limits = limiter(client)
    verdicts = [await limits.admit(f"10.0.0.{n}", "t1") for n in range(4)]  # four addresses, one token
    assert verdicts[:3] == [Verdict(True)] * 3
    assert not verdicts[3].allowed
    assert 59 <= verdicts[3].retry_after_s <= 60
    assert (await limits.admit("10.0.0.9", "t2")).allowed  # another token has its own window


async def test_an_address_gets_its_count_whatever_the_tokens(client: fakeredis.FakeAsyncRedis) -> None:
    limits = limiter(client)
    verdicts = [await limits.admit("10.0.0.1", f"t{n}") for n in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]


async def test_failed_tokens_lock_the_address_out_even_for_a_valid_token(client: fakeredis.FakeAsyncRedis) -> None:
    limits = limiter(client)
    guesses = [await limits.admit("10.0.0.1", None) for _ in range(3)]
    assert [g.allowed for g in guesses] == [True, True, False]  # allowed here means: answered 401
    assert 599 <= guesses[2].retry_after_s <= 600
    locked = await limits.admit("10.0.0.1", "t1")
    assert (locked.allowed, locked.retry_after_s > 500) == (False, True)  # a right guess looks like a wrong one
    assert (await limits.admit("10.0.0.2", "t1")).allowed  # other addresses are not affected


async def test_failures_up_to_the_limit_do_not_lock_a_valid_token_out(client: fakeredis.FakeAsyncRedis) -> None:
    limits = limiter(client)
    for _ in range(2):
        await limits.admit("10.0.0.1", None)
    assert (await limits.admit("10.0.0.1", "t1")).allowed


async def test_a_new_window_starts_when_the_old_one_expires(client: fakeredis.FakeAsyncRedis) -> None:
    limits = limiter(client, rate="1/min")
    assert (await limits.admit("10.0.0.1", "t1")).allowed
    assert not (await limits.admit("10.0.0.1", "t1")).allowed
    await client.delete(*await client.keys("applyq:api:q:*"))  # what the expiry does, without waiting for it
    assert (await limits.admit("10.0.0.1", "t1")).allowed


async def test_keys_name_the_namespace_and_never_hold_more_than_counters(client: fakeredis.FakeAsyncRedis) -> None:
    limits = limiter(client)
    await limits.admit("10.0.0.1", "t1")
    await limits.admit("10.0.0.1", None)
    keys = sorted(k.decode() for k in await client.keys("*"))
    assert keys == ["applyq:api:q:addr:10.0.0.1", "applyq:api:q:fail:10.0.0.1", "applyq:api:q:token:t1"]
    assert all([await client.pttl(k) > 0 for k in keys])


async def test_without_redis_requests_go_through_and_one_warning_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = async_redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    limits = limiter(unreachable)
    with caplog.at_level(logging.WARNING, logger="applyq.api"):
        verdicts = [await limits.admit("10.0.0.1", None) for _ in range(3)]
    await unreachable.aclose()
    assert verdicts == [Verdict(True)] * 3
    assert [r.getMessage() for r in caplog.records] == ["API rate limits not applied: Redis unreachable"]
