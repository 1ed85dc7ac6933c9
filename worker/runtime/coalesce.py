"""Group commit: many threads' small database writes run as one statement per kind, in one transaction.

A worker process runs dozens of attempts at once; each claims a lease before its HTTP call and records the
answer after it. ``Coalescer.submit`` hands an item to a background thread that runs everything waiting
as one batch and hands each caller its own result. Nothing waits on purpose: when the process is idle a
batch is one item, and batches grow by themselves when the database is busy, which is when it helps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``run(items) -> results`` (one result per item, in order) for whatever callers are waiting."""

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R]], name: str, *, max_batch: int = 256) -> None:
        self._run = run
        self._name = name
        self._max_batch = max_batch
        self._pending: list[tuple[T, Future[R]]] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise the batch's error)."""
        return self.enqueue(item).result()

    def enqueue(self, item: T) -> Future[R]:
        """Run ``item`` in the next batch; its future gets the result (or the batch's error)."""
        future: Future[R] = Future()
        with self._ready:
            self._pending.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"applyq-{self._name}", daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _loop(self) -> None:
        """Run batches while there is work; exit after a second without any (``submit`` starts a new one)."""
        while True:
            with self._ready:
                if not self._pending and not self._ready.wait_for(lambda: bool(self._pending), timeout=1.0):
                    self._thread = None
                    return
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._run([item for item, _ in batch])
        except BaseException as exc:  # every caller of the batch sees the error
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
