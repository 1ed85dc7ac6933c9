"""This process's wall clock, for times no other process compares (tests inject their own callable).

Which clock decides what, one per concern (docs/durability.md, "One clock"): leases, due times, deferrals and
heartbeats are the database's (``worker/db/clock.py``), because another worker or host compares them; limits,
cooldowns and reservations are Redis's (``TIME`` in ``worker/traffic/lua/``); timeouts and sleeps are the
monotonic clock. What is left here: the time of a record written by the process that makes it (a submission's
creation, an operator's action, SQLite's ``now``, which runs inside this process).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
