"""Group commit: each caller gets its own result; a batch's error reaches every caller of that batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from worker.runtime.coalesce import Coalescer


def test_each_caller_gets_its_own_result_and_waiting_callers_share_a_batch() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        release.wait(5)
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(run, "test")
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(coalescer.submit, 0)
        while not batches:  # the first batch is running: the next five callers wait for it together
            threading.Event().wait(0.01)
        rest = [pool.submit(coalescer.submit, n) for n in range(1, 6)]
        threading.Event().wait(0.1)
        release.set()
        assert [first.result(5)] + [f.result(5) for f in rest] == [0, 10, 20, 30, 40, 50]
    assert batches[0] == [0] and sorted(batches[1]) == [1, 2, 3, 4, 5]


def test_an_error_reaches_every_caller_of_its_batch_and_later_batches_still_run() -> None:
    def run(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("database unreachable")
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(run, "test")
    with pytest.raises(RuntimeError, match="unreachable"):
        coalescer.submit(13)
    assert coalescer.submit(7) == 7
