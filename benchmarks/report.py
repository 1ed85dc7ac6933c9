"""The suite's one table: sections of rows, each applyq figure beside its baselines and the last run's."""

from __future__ import annotations

from typing import Any

from benchmarks.recovery import recovery_lines

LABEL = 52
CELL = 17


def render(figures: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The table as text (it also goes into docs/benchmarks.md as it is)."""
    last = previous or {}
    lines = [_row("", ["applyq", "naive Celery", "no-queue limit", "applyq last run"])]
    if "throughput" in figures:
        lines += _throughput(figures["throughput"], last.get("throughput"))
    if "one_integration" in figures:
        lines += _one_integration(figures["one_integration"])
    if "pgbouncer" in figures:
        lines += _pgbouncer(figures["pgbouncer"])
    if "latency" in figures:
        lines += _latency(figures["latency"], last.get("latency"))
    if "memory" in figures:
        lines += _memory(figures["memory"], last.get("memory"))
    if "traffic" in figures:
        lines += _traffic(figures["traffic"])
    if "sporadic" in figures:
        lines += _sporadic(figures["sporadic"])
    if "recovery" in figures:
        lines += recovery_lines(figures["recovery"])
    host = figures["host"]
    lines.append(
        f"host: {host['cpus']} CPUs shared with other work; load average (1/5/15 min) {_load(host['load_before'])}"
        f" before, {_load(host.get('load_after'))} after. Compare ratios within one run."
    )
    return "\n".join(lines)


def _throughput(t: dict[str, Any], last: dict[str, Any] | None) -> list[str]:
    cfg, med, ratio = t["config"], t["median"], t["applyq_ratio"]
    prev = (last or {}).get("median", {}).get("applyq", {})
    title = (f"Throughput: {cfg['submissions']:,} submissions, sandbox {cfg['latency_ms']:g} ms, {cfg['threads']} "
             f"threads (median of {cfg['rounds']})")  # fmt: skip

    def row(label: str, key: str) -> str:
        cells = [_fmt(med.get(name, {}).get(key)) for name in ("applyq", "naive", "noqueue")]
        return _row(f"  {label}", [*cells, _fmt(prev.get(key))])

    ratios = ["", *(f"{ratio[n]:.2f}x" if n in ratio else "-" for n in ("naive", "noqueue")), ""]
    return [
        title,
        row("submissions/s", "per_s"),
        _row("  applyq / baseline", ratios),
        row("CPU per submission, ms (worker process)", "cpu_ms_per_submission"),
        row("peak RSS, MB (worker process)", "peak_rss_mb"),
    ]


def _one_integration(one: dict[str, Any]) -> list[str]:
    title = (
        f"One integration taking a burst: {one['submissions']:,} Kombo submissions, applyq on its defaults "
        f"(adaptive rate, Concurrency-Limit 30), sandbox {one['latency_ms']:g} ms (median of {one['rounds']})"
    )
    header = ["applyq /s", "naive /s", "no-queue /s", _ratio_cells("xnaive", "xlimit", "x32", "defer")]
    lines = [
        title,
        "  (limit: min(no-queue, the 300/s that 30 in flight allow); x32: applyq / its 32-thread rate, same round)",
        _row("", header),
    ]
    for case in one["cases"]:
        med = case["median"]
        cells = [_fmt(med[name]["per_s"]) for name in ("applyq", "naive", "noqueue")]
        first = case.get("ratio_first")  # (figures recorded before the cases alternated have none)
        ratios = _ratio_cells(f"{case['ratio_naive']:.2f}x", f"{case['ratio_limit']:.2f}x",
                              "-" if first is None else f"{first:.2f}x", f"{case['deferral_share']:.0%}")  # fmt: skip
        lines.append(_row(f"  {case['label']}", [*cells, ratios]))
    return lines


def _ratio_cells(*cells: str) -> str:
    """The one-integration rows' ratios as one cell of narrow columns (the table's own cells are wider)."""
    return " " + " ".join(f"{c:>6}" for c in cells)


def _pgbouncer(pgb: dict[str, Any]) -> list[str]:
    if "error" in pgb:
        return [f"Through PgBouncer: not run ({pgb['error']})"]
    title = (
        f"Through PgBouncer (transaction mode, default_pool_size {pgb['pool_size']}): the one-integration burst, "
        f"applyq on its defaults, {pgb['threads']} threads (median of {pgb['rounds']})"
    )
    med = pgb["median"]
    cells = [_fmt(med["direct"]["per_s"]), _fmt(med["pgbouncer"]["per_s"]), f"{pgb['ratio']:.2f}x",
             str(pgb["task_failures"])]  # fmt: skip
    return [
        title,
        _row(
            "  (target: within 10 % of direct, no task failure)", ["direct /s", "PgBouncer /s", "x direct", "failures"]
        ),
        _row("  applyq", cells),
    ]


def _latency(lat: dict[str, Any], last: dict[str, Any] | None) -> list[str]:
    prev = last or {}
    api = [_pct(lat["api"]), _pct(lat["naive_apply_async"]), "", _pct(prev.get("api"))]
    cli = [_pct(lat["cli"]), _pct(lat["naive_celery_call"]), "", _pct(prev.get("cli"))]
    key = "cli_batch_ms_per_submission"
    return [
        "Enqueue latency, p50 / p99 ms (baseline: the naive task's publish)",
        _row("  Python API / apply_async", api),
        _row("  CLI, one submission (new process) / celery call", cli),
        _row(
            f"  applyq submit --file ({lat['cli_batch']:,} lines), ms each",
            [_fmt(lat[key]), "", "", _fmt(prev.get(key))],
        ),
    ]


def _memory(mem: dict[str, Any], last: dict[str, Any] | None) -> list[str]:
    ours, theirs = mem["applyq"], mem["naive_celery_countdown"]
    prev = (last or {}).get("applyq", {})
    title = f"Memory: {mem['count']:,} submissions due in 1 h (naive: countdown=3600 tasks)"

    def row(label: str, key: str) -> str:
        return _row(f"  {label}", [_fmt(ours[key]), _fmt(theirs[key]), "", _fmt(prev.get(key))])

    return [title, row("worker RSS, MB", "worker_rss_mb"), row("Redis used, MB", "redis_used_mb")]


def _traffic(traffic: dict[str, Any]) -> list[str]:
    if "error" in traffic:
        return [f"Traffic control: failed ({traffic['error']})"]
    lines = [_row("Traffic control (benchmarks/traffic.py)", ["delivered", "429 share", "drain s / ideal",
                                                              "other done at"])]  # fmt: skip
    for c in traffic["contenders"]:
        drain = f"{c['drain_flooded_s']:g} / x{c['drain_ratio_to_ideal']:g}"
        cells = [f"{c['delivered']}/{c['submitted']}", f"{c['share_429']:.1%}", drain,
                 f"{c['other_done_fraction_of_run']:.0%} of run"]  # fmt: skip
        lines.append(_row(f"  {c['contender']}", cells))
    return lines


def _sporadic(sporadic: dict[str, Any]) -> list[str]:
    if "error" in sporadic:
        return [f"Sporadic 429s: failed ({sporadic['error']})"]
    load = sporadic["load"]
    lines = [_row("Sporadic 429s, adaptive (benchmarks/sporadic.py)", ["delivered", "429s", "drain s", "x without"])]
    for c in sporadic["cases"]:
        ratio = f"x{sporadic['ratio']:g}" if c["answered_429"] and sporadic["ratio"] is not None else ""
        label = f"  {load['submissions']} over {load['integrations']} integrations, {c['case']}"
        lines.append(_row(label, [f"{c['delivered']}/{c['submitted']}", str(c["answered_429"]), _fmt(c["drain_s"]),
                                  ratio]))  # fmt: skip
    return lines


def _row(label: str, cells: list[str]) -> str:
    return (f"{label:<{LABEL}}" + "".join(f"{c:>{CELL}}" for c in cells)).rstrip()


def _pct(lat: dict[str, Any] | None) -> str:
    if not lat:
        return ""
    return f"{_fmt(lat['p50_ms'])} / {_fmt(lat['p99_ms'])}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _load(load: list[float] | None) -> str:
    return "/".join(f"{x:g}" for x in load) if load else "?"
