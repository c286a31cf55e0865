"""Helpers for the input/output integration tests: run one scripted turn on the emulator."""

from __future__ import annotations

import time
from typing import Any

import anthropic

from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import RemoteAgent, message, scenario


def credentials_for(url: str) -> Any:
    """An ``AnthropicCredentials`` block pointed at the emulator (never saved)."""
    from blocks.credentials import AnthropicCredentials

    return AnthropicCredentials(api_key=TEST_API_KEY, base_url=url, max_retries=2)


def wait_for_idle(client: anthropic.Anthropic, session_id: str, timeout: float = 60.0) -> None:
    """Poll the session's history until its turn ended (idle or terminated)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        types = [e.type for e in client.beta.sessions.events.list(session_id, limit=1000)]
        if "session.status_idle" in types or "session.status_terminated" in types:
            return
        time.sleep(0.05)
    raise AssertionError(f"session {session_id} did not go idle within {timeout} s")


def run_turn(
    client: anthropic.Anthropic,
    agent: RemoteAgent,
    resources: list[dict[str, Any]] | None = None,
    **keys: Any,
) -> str:
    """Create a session, send one test-mode message (``#emulator {keys}``), wait for its end.

    Returns:
        The session id.
    """
    session = client.beta.sessions.create(
        agent=agent.reference(),  # type: ignore[arg-type]
        environment_id=agent.environment_id,
        resources=resources or [],  # type: ignore[arg-type]
    )
    client.beta.sessions.events.send(session.id, events=[message(scenario(**keys))])  # type: ignore[list-item]
    wait_for_idle(client, session.id)
    return session.id


def content_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``GET /v1/files/{id}/content`` lines of the emulator's request log."""
    return [r for r in requests if r["method"] == "GET" and r["path"].endswith("/content")]
