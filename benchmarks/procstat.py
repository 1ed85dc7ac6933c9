"""Process and Redis memory readings for the benchmarks (Linux ``/proc``)."""

from __future__ import annotations

from pathlib import Path

import redis


def rss_mb(pid: int) -> float:
    """Resident set size of one process and its children, in MB."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{candidate}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    kids = [int(x) for x in text.split()]
    return kids + [grandchild for kid in kids for grandchild in _children(kid)]


def redis_used_mb(url: str) -> float:
    """Redis ``used_memory`` in MB (the whole server)."""
    return round(int(redis.Redis.from_url(url).info("memory")["used_memory"]) / 1024 / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
