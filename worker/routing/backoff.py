"""Retry delays: exponential backoff with full jitter, floored by the provider's ``Retry-After``."""

from __future__ import annotations

__all__ = ["full_jitter", "retry_delay"]


def full_jitter(attempt: int, *, base_s: float, max_s: float, rand: float) -> float:
    """``rand * min(max_s, base_s * 2**(attempt-1))``: AWS "full jitter"; ``rand`` in [0, 1)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if not 0.0 <= rand < 1.0:
        raise ValueError("rand must be in [0, 1)")
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 64))
    return rand * ceiling


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    rand: float,
    retry_after_s: float | None = None,
    floor_s: float = 0.0,
) -> float:
    """Seconds to wait before the next attempt; never less than ``retry_after_s`` or ``floor_s``."""
    jittered = full_jitter(attempt, base_s=base_s, max_s=max_s, rand=rand)
    return max(jittered, retry_after_s or 0.0, floor_s)
