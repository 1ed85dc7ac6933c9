"""The turn pool: round-robin across keys, so a quiet key's turn does not queue behind a busy key's burst."""

from __future__ import annotations

import threading

import pytest

from worker.runtime.fairpool import FairPool


def test_a_quiet_keys_turn_runs_before_a_busy_keys_backlog() -> None:
    pool = FairPool(1, "test")
    gate, running = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:
        running.set()
        gate.wait()

    first = pool.submit("busy", hold)  # holds the only thread
    assert running.wait(timeout=5)
    busy = [pool.submit("busy", order.append, f"busy-{n}") for n in range(5)]
    quiet = pool.submit("quiet", order.append, "quiet")
    gate.set()
    for future in [first, *busy, quiet]:
        future.result(timeout=5)
    assert order[:2] == ["busy-0", "quiet"]  # the next thread to free went to the other key
    assert order[2:] == ["busy-1", "busy-2", "busy-3", "busy-4"]  # a key's own turns keep their order


def test_results_and_errors_reach_the_futures() -> None:
    pool = FairPool(2, "test")

    def fail() -> None:
        raise ValueError("boom")

    assert pool.submit("k", lambda x: x * 2, 21).result(timeout=5) == 42
    with pytest.raises(ValueError, match="boom"):
        pool.submit("k", fail).result(timeout=5)


def test_threads_start_only_as_work_needs_them() -> None:
    pool = FairPool(8, "test")
    for _ in range(20):
        pool.submit("k", lambda: None).result(timeout=5)  # one at a time: one thread is enough
    assert len(pool._threads) == 1


def test_a_key_without_room_gets_no_thread_until_the_pool_is_nudged() -> None:
    # Given a key whose slots are full (its turns would only wait in their threads) and a quiet key
    room = {"full": False, "quiet": True}
    pool = FairPool(4, "test", ready=lambda key: room[key], recheck_s=60.0)
    ran: list[str] = []
    full = pool.submit("full", ran.append, "full")
    # When both have a turn queued, the quiet key's runs and the full key's keeps its place
    pool.submit("quiet", ran.append, "quiet").result(timeout=5)
    assert not full.done() and ran == ["quiet"]
    # Then once a waiter of the full key leaves and the pool is told, its turn runs
    room["full"] = True
    pool.nudge()
    full.result(timeout=5)
    assert ran == ["quiet", "full"]


def test_a_key_without_room_is_looked_at_again_without_a_nudge() -> None:
    room = {"k": False}
    pool = FairPool(1, "test", ready=lambda key: room[key], recheck_s=0.01)
    turn = pool.submit("k", lambda: "ran")
    room["k"] = True  # nobody nudges: the idle thread looks again after recheck_s
    assert turn.result(timeout=5) == "ran"
