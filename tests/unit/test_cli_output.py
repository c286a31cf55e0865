"""How the CLI reads ages and reports failures (no server needed)."""

from __future__ import annotations

from datetime import timedelta

import anthropic
import httpx
import pytest
import typer

from managed_agents.output import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    exit_code,
    one_line,
)
from managed_agents.session_commands import parse_age
from managed_agents_core.exceptions import (
    AgentVersionNotFoundError,
    ApiUnreachableError,
    BlockNotFoundError,
    SessionNotAttachableError,
)


@pytest.mark.parametrize(
    ("text", "age"),
    [("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)), ("7d", timedelta(days=7)), ("all", None)],
)
def test_ages(text: str, age: timedelta | None) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["7", "1w", "-3d", "3 days", ""])
def test_other_ages_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="30m, 12h, 7d"):
        parse_age(text)


def _status_error(status: int, message: str) -> anthropic.APIStatusError:
    request = httpx.Request("GET", "https://api.anthropic.com/v1/sessions/sesn_x")
    response = httpx.Response(status, request=request, json={"error": {"message": message}})
    return anthropic.APIStatusError(message, response=response, body={"error": {"message": message}})


def test_each_kind_of_failure_has_its_exit_code() -> None:
    request = httpx.Request("GET", "https://api.anthropic.com/v1/sessions")
    assert exit_code(BlockNotFoundError("no block")) == EXIT_BAD_INPUT
    assert exit_code(AgentVersionNotFoundError("no v9")) == EXIT_NOT_FOUND
    assert exit_code(SessionNotAttachableError("other agent", session_id="sesn_x")) == EXIT_NOT_FOUND
    assert exit_code(ApiUnreachableError("down")) == EXIT_UNREACHABLE
    assert exit_code(anthropic.APIConnectionError(request=request)) == EXIT_UNREACHABLE
    assert exit_code(_status_error(500, "boom")) == EXIT_API_ERROR


def test_a_failure_is_one_line_with_its_type_and_the_services_words() -> None:
    assert (
        one_line(BlockNotFoundError("No block 'x'.\nCreate it first.")) == "BlockNotFoundError: No block 'x'."
    )
    assert one_line(_status_error(409, "already exists")) == "APIStatusError: 409 already exists"
