"""The tree is the architecture: no import cycles, and the public API is exactly what job boards import.

The layers themselves are checked by import-linter (``lint-imports`` in ``make test``); this test finds
cycles inside a package too, counting function-local imports, which the layers contract would not.
"""

from __future__ import annotations

import grimp

import worker


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("worker")
    graph.remove_module("worker")  # the package's __init__ re-exports the public API; nothing imports it back
    assert _cycles(graph) == []


def test_public_api_is_pinned() -> None:
    # What a job board may import from ``worker``; changing it is a release note, not a refactoring.
    assert sorted(worker.__all__) == sorted(
        [
            "SIGNATURE_HEADER",
            "Applyq",
            "ApplyqError",
            "Enqueued",
            "IdempotencyConflict",
            "InvalidInput",
            "InvalidSubmission",
            "Provider",
            "Settings",
            "Status",
            "SubmissionIn",
            "SubmissionNotFound",
            "SubmissionOut",
            "UTCDateTime",
            "create_engine",
            "migrate",
            "verify_signature",
        ]
    )
    for name in worker.__all__:
        assert hasattr(worker, name), name


def test_the_example_job_board_imports_only_the_public_api() -> None:
    graph = grimp.build_graph("examples", "worker")
    imported = {m for m in graph.find_modules_directly_imported_by("examples.jobboard.app") if m.startswith("worker")}
    for module in ("examples.jobboard.__main__", "examples.jobboard.models"):
        imported |= {m for m in graph.find_modules_directly_imported_by(module) if m.startswith("worker")}
    assert imported == {"worker"}
