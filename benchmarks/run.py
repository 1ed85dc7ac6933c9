"""The benchmark suite (``make bench``): every figure beside a baseline measured in the same run, one table.

    python -m benchmarks.run [--submissions 3000] [--rounds 3] [--skip memory,traffic]

Runs against PostgreSQL (``APPLYQ_TEST_PG_URL``, scratch databases next to it) and Redis
(``APPLYQ_BENCH_REDIS_URL``, a database of its own, flushed by the memory benchmark) and the sandbox:

* throughput, CPU per submission and peak RSS (``benchmarks/throughput.py``), the median of ``--rounds``;
* one integration taking a burst on applyq's defaults (Kombo's adaptive rate and 30 in flight): 32 threads,
  64 threads, two worker processes of 32 (``--one-rounds`` each, default 3: this machine is noisy);
* the same one integration, defaults, 32 threads: applyq direct and through PgBouncer in transaction mode,
  alternating in each of ``--pooler-rounds`` rounds (default 2), with the task failures in the pooled workers' logs;
* enqueue latency (``benchmarks/latency.py``);
* memory with many submissions scheduled for later (``benchmarks/memory.py``);
* traffic control under a provider rate limit (``benchmarks/traffic.py``), when present;
* sporadic 429s on the adaptive rate, the same load with and without them (``benchmarks/sporadic.py``);
* recovery after a 429 storm, the adaptive rate's scripts on a simulated clock (``benchmarks/recovery.py``).

Prints one table; writes the figures to ``benchmarks/results/<time>.json`` and ``latest.json``, and shows the
previous ``latest.json`` beside this run's applyq figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from benchmarks.latency import LatencyConfig, run_latency
from benchmarks.recovery import Storm, simulate
from benchmarks.report import render
from benchmarks.stack import REDIS_URL, sandbox
from benchmarks.throughput import CONTENDERS, ThroughputConfig, run_throughput

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = ("throughput", "one_integration", "pgbouncer", "latency", "memory", "traffic", "sporadic", "recovery")
#: the one-integration cases: (label, threads per process, processes)
ONE_INTEGRATION = (
    ("defaults, 32 threads", 32, 1),
    ("defaults, 64 threads", 64, 1),
    ("defaults, 2 processes x 32", 32, 2),
)


def _cap_per_s(latency_ms: float) -> float:
    """What Kombo's announced ``Concurrency-Limit`` (30) allows at the sandbox's latency: 300/s at 100 ms."""
    return 30 / (latency_ms / 1000)


def throughput_figures(cfg: ThroughputConfig, rounds: int, workdir: Path) -> dict[str, Any]:
    """Every round's figures, their medians, and the median of each round's applyq ratios."""
    with sandbox(workdir, cfg.latency_ms) as url:
        runs = [_round(cfg, url, workdir) for _ in range(rounds)]
    return _summary(cfg, runs)


def _round(cfg: ThroughputConfig, url: str, workdir: Path) -> dict[str, Any]:
    """One round: each contender once against the sandbox at ``url``."""
    return {name: asdict(f) for name, f in run_throughput(cfg, url, workdir).items()}


def _summary(cfg: ThroughputConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' medians, and the median of each round's applyq ratios (a ratio taken within one round)."""
    median = {name: {key: _median([r[name][key] for r in runs]) for key in runs[0][name]} for name in cfg.contenders}
    ratios = {
        name: round(statistics.median(r["applyq"]["per_s"] / r[name]["per_s"] for r in runs), 2)
        for name in cfg.contenders
        if name != "applyq" and "applyq" in cfg.contenders
    }
    config = {"submissions": cfg.submissions, "latency_ms": cfg.latency_ms, "threads": cfg.threads, "rounds": len(runs)}
    return {"config": config, "median": median, "applyq_ratio": ratios, "rounds": runs}


def one_integration_figures(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Each one-integration case with its baselines in the same run, and the acceptance ratios.

    The cases alternate within each round (32 threads, 64, two processes, then again), so that a change of this
    shared machine's load falls on all of them: "64 threads not slower than 32" is then judged on the median of
    each round's applyq rate over the first case's (``ratio_first``), not on rates minutes apart.
    """
    configs = [_one_integration_config(args, threads, processes) for _, threads, processes in ONE_INTEGRATION]
    runs: list[list[dict[str, Any]]] = [[] for _ in configs]
    with sandbox(workdir, args.latency_ms) as url:
        for _ in range(args.one_rounds):
            for cfg, rounds in zip(configs, runs, strict=True):
                rounds.append(_round(cfg, url, workdir))
    cases = []
    for (label, threads, processes), cfg, rounds in zip(ONE_INTEGRATION, configs, runs, strict=True):
        figures = _summary(cfg, rounds)
        med = figures["median"]
        limit = min(med["noqueue"]["per_s"], _cap_per_s(args.latency_ms))
        first = _median_ratio(rounds, runs[0])
        cases.append({
            "label": label, "threads": threads, "processes": processes, "median": med,
            "ratio_naive": figures["applyq_ratio"].get("naive"),
            "ratio_limit": round(med["applyq"]["per_s"] / limit, 2),
            "ratio_first": round(first, 2),
            "deferral_share": round((med["applyq"]["deferrals"] or 0) / args.submissions, 3),
        })  # fmt: skip
    return {"submissions": args.submissions, "latency_ms": args.latency_ms, "rounds": args.one_rounds, "cases": cases}


def _median_ratio(rounds: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> float:
    """The median over rounds of applyq's rate in ``rounds`` over its rate in ``baseline``'s same round."""
    pairs = zip(rounds, baseline, strict=True)
    return statistics.median(r["applyq"]["per_s"] / b["applyq"]["per_s"] for r, b in pairs)


def _one_integration_config(args: argparse.Namespace, threads: int, processes: int) -> ThroughputConfig:
    """One integration, applyq on its defaults, at ``threads`` per worker process."""
    return ThroughputConfig(args.submissions, args.latency_ms, threads, warmup=args.warmup, integrations=1,
                            defaults=True, processes=processes)  # fmt: skip


def pgbouncer_figures(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """applyq on one integration's burst (defaults, 32 threads), direct and through PgBouncer, in each round.

    The two alternate within a round so that a change of this machine's load falls on both; the ratio is the
    median of each round's pooled / direct. Without PgBouncer installed the suite says so instead of failing.
    """
    one = _one_integration_config(args, 32, 1)
    direct = replace(one, contenders=("applyq",), pooler_pool_size=args.pooler_pool_size)
    cases = {"direct": direct, "pgbouncer": replace(direct, pooler=True)}
    runs = []
    try:
        with sandbox(workdir, args.latency_ms) as url:
            for _ in range(args.pooler_rounds):
                runs.append({name: asdict(run_throughput(cfg, url, workdir)["applyq"]) for name, cfg in cases.items()})
    except FileNotFoundError as exc:
        return {"error": str(exc)}
    median = {name: {key: _median([r[name][key] for r in runs]) for key in runs[0][name]} for name in cases}
    return {
        "submissions": args.submissions, "latency_ms": args.latency_ms, "threads": direct.threads,
        "pool_size": args.pooler_pool_size, "rounds": args.pooler_rounds, "median": median,
        "ratio": round(statistics.median(r["pgbouncer"]["per_s"] / r["direct"]["per_s"] for r in runs), 2),
        "task_failures": sum(r["pgbouncer"]["task_failures"] or 0 for r in runs), "runs": runs,
    }  # fmt: skip


def _median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def memory_figures(count: int, settle_s: float, workdir: Path) -> dict[str, Any]:
    """``benchmarks/memory.py``: applyq and countdown tasks with ``count`` submissions due in an hour."""
    from benchmarks.memory import measure_applyq, measure_naive

    return {
        "count": count,
        "applyq": measure_applyq(count, settle_s, workdir),
        "naive_celery_countdown": measure_naive(count, settle_s, workdir),
    }


def traffic_figures(args: list[str], workdir: Path) -> dict[str, Any] | None:
    """``python -m benchmarks.traffic --json FILE``; None when that benchmark does not exist (yet)."""
    if importlib.util.find_spec("benchmarks.traffic") is None:
        return None
    out = workdir / "traffic.json"
    log = workdir / "traffic.log"
    with log.open("wb") as handle:
        code = subprocess.call([sys.executable, "-m", "benchmarks.traffic", "--json", str(out), *args],
                               stdout=handle, stderr=handle)  # fmt: skip
    if code != 0 or not out.exists():
        return {"error": f"exit {code}, see {log}"}
    return {"args": args, "contenders": json.loads(out.read_text())}


def sporadic_figures(workdir: Path) -> dict[str, Any]:
    """``python -m benchmarks.sporadic --json FILE``: both drains and their ratio."""
    out, log = workdir / "sporadic.json", workdir / "sporadic.log"
    with log.open("wb") as handle:
        code = subprocess.call([sys.executable, "-m", "benchmarks.sporadic", "--json", str(out)],
                               stdout=handle, stderr=handle)  # fmt: skip
    if code != 0 or not out.exists():
        return {"error": f"exit {code}, see {log}"}
    return dict(json.loads(out.read_text()))


def run_suite(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every suite not skipped, in an order that keeps the quiet measurements first."""
    skip = set(args.skip)
    figures: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "host": _host()}
    if "latency" not in skip:
        figures["latency"] = run_latency(LatencyConfig(args.calls, args.cli_runs, args.cli_batch), workdir)
    if "throughput" not in skip:
        cfg = ThroughputConfig(
            args.submissions, args.latency_ms, args.threads, warmup=args.warmup, contenders=CONTENDERS
        )
        figures["throughput"] = throughput_figures(cfg, args.rounds, workdir)
    if "one_integration" not in skip:
        figures["one_integration"] = one_integration_figures(args, workdir)
    if "pgbouncer" not in skip:
        figures["pgbouncer"] = pgbouncer_figures(args, workdir)
    if "memory" not in skip:
        figures["memory"] = memory_figures(args.memory_count, args.memory_settle_s, workdir)
    if "traffic" not in skip:
        traffic = traffic_figures(args.traffic_args.split(), workdir)
        if traffic is not None:
            figures["traffic"] = traffic
    if "sporadic" not in skip:
        figures["sporadic"] = sporadic_figures(workdir)
    if "recovery" not in skip:
        figures["recovery"] = asdict(simulate(Storm(), redis.Redis.from_url(REDIS_URL)))
    figures["host"]["load_after"] = _load()
    return figures


def _host() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_before": _load()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def save(figures: dict[str, Any], results: Path) -> dict[str, Any] | None:
    """Write this run as ``<time>.json`` and ``latest.json``; return the previous ``latest.json``, if any."""
    results.mkdir(parents=True, exist_ok=True)
    latest = results / "latest.json"
    previous = json.loads(latest.read_text()) if latest.exists() else None
    text = json.dumps(figures, indent=2)
    (results / f"{figures['when'].replace(':', '')}.json").write_text(text)
    latest.write_text(text)
    return previous


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The suite's options (defaults: the full run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-rounds", type=int, default=3, help="rounds of each one-integration case")
    parser.add_argument("--pooler-rounds", type=int, default=2, help="rounds of direct and PgBouncer, alternating")
    parser.add_argument("--pooler-pool-size", type=int, default=20, help="PgBouncer's default_pool_size")
    parser.add_argument("--calls", type=int, default=1000, help="Python API enqueues to time")
    parser.add_argument("--cli-runs", type=int, default=20, help="'applyq submit --file' runs to time")
    parser.add_argument("--cli-batch", type=int, default=1000, help="lines in the bulk 'applyq submit --file'")
    parser.add_argument("--memory-count", type=int, default=100_000)
    parser.add_argument("--memory-settle-s", type=float, default=15.0)
    parser.add_argument("--traffic-args", default="", help="passed to 'python -m benchmarks.traffic'")
    parser.add_argument("--skip", type=lambda s: [x for x in s.split(",") if x], default=[], help=",".join(SUITES))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, save, print the table."""
    args = parse_args(argv)
    unknown = set(args.skip) - set(SUITES)
    if unknown:
        print(f"--skip: unknown {sorted(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="applyq-bench-"))
    figures = run_suite(args, workdir)
    previous = save(figures, args.results_dir)
    print(render(figures, previous))
    print(f"\nfigures: {args.results_dir / 'latest.json'}; logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
