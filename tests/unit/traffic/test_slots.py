"""Waiting for a concurrency slot in the thread: woken by our own releases, polling for the others', bounded."""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest

from worker.traffic.limiter import Gate, Wait
from worker.traffic.slots import SlotWaits, _Waiter

FULL = Gate(Wait.CONCURRENCY, 0.2)
GO = Gate(Wait.GO)


class Slots:
    """A key with ``free`` slots; asking takes one if there is one."""

    def __init__(self, free: int = 0) -> None:
        self.free = free
        self.asked = 0
        self._lock = threading.Lock()

    def ask(self) -> Gate:
        with self._lock:
            self.asked += 1
            if self.free > 0:
                self.free -= 1
                return GO
            return FULL


def test_a_release_here_wakes_the_longest_waiter_at_once() -> None:
    waits, slots = SlotWaits(poll_s=10.0), Slots()
    got: list[Gate] = []
    thread = threading.Thread(target=lambda: got.append(waits.acquire("k", slots.ask, FULL, 5.0)))
    thread.start()
    while waits.waiting("k") == 0:
        time.sleep(0.001)
    started = time.monotonic()
    slots.free = 1
    waits.freed("k")
    thread.join(timeout=5)
    assert got == [GO]
    assert time.monotonic() - started < 1.0  # woken, not polled (the poll is 10 s)
    assert waits.waiting("k") == 0


def test_the_first_waiter_polls_for_slots_freed_by_other_processes() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    got: list[Gate] = []
    thread = threading.Thread(target=lambda: got.append(waits.acquire("k", slots.ask, FULL, 5.0)))
    thread.start()
    time.sleep(0.05)
    slots.free = 1  # freed elsewhere: nobody here calls freed()
    thread.join(timeout=5)
    assert got == [GO]


def test_the_wait_is_bounded_and_answers_the_last_verdict() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    assert waits.acquire("k", slots.ask, FULL, 0.05) == FULL
    assert slots.asked >= 1
    assert waits.waiting("k") == 0


def test_other_verdicts_and_a_zero_budget_do_not_wait() -> None:
    waits, slots = SlotWaits(), Slots()
    assert waits.acquire("k", slots.ask, Gate(Wait.RESERVED, 2.0), 5.0).verdict is Wait.RESERVED
    assert waits.acquire("k", slots.ask, FULL, 0.0) == FULL
    assert slots.asked == 0


def test_only_the_first_waiter_asks_redis_while_nothing_is_freed() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    threads = [threading.Thread(target=waits.acquire, args=("k", slots.ask, FULL, 0.2)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert slots.asked < 8 * 20 / 2  # eight polling waiters would ask ~160 times


def _waiting(waits: SlotWaits, budget_s: float = 5.0) -> tuple[threading.Thread, list[Gate], Slots]:
    """One turn waiting for a slot of "k" (as submission "s1"), its answers, and the key it asks itself."""
    slots, got = Slots(), []
    thread = threading.Thread(target=lambda: got.append(waits.acquire("k", slots.ask, FULL, budget_s, "s1")))
    thread.start()
    while waits.waiting("k") == 0:
        time.sleep(0.001)
    return thread, got, slots


def test_a_release_hands_the_slot_to_the_longest_waiter_in_the_same_call() -> None:
    # Given a turn waiting for a slot (its own polls far apart)
    waits = SlotWaits(poll_s=10.0)
    thread, got, slots = _waiting(waits)
    asked_for: list[str | None] = []

    def release(waiting: str | None) -> Gate:
        asked_for.append(waiting)
        return GO  # the slot given back and taken again for the waiter, in one round trip

    # When a request of this process is answered
    waits.hand_over("k", release)
    thread.join(timeout=5)
    # Then the waiter has the slot without asking the gate itself
    assert (asked_for, got, slots.asked) == (["s1"], [GO], 0)
    assert waits.waiting("k") == 0


def test_a_release_with_nobody_waiting_asks_for_no_one() -> None:
    waits, asked_for = SlotWaits(), []
    waits.hand_over("k", lambda waiting: asked_for.append(waiting))  # type: ignore[func-returns-value]
    assert asked_for == [None]


def test_a_failed_hand_over_leaves_the_waiter_to_ask_for_itself() -> None:
    waits = SlotWaits(poll_s=10.0)
    thread, got, slots = _waiting(waits)
    slots.free = 1

    def broken(waiting: str | None) -> Gate:
        raise ConnectionError("redis is gone")

    with pytest.raises(ConnectionError):
        waits.hand_over("k", broken)
    thread.join(timeout=5)
    assert (got, slots.asked) == ([GO], 1)


def test_a_slot_handed_over_as_the_wait_runs_out_is_taken_not_leaked() -> None:
    # Given a waiter whose budget runs out while a hand-over to it is on its way
    waits = SlotWaits(poll_s=10.0)
    thread, got, slots = _waiting(waits, budget_s=0.05)
    arrived = threading.Event()

    def slow(waiting: str | None) -> Gate:
        time.sleep(0.2)  # the round trip outlasts the waiter's budget
        arrived.set()
        return GO

    waits.hand_over("k", slow)
    thread.join(timeout=5)
    # Then it leaves with the slot that was handed over (a slot nobody uses would be held until its lease ends)
    assert arrived.is_set() and got == [GO] and slots.asked == 0


def test_a_waiter_holding_a_slot_not_yet_taken_is_handed_no_second_one() -> None:
    # Given a waiter that was handed a slot and has not woken up to take it yet
    waits = SlotWaits()
    waiter = _Waiter("s1")
    waits._waiters["k"] = deque([waiter])
    asked_for: list[str | None] = []

    def release(waiting: str | None) -> Gate | None:
        asked_for.append(waiting)
        return GO if waiting else None

    waits.hand_over("k", release)
    # When another request is answered before it wakes
    waits.hand_over("k", release)
    # Then that slot is only given back: a second one handed over would overwrite the first, held by nobody
    assert asked_for == ["s1", None]
    assert waiter.given == GO


def test_leaving_the_line_tells_the_turn_pool() -> None:
    # the pool gives a key whose line is long no more threads, until a waiter leaves
    left: list[int] = []
    waits, slots = SlotWaits(poll_s=0.01, left=lambda: left.append(waits.waiting("k"))), Slots()
    assert waits.acquire("k", slots.ask, FULL, 0.03) == FULL
    assert left == [0]  # told once the turn was out of the line
