"""Multi-agent sessions: session threads and the ``delegate`` scenario (emulator/SCENARIOS.md).

Through the real SDK over HTTP: a coordinator delegates to agents of its roster, each in a child
thread; the primary stream shows the condensed view, each thread keeps its own history, and the
thread endpoints (list, retrieve, archive, events, stream) answer in the SDK's shapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import pytest
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import (
    BetaManagedAgentsAgentThreadMessageReceivedEvent,
    BetaManagedAgentsAgentThreadMessageSentEvent,
    BetaManagedAgentsSessionThread,
    BetaManagedAgentsSessionThreadCreatedEvent,
    BetaManagedAgentsSessionThreadStatusIdleEvent,
    BetaManagedAgentsSessionThreadStatusRunningEvent,
    BetaManagedAgentsStreamSessionThreadEvents,
)
from pydantic import TypeAdapter

from emulator import EmulatorConfig, EmulatorProcess, EmulatorServer, FaultConfig
from tests.conftest import sdk_client
from tests.contract.session_support import (
    BETA,
    EVENT,
    HEADERS,
    STREAM_EVENT,
    make_agent,
    make_environment,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
    types_of,
)
from tests.contract.strict import body_of, strict

T = TypeVar("T")
DEADLINE = 10.0
THREAD_STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(BetaManagedAgentsStreamSessionThreadEvents)

DELEGATION = [
    "session.thread_created",
    "agent.thread_message_sent",
    "session.thread_status_running",
    "session.thread_status_idle",
    "agent.thread_message_received",
]
"""What one delegation adds to the primary stream."""
CHILD_HISTORY = [
    "agent.thread_message_received",
    "session.thread_status_running",
    "span.model_request_start",
    "agent.message",
    "span.model_request_end",
    "agent.thread_message_sent",
    "session.thread_status_idle",
]
"""A child thread's own history."""
TYPED = {
    "session.thread_created": BetaManagedAgentsSessionThreadCreatedEvent,
    "agent.thread_message_sent": BetaManagedAgentsAgentThreadMessageSentEvent,
    "session.thread_status_running": BetaManagedAgentsSessionThreadStatusRunningEvent,
    "session.thread_status_idle": BetaManagedAgentsSessionThreadStatusIdleEvent,
    "agent.thread_message_received": BetaManagedAgentsAgentThreadMessageReceivedEvent,
}


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``condition`` every 50 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def make_team(client: anthropic.Anthropic, **coordinator: Any) -> dict[str, Any]:
    """Two callee agents, a coordinator with both on its roster, and a session of it."""
    researcher = make_agent(client, name="researcher")
    writer = make_agent(client, name="writer")
    roster = [{"type": "agent", "id": a.id, "version": a.version} for a in (researcher, writer)]
    params: dict[str, Any] = {"name": "lead", "multiagent": {"type": "coordinator", "agents": roster}}
    lead = make_agent(client, **{**params, **coordinator})
    session = make_session(client, agent=lead.id, environment_id=make_environment(client).id)
    return {"researcher": researcher, "writer": writer, "lead": lead, "session": session}


def list_threads(client: anthropic.Anthropic, session_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every listed thread (all pages), each strictly validated."""
    threads: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        query = {**params, **({"page": page} if page else {})}
        body = body_of(client.beta.sessions.threads.with_raw_response.list(session_id, **query))
        for thread in body["data"]:
            strict(BetaManagedAgentsSessionThread, thread)
        threads.extend(body["data"])
        page = body["next_page"]
        if not page:
            return threads


def thread_history(client: anthropic.Anthropic, session_id: str, thread_id: str) -> list[dict[str, Any]]:
    """A thread's listed events, each strictly validated as the SDK's list union."""
    raw = client.beta.sessions.threads.events.with_raw_response.list(thread_id, session_id=session_id)
    body = body_of(raw)
    for event in body["data"]:
        EVENT.validate_python(event)
    assert body["next_page"] is None
    return list(body["data"])


def retrieve(client: anthropic.Anthropic, session_id: str) -> dict[str, Any]:
    """The strictly validated raw session body."""
    body: dict[str, Any] = body_of(client.beta.sessions.with_raw_response.retrieve(session_id))
    strict(BetaManagedAgentsSession, body)
    return body


def text(event: dict[str, Any]) -> str:
    """The text of an event's first content block."""
    return str(event["content"][0]["text"])


def own_request_usage(client: anthropic.Anthropic, session_id: str, thread_id: str) -> tuple[int, int]:
    """The tokens of the thread's model requests, from its ``span.model_request_end`` events."""
    ends = [e for e in thread_history(client, session_id, thread_id) if e["type"] == "span.model_request_end"]
    return (
        sum(e["model_usage"]["input_tokens"] for e in ends),
        sum(e["model_usage"]["output_tokens"] for e in ends),
    )


def test_delegate_runs_child_threads_in_order(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    delegate = [
        {
            "agent": "researcher",
            "task": "Find the facts",
            "outputs": [{"name": "facts.csv", "size": 32}],
            "cost": 3,
        },
        {"agent": team["writer"].id, "task": "Write it up", "reply": "Draft ready", "cost": 2},
    ]
    streamed = run_turn(client, emulator.url, session_id, scenario(reply="Summary.", delegate=delegate))

    assert types_of(streamed) == [
        "user.message",
        "session.status_running",
        "user.message",
        "span.model_request_start",
        "agent.thinking",
        *DELEGATION,
        *DELEGATION,
        "agent.message",
        "span.model_request_end",
        "session.usage",
        "session.status_idle",
    ]
    for event in streamed:
        parsed = STREAM_EVENT.validate_python(event)
        if event["type"] in TYPED:
            assert isinstance(parsed, TYPED[event["type"]])
    # Listed history: the same events (the message once, where it was processed).
    listed = thread_history(client, session_id, list_threads(client, session_id)[0]["id"])
    assert [e["id"] for e in listed] == [e["id"] for e in streamed[1:]]

    threads = list_threads(client, session_id)
    primary, research, write = threads
    first, second = streamed[5:10], streamed[10:15]
    for (created, sent, running, idle, received), child, name, task, reply in (
        (first, research, "researcher", "Find the facts", "Done: Find the facts"),
        (second, write, "writer", "Write it up", "Draft ready"),
    ):
        assert created["session_thread_id"] == child["id"] and created["agent_name"] == name
        assert sent["to_session_thread_id"] == child["id"] and sent["to_agent_name"] == name
        assert sent["content"] == [{"type": "text", "text": task}]
        assert (running["session_thread_id"], running["agent_name"]) == (child["id"], name)
        assert (idle["session_thread_id"], idle["agent_name"]) == (child["id"], name)
        assert idle["stop_reason"] == {"type": "end_turn"}
        assert received["from_session_thread_id"] == child["id"] and received["from_agent_name"] == name
        assert received["content"] == [{"type": "text", "text": reply}]
        # The child's own history; its status events are the cross-posted ones (same ids).
        own = thread_history(client, session_id, child["id"])
        assert types_of(own) == CHILD_HISTORY
        assert own[0]["from_session_thread_id"] == primary["id"] and "from_agent_name" not in own[0]
        assert text(own[0]) == task and text(own[3]) == reply
        assert own[4]["model_request_start_id"] == own[2]["id"]
        assert own[5]["to_session_thread_id"] == primary["id"] and text(own[5]) == reply
        assert (own[1]["id"], own[6]["id"]) == (running["id"], idle["id"])
    reply_text = text(streamed[-4])
    assert reply_text == "Summary. researcher said: Done: Find the facts writer said: Draft ready"

    # Threads: one primary, two children of it, every one idle like the session.
    assert primary["parent_thread_id"] is None
    assert [t["parent_thread_id"] for t in (research, write)] == [primary["id"]] * 2
    assert [t["agent"]["name"] for t in threads] == ["lead", "researcher", "writer"]
    assert [t["agent"]["id"] for t in threads] == [team["lead"].id, team["researcher"].id, team["writer"].id]
    assert all(t["session_id"] == session_id and t["id"].startswith("sthr_") for t in threads)
    assert "multiagent" not in primary["agent"]
    assert {t["status"] for t in threads} == {"idle"}
    assert list_threads(client, session_id, statuses=["running", "terminated"]) == []
    assert len(list_threads(client, session_id, statuses=["idle"])) == 3
    assert [t["id"] for t in list_threads(client, session_id, limit=1)] == [t["id"] for t in threads]
    sdk_threads = list(client.beta.sessions.threads.list(session_id, limit=2))
    assert [t.id for t in sdk_threads] == [t["id"] for t in threads]
    one = client.beta.sessions.threads.retrieve(research["id"], session_id=session_id)
    assert one.id == research["id"] and one.parent_thread_id == primary["id"] and one.status == "idle"
    assert one.stats is not None and one.stats.startup_seconds == 0

    # Usage: each child's own; the session's is the sum over threads (tokens and list cost).
    session = retrieve(client, session_id)
    assert [t["usage"]["list_cost"]["amount"] for t in threads] == ["1", "3", "2"]
    assert session["usage"]["list_cost"] == {"amount": "6", "currency": "USD"}
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens"):
        assert session["usage"][key] == sum(t["usage"][key] for t in threads)
    assert all(t["usage"]["input_tokens"] > 0 and t["usage"]["output_tokens"] > 0 for t in threads)
    for child in (research, write):
        tokens = (child["usage"]["input_tokens"], child["usage"]["output_tokens"])
        assert tokens == own_request_usage(client, session_id, child["id"])
    usage_event = streamed[-2]["usage"]
    assert (usage_event["input_tokens"], usage_event["list_cost"]) == (
        session["usage"]["input_tokens"],
        session["usage"]["list_cost"],
    )

    # The callee's output is a session output like any other.
    (output,) = client.beta.files.list(scope_id=session_id, betas=[BETA])
    assert output.filename == "facts.csv" and output.size_bytes == 32
    assert output.scope is not None and output.scope.id == session_id

    # Archive a child; the primary thread is archived with its session only.
    archived = body_of(
        client.beta.sessions.threads.with_raw_response.archive(write["id"], session_id=session_id)
    )
    strict(BetaManagedAgentsSessionThread, archived)
    assert archived["archived_at"] is not None
    again = client.beta.sessions.threads.retrieve(write["id"], session_id=session_id)
    assert again.archived_at is not None and again.stats is not None
    assert len(list_threads(client, session_id)) == 3
    with pytest.raises(anthropic.BadRequestError, match="primary thread"):
        client.beta.sessions.threads.archive(primary["id"], session_id=session_id)


def test_every_session_has_a_primary_thread(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    (primary,) = list_threads(client, session["id"])
    assert primary["parent_thread_id"] is None and primary["status"] == "idle"
    assert primary["agent"] == {k: v for k, v in session["agent"].items() if k != "multiagent"}
    assert primary["created_at"] == session["created_at"]
    streamed = run_turn(client, emulator.url, session["id"], scenario(reply="solo", cost=4))
    assert "session.thread_created" not in types_of(streamed)
    (primary,) = list_threads(client, session["id"])
    assert primary["usage"]["list_cost"] == {"amount": "4", "currency": "USD"}
    assert primary["usage"]["input_tokens"] == retrieve(client, session["id"])["usage"]["input_tokens"]
    # The primary thread's history and stream are the session's.
    assert (
        thread_history(client, session["id"], primary["id"])
        == body_of(client.beta.sessions.events.with_raw_response.list(session["id"]))["data"]
    )
    with client.beta.sessions.threads.events.stream(primary["id"], session_id=session["id"]) as stream:
        send(client, session["id"], scenario(reply="again"))
        seen = []
        for event in stream:
            seen.append(event.type)
            if event.type == "session.status_idle":
                break
    assert seen[-4:] == ["agent.message", "span.model_request_end", "session.usage", "session.status_idle"]


def test_delegate_to_self_and_to_multiagent_20261001_subagents(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    helper = make_agent(client, name="helper")
    lead = make_agent(
        client,
        name="lead",
        multiagent={"type": "coordinator", "agents": [{"type": "self"}, {"type": "agent", "id": helper.id}]},
    )
    session_id = make_session(client, agent=lead.id)["id"]
    streamed = run_turn(
        client, emulator.url, session_id, scenario(delegate=[{"agent": "self", "task": "Recurse"}])
    )
    created = next(e for e in streamed if e["type"] == "session.thread_created")
    assert created["agent_name"] == "lead"
    child = client.beta.sessions.threads.retrieve(created["session_thread_id"], session_id=session_id)
    assert child.agent.id == lead.id

    modern = make_agent(
        client,
        name="modern",
        multiagent={
            "type": "multiagent_20261001",
            "subagents": {"type": "enabled", "predefined_agents": [{"type": "agent", "id": helper.id}]},
        },
    )
    session_id = make_session(client, agent=modern.id)["id"]
    streamed = run_turn(
        client, emulator.url, session_id, scenario(delegate=[{"agent": "helper", "task": "Help"}])
    )
    assert "helper said: Done: Help" in text(next(e for e in streamed[::-1] if e["type"] == "agent.message"))


def test_a_coordinators_ordinary_message_goes_to_each_other_roster_agent(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    streamed = run_turn(client, emulator.url, session_id, message("Brief me on our markets."))
    sent = [e for e in streamed if e["type"] == "agent.thread_message_sent"]
    assert [(e["to_agent_name"], text(e)) for e in sent] == [
        ("researcher", "Brief me on our markets."),
        ("writer", "Brief me on our markets."),
    ]
    reply = text(next(e for e in streamed[::-1] if e["type"] == "agent.message"))
    assert "researcher said: Done: Brief me on our markets." in reply and "Wrote report.md" in reply


def test_delegate_is_validated_at_send_time(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    with pytest.raises(anthropic.BadRequestError, match="not on the multiagent roster") as unknown:
        client.beta.sessions.events.send(
            session_id, events=[scenario(delegate=[{"agent": "nobody", "task": "x"}])]
        )
    assert unknown.value.type == "invalid_request_error"
    assert "researcher" in str(unknown.value) and team["writer"].id in str(unknown.value)

    single = make_session(client)
    with pytest.raises(anthropic.BadRequestError, match="no multiagent configuration"):
        client.beta.sessions.events.send(
            single["id"], events=[scenario(delegate=[{"agent": "researcher", "task": "x"}])]
        )
    with pytest.raises(anthropic.BadRequestError, match="no multiagent configuration"):
        client.beta.sessions.create(
            agent=single["agent"]["id"],
            environment_id=single["environment_id"],
            initial_events=[scenario(delegate=[{"agent": "x", "task": "y"}])],
        )
    with pytest.raises(anthropic.BadRequestError, match="not a thread of session"):
        client.beta.sessions.events.send(
            session_id, events=[{"type": "user.interrupt", "session_thread_id": "sthr_unknown"}]
        )
    # Nothing was accepted.
    assert body_of(client.beta.sessions.events.with_raw_response.list(session_id))["data"] == []
    assert body_of(client.beta.sessions.events.with_raw_response.list(single["id"]))["data"] == []


def test_unknown_session_or_thread_is_404(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session_id = make_session(client)["id"]
    calls: list[Callable[[], Any]] = [
        lambda: client.beta.sessions.threads.list("sesn_unknown"),
        lambda: client.beta.sessions.threads.retrieve("sthr_unknown", session_id=session_id),
        lambda: client.beta.sessions.threads.archive("sthr_unknown", session_id=session_id),
        lambda: client.beta.sessions.threads.events.list("sthr_unknown", session_id=session_id),
        lambda: client.beta.sessions.threads.events.stream("sthr_unknown", session_id=session_id),
    ]
    for call in calls:
        with pytest.raises(anthropic.NotFoundError) as error:
            call()
        assert error.value.type == "not_found_error"
        body = error.value.body
        assert isinstance(body, dict) and body["type"] == "error"
        assert body["error"]["type"] == "not_found_error" and body["request_id"].startswith("req_")
    other = make_session(client)
    (primary,) = list_threads(client, other["id"])
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve(primary["id"], session_id=session_id)
    with pytest.raises(anthropic.BadRequestError, match="statuses"):
        client.beta.sessions.threads.list(session_id, statuses=["sleeping"])  # type: ignore[list-item]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(event_delay=1.0)])
def test_thread_stream_carries_the_childs_own_events(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    with raw_stream(emulator.url, session_id) as primary:
        send(client, session_id, scenario(delegate=[{"agent": "researcher", "task": "Dig"}]))
        created = next(e for e in primary.events() if e["type"] == "session.thread_created")
        thread_id = created["session_thread_id"]
        # Like a session stream, a thread stream carries what happens after it opens (a slow
        # machine may open it after the child's first events: those are in the history only).
        with client.beta.sessions.threads.events.stream(thread_id, session_id=session_id) as stream:
            own = []
            for event in stream:
                own.append(event)
                if event.type == "session.thread_status_idle":
                    break
        rest = primary.until_turn_ends()
    history = [e["id"] for e in thread_history(client, session_id, thread_id)]
    assert own and [e.id for e in own] == history[len(history) - len(own) :]
    assert [e.type for e in own] == CHILD_HISTORY[len(CHILD_HISTORY) - len(own) :]
    assert "agent.message" in [e.type for e in own]  # the child's reply comes seconds after it started
    for event in own:
        THREAD_STREAM_EVENT.validate_python(event.model_dump(mode="json"))
    assert types_of(rest)[:4] == DELEGATION[1:]
    assert rest[-1]["type"] == "session.status_idle"


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(event_delay=1.0)])  # seconds to interrupt in
def test_interrupt_during_a_child_thread_idles_it(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    with raw_stream(emulator.url, session_id) as stream:
        send(client, session_id, scenario(delegate=[{"agent": "researcher", "task": "Slow"}]))
        running = next(e for e in stream.events() if e["type"] == "session.thread_status_running")
        send(
            client, session_id, {"type": "user.interrupt", "session_thread_id": running["session_thread_id"]}
        )
        rest = stream.until_turn_ends()
    assert types_of(rest)[-1] == "session.status_idle"
    idle = next(e for e in rest if e["type"] == "session.thread_status_idle")
    assert idle["session_thread_id"] == running["session_thread_id"]
    assert idle["stop_reason"] == {"type": "end_turn"}
    assert "agent.thread_message_received" not in types_of(rest)
    child = client.beta.sessions.threads.retrieve(running["session_thread_id"], session_id=session_id)
    assert child.status == "idle" and child.usage is not None
    own = thread_history(client, session_id, child.id)
    assert types_of(own)[-1] == "session.thread_status_idle"
    starts = [e["id"] for e in own if e["type"] == "span.model_request_start"]
    ends = [e["model_request_start_id"] for e in own if e["type"] == "span.model_request_end"]
    assert starts == ends
    # The session is usable again.
    again = run_turn(client, emulator.url, session_id, scenario(delegate=[{"agent": "writer", "task": "Go"}]))
    assert again[-1]["stop_reason"] == {"type": "end_turn"}
    assert len(list_threads(client, session_id)) == 3


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(history_lag=3.0)])
def test_thread_events_lag_like_session_events(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    team = make_team(client)
    session_id = team["session"]["id"]
    streamed = run_turn(
        client, emulator.url, session_id, scenario(delegate=[{"agent": "writer", "task": "W"}])
    )
    thread_id = next(e for e in streamed if e["type"] == "session.thread_created")["session_thread_id"]
    assert len(thread_history(client, session_id, thread_id)) < len(CHILD_HISTORY)
    listed = wait_for(
        lambda: len(events := thread_history(client, session_id, thread_id)) == len(CHILD_HISTORY) and events,
        "the child's history to be listed",
    )
    assert types_of(listed) == CHILD_HISTORY


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(faults=FaultConfig(stream_open_429_rate=1.0, retry_after_seconds=0.1))]
)
def test_thread_stream_meets_stream_faults(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session_id = make_session(client)["id"]
    (primary,) = list_threads(client, session_id)
    with httpx.Client(base_url=emulator.url, headers=HEADERS) as http:
        response = http.get(f"/v1/sessions/{session_id}/threads/{primary['id']}/stream")
    assert response.status_code == 429 and response.headers["retry-after"] == "0.1"
    assert any(r["injected"] == "stream_429" for r in emulator.control.requests())


def without_duration(threads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Threads without ``stats.duration_seconds`` (it grows with the clock)."""
    return [{**t, "stats": {**t["stats"], "duration_seconds": None}} for t in threads]


def test_threads_survive_a_restart_and_running_children_fail_clearly(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    log = tmp_path / "emulator.log"

    def saved_child_status(session_id: str) -> str | None:
        saved = json.loads(state.read_text()) if state.exists() else {}
        children = saved.get("threads", {}).get(session_id, [])[1:]
        return str(children[0]["status"]) if children else None

    proc = EmulatorProcess(["--state", str(state)], log_path=log).start()
    try:
        with sdk_client(proc.url) as client:
            team = make_team(client)
            done_id = team["session"]["id"]
            run_turn(client, proc.url, done_id, scenario(delegate=[{"agent": "writer", "task": "Done"}]))
            done_threads = list_threads(client, done_id)
            done_events = thread_history(client, done_id, done_threads[1]["id"])
            cut_id = make_session(client, agent=team["lead"].id)["id"]
            send(client, cut_id, scenario(delay=1.5, delegate=[{"agent": "researcher", "task": "Cut"}]))
            # Killed once the state file holds the child running (saved every 0.5 s; it runs ~4.5 s).
            wait_for(lambda: saved_child_status(cut_id) == "running", "the running child to be saved", 60)
    finally:
        proc.stop(kill=True)

    proc = EmulatorProcess(["--state", str(state)], port=proc.port, log_path=log).start()
    try:
        with sdk_client(proc.url) as client:
            assert without_duration(list_threads(client, done_id)) == without_duration(done_threads)
            assert thread_history(client, done_id, done_threads[1]["id"]) == done_events
            primary, child = list_threads(client, cut_id)
            assert child["status"] == "idle" and primary["status"] == "idle"
            tail = thread_history(client, cut_id, child["id"])[-1]
            assert tail["type"] == "session.thread_status_idle"
            assert tail["stop_reason"] == {"type": "retries_exhausted"}
            assert types_of(thread_history(client, cut_id, primary["id"])[-3:]) == [
                "session.thread_status_idle",
                "session.error",
                "session.status_idle",
            ]
    finally:
        proc.stop(kill=True)
