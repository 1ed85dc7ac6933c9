"""Generate the tables in ``docs/`` that come from code, so they cannot drift from it.

    python -m tools.docs_tables          # rewrite the generated regions of docs/*.md
    python -m tools.docs_tables --check  # exit 1 if a committed table is stale (run by the test suite)

A generated region sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic_core import PydanticUndefined

from worker.config import Settings
from worker.routing.router import ROUTES
from worker.routing.rules import ProviderRoutes, Rule
from worker.states import Decision
from worker.webhooks.outcomes import BY_REASON, BY_STATUS

ROOT = Path(__file__).resolve().parents[1]
#: how the tables show "no default" (an en dash, as in the hand-written tables)
NONE = "\N{EN DASH}"


def _field_comments() -> dict[str, str]:
    """The ``#:`` comment above each field of ``Settings``, read from its source."""
    source = (ROOT / "worker" / "config.py").read_text(encoding="utf-8")
    lines = source.splitlines()
    settings = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    comments: dict[str, str] = {}
    for node in settings.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#:"):
                above.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            comments[node.target.id] = " ".join(above)
    return comments


def _cell(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def _default(value: object) -> str:
    if value is PydanticUndefined or value in ("", (), None):
        return NONE
    if hasattr(value, "get_secret_value"):
        return NONE if not value.get_secret_value() else "(set)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def configuration_table() -> str:
    """Every ``APPLYQ_*`` setting: its default and what it means (the comment above the field)."""
    comments = _field_comments()
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        meaning = comments.get(name) or "(undocumented: add a #: comment in worker/config.py)"
        rows.append(f"| `APPLYQ_{name.upper()}` | {_default(field.default)} | {_cell(meaning)} |")
    return "\n".join(rows)


def _flags(rule: Rule) -> str:
    flags = []
    if rule.unknown_outcome:
        flags.append("outcome unknown")
    if rule.max_attempts:
        flags.append(f"≤ {rule.max_attempts} attempts")
    if rule.floor_s:
        flags.append(f"waits ≥ {rule.floor_s:g} s")
    if rule.long_wait:
        flags.append("waits APPLYQ_SYNC_PENDING_DELAY_S")
    if rule.reconcile:
        flags.append("success if an earlier attempt's outcome was unknown")
    return ", ".join(flags)


def _matches(routes: ProviderRoutes) -> Iterator[tuple[str, Rule]]:
    for code, rule in routes.codes.items():
        yield f"code `{code}`", rule
    yield "any other code", routes.unknown_code
    for kind, rule in routes.transport.items():
        yield f"transport: {kind.value}", rule
    for (ats, status), rule in routes.quirks.items():
        yield f"{ats}: HTTP {status}", rule
    for status, rule in routes.upstream.items():
        relayed = ", ".join(str(s) for s in sorted(routes.relayed))
        yield f"ATS status {status} (under {relayed})", rule
    for status, rule in routes.statuses.items():
        yield f"HTTP {status}" + (" (and its class)" if status in (200, 400, 500) else ""), rule


def routing_table() -> str:
    """Every rule of every provider's table: what it matches, the decision, the reason, and what to do."""
    parts = []
    for provider, routes in ROUTES.items():
        parts.append(f"#### {provider.value}\n")
        parts.append("| answer | decision | reason | limits | operator's remediation |")
        parts.append("| --- | --- | --- | --- | --- |")
        for match, rule in _matches(routes):
            decision = rule.decision.value if rule.decision is not Decision.RETRY else "retry"
            parts.append(
                f"| {match} | {decision} | `{rule.reason.value}` | {_flags(rule)} | {_cell(rule.remediation)} |"
            )
        parts.append("")
    return "\n".join(parts).rstrip()


def outcome_messages_table() -> str:
    """The sentence for the candidate in every answer and webhook: by reason where one has its own, else by status."""
    rows = ["| status | reason | `message` |", "| --- | --- | --- |"]
    rows += [f"| any but `succeeded` | `{reason}` | {_cell(text)} |" for reason, text in BY_REASON.items()]
    rows += [f"| `{status}` | any other | {_cell(text)} |" for status, text in BY_STATUS.items()]
    return "\n".join(rows)


TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "configuration": ("docs/configuration.md", configuration_table),
    "routing": ("docs/routing.md", routing_table),
    "outcome-messages": ("docs/integrating.md", outcome_messages_table),
}


def render(name: str, text: str) -> str:
    """``text`` with the region ``name`` replaced by the freshly generated table."""
    table = TABLES[name][1]()
    pattern = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{TABLES[name][0]}: no generated region {name!r}")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)


def stale() -> list[str]:
    """The docs whose generated tables differ from what the code says now."""
    out = []
    for name, (path, _) in TABLES.items():
        text = (ROOT / path).read_text(encoding="utf-8")
        if render(name, text) != text:
            out.append(path)
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        found = stale()
        for path in found:
            print(f"{path}: generated table is stale; run: python -m tools.docs_tables", file=sys.stderr)
        return 1 if found else 0
    for name, (path, _) in TABLES.items():
        file = ROOT / path
        file.write_text(render(name, file.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
