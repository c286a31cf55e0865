"""Bad requests on sessions, events and resources: status, error class and envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.contract.session_support import (
    HEADERS,
    make_agent,
    make_environment,
    make_session,
    message,
    scenario,
    send,
)


def _envelope(exc: anthropic.APIStatusError, error_type: str) -> None:
    body: Any = exc.body
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == exc.request_id
    assert exc.response.headers["request-id"] == exc.request_id


UNKNOWN = "sesn_011CUnknownUnknownUnknown"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.beta.sessions.retrieve(UNKNOWN),
        lambda c: c.beta.sessions.update(UNKNOWN, title="x"),
        lambda c: c.beta.sessions.archive(UNKNOWN),
        lambda c: c.beta.sessions.delete(UNKNOWN),
        lambda c: c.beta.sessions.events.list(UNKNOWN),
        lambda c: c.beta.sessions.events.send(UNKNOWN, events=[message("hi")]),
        lambda c: c.beta.sessions.events.stream(UNKNOWN),
        lambda c: c.beta.sessions.resources.list(UNKNOWN),
        lambda c: c.beta.sessions.resources.retrieve("sesrsc_x", session_id=UNKNOWN),
    ],
)
def test_unknown_session_is_404(
    client: anthropic.Anthropic, call: Callable[[anthropic.Anthropic], Any]
) -> None:
    with pytest.raises(anthropic.NotFoundError) as exc:
        call(client)
    _envelope(exc.value, "not_found_error")
    assert exc.value.response.headers["x-should-retry"] == "false"


def test_archive_and_delete_while_running_are_400(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    send(client, session["id"], scenario(stream={"count": 200, "delay": 0.05}))
    with pytest.raises(anthropic.BadRequestError, match="while it is running") as archive:
        client.beta.sessions.archive(session["id"])
    _envelope(archive.value, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError, match="while it is running"):
        client.beta.sessions.delete(session["id"])
    send(client, session["id"], {"type": "user.interrupt"})


def test_send_to_terminated_is_409(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    from tests.contract.session_support import run_turn

    session = make_session(client)
    run_turn(client, emulator.url, session["id"], scenario(stop="terminated"))
    with pytest.raises(anthropic.ConflictError) as exc:
        client.beta.sessions.events.send(session["id"], events=[message("hi")])
    _envelope(exc.value, "invalid_request_error")


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "user.shout", "content": [{"type": "text", "text": "hi"}]}],
        [{"type": "system.message", "content": [{"type": "text", "text": "tz"}]}],
        [{"type": "user.message", "content": []}],
        [{"type": "user.message", "content": [{"type": "video"}]}],
        [{"type": "user.message", "content": [{"type": "text", "text": "hi"}], "extra": 1}],
        [{"type": "user.tool_confirmation", "tool_use_id": "sevt_x", "result": "maybe"}],
        [
            {
                "type": "user.define_outcome",
                "description": "d",
                "rubric": {"type": "text", "content": "r"},
                "max_iterations": 21,
            }
        ],
        [],
    ],
)
def test_bad_events_are_400(client: anthropic.Anthropic, events: list[dict[str, Any]]) -> None:
    session = make_session(client)
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.beta.sessions.events.send(session["id"], events=events)  # type: ignore[arg-type]
    _envelope(exc.value, "invalid_request_error")
    assert client.beta.sessions.events.list(session["id"]).data == []


def test_answers_must_name_a_pending_call(client: anthropic.Anthropic) -> None:
    session = make_session(client)
    with pytest.raises(anthropic.BadRequestError, match="does not name"):
        client.beta.sessions.events.send(
            session["id"],
            events=[{"type": "user.tool_confirmation", "tool_use_id": "sevt_nope", "result": "allow"}],
        )
    with pytest.raises(anthropic.BadRequestError, match="does not name"):
        client.beta.sessions.events.send(
            session["id"], events=[{"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_nope"}]
        )


def test_invalid_test_mode_scenario_is_400(client: anthropic.Anthropic) -> None:
    session = make_session(client)
    for text in ("#emulator {not json", '#emulator {"unknown_key": 1}', '#emulator {"retry": -1}'):
        with pytest.raises(anthropic.BadRequestError, match="#emulator"):
            client.beta.sessions.events.send(session["id"], events=[message(text)])


def test_bad_event_deltas_are_400(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with pytest.raises(anthropic.BadRequestError, match="event_deltas") as exc:
        client.beta.sessions.events.stream(session["id"], event_deltas=["span.model_request_start"])  # type: ignore[list-item]
    _envelope(exc.value, "invalid_request_error")


def test_missing_beta_header_is_400(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    headers = {"x-api-key": TEST_API_KEY}
    for method, path in [
        ("GET", f"/v1/sessions/{session['id']}"),
        ("GET", f"/v1/sessions/{session['id']}/events"),
        ("GET", f"/v1/sessions/{session['id']}/events/stream"),
        ("GET", f"/v1/sessions/{session['id']}/resources"),
        ("POST", "/v1/sessions"),
    ]:
        response = httpx.request(
            method, f"{emulator.url}{path}", headers=headers, json={} if method == "POST" else None
        )
        assert response.status_code == 400, path
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "managed-agents-2026-04-01" in response.json()["error"]["message"]
    ok = httpx.get(f"{emulator.url}/v1/sessions/{session['id']}", headers=HEADERS)
    assert ok.status_code == 200


def test_bad_create_parameters(client: anthropic.Anthropic) -> None:
    agent = make_agent(client)
    env = make_environment(client)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent="agent_unknown", environment_id=env.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(
            agent={"type": "agent", "id": agent.id, "version": 9}, environment_id=env.id
        )
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent.id, environment_id="env_unknown")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=env.id, resources=[{"type": "file", "file_id": "file_x"}]
        )
    with pytest.raises(anthropic.BadRequestError) as meta:
        client.beta.sessions.create(
            agent=agent.id, environment_id=env.id, metadata={f"k{i}": "v" for i in range(17)}
        )
    assert meta.value.body["error"]["details"]["error_code"] == "invalid_metadata"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent=agent.id, environment_id=env.id, initial_events=[message("x")] * 51)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env.id,
            budget={"type": "limit", "max_list_cost": {"amount": "ten", "currency": "USD"}},
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=env.id, extra_body={"model": "claude-opus-4-8"}
        )
    with pytest.raises(anthropic.BadRequestError, match="absolute"):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=env.id,
            resources=[{"type": "github_repository", "url": "https://github.com/a/b", "mount_path": "rel"}],
        )
    assert list(client.beta.sessions.list()) == []


def test_bad_list_parameters(client: anthropic.Anthropic) -> None:
    make_session(client)
    make_session(client)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(statuses=["sleeping"])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(created_at_gte="yesterday")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(limit=0)
    page = client.beta.sessions.list(limit=1, order="desc")
    assert page.next_page
    with pytest.raises(anthropic.BadRequestError, match="order"):
        client.beta.sessions.list(limit=1, order="asc", page=page.next_page)
