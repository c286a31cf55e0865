"""How the CLI answers: rich tables for people, JSON for scripts, a typed error as one line.

Exit codes (stable, for scripts):

- ``0``: done.
- ``1``: the API answered with an error not covered below.
- ``2``: bad input or configuration (a missing block, a spec that does not validate, a bad option).
- ``3``: the object is not there or not in a state for this (no such session or version, an
  archived agent, a session of another agent).
- ``4``: the API could not be reached.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ParamSpec, TypeVar

import anthropic
import pydantic
import typer
from rich.console import Console
from rich.table import Table

from managed_agents_core.exceptions import (
    ApiUnreachableError,
    ConfigurationError,
    ManagedAgentsError,
    RemoteObjectError,
    SessionError,
)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_API_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_UNREACHABLE = 4

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]


def exit_code(error: BaseException) -> int:
    """The exit code that says what kind of failure ``error`` is (see the module docstring)."""
    if isinstance(error, ApiUnreachableError | anthropic.APIConnectionError):
        return EXIT_UNREACHABLE
    if isinstance(error, ConfigurationError | pydantic.ValidationError):
        return EXIT_BAD_INPUT
    if isinstance(error, RemoteObjectError | SessionError | anthropic.NotFoundError):
        return EXIT_NOT_FOUND
    return EXIT_API_ERROR


def one_line(error: BaseException) -> str:
    """The error as one line: its type and the first line of its message."""
    if isinstance(error, anthropic.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
        message = f"{error.status_code} {detail or error.message}"
    elif isinstance(error, pydantic.ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "input"
        message = f"{where}: {first['msg']} ({error.error_count()} error(s))"
    else:
        message = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {message.splitlines()[0]}"


def typed_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the integration's typed errors and the SDK's API errors into one line on stderr and
    an exit code; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ManagedAgentsError, anthropic.APIError, pydantic.ValidationError) as error:
            typer.echo(f"error: {one_line(error)}", err=True)
            raise typer.Exit(exit_code(error)) from None

    return run


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (dates and decimals as strings)."""
    typer.echo(json.dumps(value, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table (``-`` for empty cells)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    Console().print(table)


def print_fields(title: str, fields: Mapping[str, Any]) -> None:
    """Print ``name: value`` pairs as a two-column table."""
    print_table(title, ("field", "value"), list(fields.items()))
