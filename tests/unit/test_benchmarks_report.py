"""The benchmark table's one-integration rows: the ratios line up under their headers, old figures still render."""

from __future__ import annotations

from typing import Any

from benchmarks.report import render


def case(label: str, applyq: float, ratio_first: float | None) -> dict[str, Any]:
    median = {name: {"per_s": per_s} for name, per_s in (("applyq", applyq), ("naive", 150.0), ("noqueue", 240.0))}
    row = {"label": label, "median": median, "ratio_naive": applyq / 150, "ratio_limit": applyq / 240,
           "deferral_share": 0.0}  # fmt: skip
    return row if ratio_first is None else {**row, "ratio_first": ratio_first}


def one_integration(*cases: dict[str, Any]) -> str:
    one = {"submissions": 3000, "latency_ms": 100, "rounds": 3, "cases": list(cases)}
    return render({"one_integration": one, "host": {"cpus": 2, "load_before": [1.0, 1.0, 1.0]}})


def test_each_row_shows_its_rate_over_the_32_thread_rate_under_the_header() -> None:
    text = one_integration(case("defaults, 32 threads", 240.0, 1.0), case("defaults, 64 threads", 228.0, 0.95))
    lines = text.splitlines()
    header = next(line for line in lines if "x32" in line and "xnaive" in line)
    row = next(line for line in lines if "64 threads" in line)
    assert row.endswith("0.95x     0%")
    assert header.index("x32") + len("x32") == row.rindex("0.95x") + len("0.95x")  # right-aligned under it


def test_figures_recorded_before_the_cases_alternated_render_a_dash() -> None:
    assert "      -     0%" in one_integration(case("defaults, 32 threads", 240.0, None))
