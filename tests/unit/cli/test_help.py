"""``applyq --help`` of every command: flags take no value, and usage lines name arguments plainly."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from worker.cli.app import app


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of ``applyq``, as the words a user types before ``--help``."""
    paths: list[tuple[str, ...]] = [()]
    pending: list[tuple[tuple[str, ...], Any]] = [((), typer.main.get_command(app))]
    while pending:
        path, group = pending.pop()
        for name, command in getattr(group, "commands", {}).items():
            paths.append((*path, name))
            pending.append(((*path, name), command))
    return paths


def _help(*words: str) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("words", _command_paths(), ids=lambda words: " ".join(words) or "applyq")
def test_no_flag_reads_as_taking_a_value_and_no_usage_line_has_braces(words: tuple[str, ...]) -> None:
    text = _help(*words)
    assert "<bool>" not in text
    [usage] = [line for line in text.splitlines() if "Usage:" in line]
    assert "{" not in usage and "}" not in usage, usage


def test_arguments_read_as_posix_usage_and_options_with_values_keep_their_type() -> None:
    assert re.search(r"Usage: applyq show \[OPTIONS\] ID_OR_KEY\s*$", _help("show"), re.MULTILINE)
    requeue = _help("requeue")
    assert re.search(r"Usage: applyq requeue \[OPTIONS\] \[IDS\]\.\.\.\s*$", requeue, re.MULTILINE)
    assert re.search(r"--code\s+<str>", requeue)  # an option that takes a value still says what it takes
    assert re.search(r"--dry-run\s+Only show", requeue)  # a flag: its help right after its name


def test_a_missing_argument_is_named_as_in_the_usage_line() -> None:
    result = CliRunner().invoke(app, ["show"])
    assert result.exit_code == 2
    assert "Missing argument 'ID_OR_KEY'" in result.output
