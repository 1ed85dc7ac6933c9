"""How ``applyq --help`` names parameters: flags without a value type, arguments as ``NAME`` in usage lines.

Typer (0.27 on, "Update metavar printing") prints every option's type beside it, so a flag such as
``--dry-run`` reads ``--dry-run <bool>`` as if it took a value, and wraps each required argument of a usage
line in braces (``applyq show [OPTIONS] {id_or_key}``). applyq's commands are built from the two classes here
(``typer.Typer(cls=Group)``, ``app.command(cls=Command)``), which keep the types of options that take a value
and print arguments the way POSIX usage lines do: ``ID_OR_KEY`` when required, ``[IDS]...`` when optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["Command", "Group"]

# Parameters and contexts are typer's own copy of click's classes (typer vendors click), not importable
# publicly: they are ``Any`` here.


def _plain(params: Sequence[Any]) -> list[Any]:
    """The parameters with an empty type for flags and an upper-case name for arguments (idempotent)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # typer prints the metavar, when set, in place of the type
        elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
            param.metavar = param.name.upper()
    return list(params)


def _usage(param: Any, ctx: Any) -> list[str]:
    if not isinstance(param, TyperArgument):
        return list(param.get_usage_pieces(ctx))
    name = param.metavar or (param.name or "").upper()
    if not param.required:
        name = f"[{name}]"
    return [name + ("..." if param.nargs != 1 else "")]


class Command(TyperCommand):
    """A typer command whose help shows no type for flags and plain argument names."""

    def get_params(self, ctx: Any) -> list[Any]:
        """Every parameter, ``--help`` included, as the help should name it."""
        return _plain(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] ID_OR_KEY`` rather than ``[OPTIONS] {id_or_key}``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces.extend(_usage(param, ctx))
        return pieces


class Group(TyperGroup):
    """A typer group (``applyq``, ``applyq parked``) whose own ``--help`` shows no type."""

    def get_params(self, ctx: Any) -> list[Any]:
        """Every parameter of the group as the help should name it."""
        return _plain(super().get_params(ctx))
