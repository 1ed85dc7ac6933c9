"""The docs' generated tables match the code, and the README links every page of docs/."""

from __future__ import annotations

from pathlib import Path

from tools import docs_tables
from worker.local.demo import SCRIPT

ROOT = Path(__file__).resolve().parents[2]


def test_generated_tables_are_current() -> None:
    assert docs_tables.stale() == [], "run: python -m tools.docs_tables"


def test_every_setting_is_documented_in_code() -> None:
    assert "(undocumented" not in docs_tables.configuration_table()


def test_make_help_counts_the_applications_the_demo_runs() -> None:
    help_line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("demo:"))
    assert f"run {sum(script.count for script in SCRIPT)} scripted applications" in help_line


def test_the_readme_links_every_doc_page_and_stays_small() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name
    assert len(readme.encode()) < 15_000
