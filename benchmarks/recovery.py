"""Recovery after a 429 storm on the adaptive rate: applyq's limiter scripts on Redis, on a simulated clock.

    python -m benchmarks.recovery [--storm-limit 20] [--after-limit 40] [--storm-s 60] [--after-s 300]

One Kombo integration on applyq's defaults (adaptive rate, 30 in flight) with a backlog that never runs out.
Its provider is the sandbox's token bucket (one second's worth): ``--storm-limit`` per second for ``--storm-s``
(a 429 storm: the guessed 50/s is too fast), then ``--after-limit`` (the limit lifted). The sender asks the
limiter before every send, as a worker thread does, sends whenever it may (answers 50 ms later), and tells
the limiter every answer. Prints how fast the storm's limit was learnt, how many calls were answered 429,
and how the rate grew back once the limit was lifted: the rate at moments after the storm and when it
first reached 90 % of the new limit.

Simulated (the limiter's test clock): minutes in a few seconds, no worker and no HTTP; what it measures is
the rate rule, not throughput.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import types
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks.stack import REDIS_URL
from worker.local.sandbox.state import SandboxState
from worker.states import Provider
from worker.traffic.limiter import AdaptiveParams, Gate, Hints, RedisLimiter, Signal, Wait
from worker.traffic.limits import VENDOR_DEFAULTS

#: the seconds after the storm at which the rate is reported
MOMENTS_S = (0, 10, 30, 60, 120, 240)
LATENCY_S = 0.05
RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Storm:
    """The provider's limit during the storm and after it, and how long each lasts (simulated seconds)."""

    storm_limit: float = 20.0
    after_limit: float = 40.0
    storm_s: float = 60.0
    after_s: float = 300.0


@dataclass
class Recovery:
    """What the simulated run saw."""

    storm: dict[str, float]
    #: seconds from the first 429 until the rate was within 10 % of the storm's limit
    learnt_in_s: float | None
    storm_calls: int
    storm_429_share: float
    after_calls: int
    after_429_share: float
    #: the rate applyq held at each moment after the storm (seconds after it: requests/s)
    rate_after: dict[int, float] = field(default_factory=dict)
    #: seconds after the storm until the rate first reached 90 % of the lifted limit (None: not within the run)
    recovered_90_in_s: float | None = None


def simulate(storm: Storm, client: redis.Redis) -> Recovery:
    """Run the storm and the time after it on a simulated clock; the figures."""
    clock = types.SimpleNamespace(now=1_000_000.0)
    limiter = RedisLimiter(client, clock=lambda: clock.now)
    key, spec = f"kombo:bench-recovery-{uuid.uuid4().hex[:8]}", VENDOR_DEFAULTS[Provider.KOMBO]
    start = clock.now
    lifted, end = start + storm.storm_s, start + storm.storm_s + storm.after_s
    provider = SandboxState()  # its token bucket, as the sandbox's ``--rate-limit`` enforces it
    answers: list[tuple[float, int, Gate, bool]] = []  # (answered at, seq, gate, accepted)
    counts = {"storm": [0, 0], "after": [0, 0]}  # calls, 429s
    first_429: float | None = None
    learnt: float | None = None
    figures = Recovery(asdict(storm), None, 0, 0.0, 0, 0.0)
    moments = [lifted + m for m in MOMENTS_S]
    t, seq = start, 0
    while t < end:
        while answers and answers[0][0] <= t:
            at, _, gate, accepted = heapq.heappop(answers)
            clock.now = at
            signal = Signal.SUCCESS if accepted else Signal.RATE_LIMITED
            limiter.observe(key, spec, gate, signal, Hints(retry_after_s=None if accepted else RETRY_AFTER_S))
        clock.now = t
        rate = float(client.get(f"applyq:lim:{key}:rate") or AdaptiveParams().initial_rate)
        while moments and t >= moments[0]:
            figures.rate_after[round(moments.pop(0) - lifted)] = round(rate, 1)
        if t >= lifted and figures.recovered_90_in_s is None and rate >= 0.9 * storm.after_limit:
            figures.recovered_90_in_s = round(t - lifted, 1)
        if first_429 is not None and learnt is None and abs(rate - storm.storm_limit) <= 0.1 * storm.storm_limit:
            learnt = t - first_429
        gate = limiter.gate(key, spec, f"s{seq}")
        if gate.verdict is Wait.GO:
            phase = "storm" if t < lifted else "after"
            accepted = provider.take_token(("kombo", key), storm.storm_limit if t < lifted else storm.after_limit, t)
            counts[phase][0] += 1
            if not accepted:
                counts[phase][1] += 1
                first_429 = t if first_429 is None else first_429
            heapq.heappush(answers, (t + LATENCY_S, seq, gate, accepted))
            seq += 1
            continue
        step = gate.wait_s if gate.verdict in (Wait.RESERVED, Wait.COOLDOWN) and gate.wait_s else 0.005
        t = min(t + max(step, 0.001), answers[0][0] if answers else t + step)
    figures.learnt_in_s = None if learnt is None else round(learnt, 1)
    figures.storm_calls, figures.after_calls = counts["storm"][0], counts["after"][0]
    figures.storm_429_share = round(counts["storm"][1] / max(1, counts["storm"][0]), 3)
    figures.after_429_share = round(counts["after"][1] / max(1, counts["after"][0]), 3)
    return figures


def recovery_lines(figures: dict[str, Any]) -> list[str]:
    """The storm, then the rate after it."""
    s = figures["storm"]
    rates = ", ".join(f"+{m}s {r:g}" for m, r in figures["rate_after"].items())
    return [
        f"Recovery after a 429 storm (benchmarks/recovery.py, simulated clock, adaptive rate, a backlog throughout):"
        f" a token bucket at {s['storm_limit']:g}/s for {s['storm_s']:g} s, then {s['after_limit']:g}/s",
        f"  storm: {figures['storm_calls']} calls, {figures['storm_429_share']:.1%} answered 429, the limit learnt"
        f" {figures['learnt_in_s']} s after the first 429",
        f"  after: {figures['after_calls']} calls, {figures['after_429_share']:.1%} answered 429;"
        f" the rate (/s) {rates}; 90 % of {s['after_limit']:g}/s after {figures['recovered_90_in_s']} s",
    ]


def main() -> int:
    """Run the simulation, print it (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm-limit", type=float, default=Storm.storm_limit)
    parser.add_argument("--after-limit", type=float, default=Storm.after_limit)
    parser.add_argument("--storm-s", type=float, default=Storm.storm_s)
    parser.add_argument("--after-s", type=float, default=Storm.after_s)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    storm = Storm(args.storm_limit, args.after_limit, args.storm_s, args.after_s)
    figures = asdict(simulate(storm, redis.Redis.from_url(REDIS_URL)))
    print("\n".join(recovery_lines(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
