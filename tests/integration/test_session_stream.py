"""The consolidating event loop against the emulator over real HTTP/SSE (managed_agents_core/session_stream.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import pytest

from emulator import EmulatorConfig, EmulatorServer
from managed_agents_core.exceptions import SessionRequiresActionError, SessionTimeoutError
from managed_agents_core.outcome import classify
from managed_agents_core.session_stream import SessionStream
from managed_agents_core.turn import ConfirmationPolicy, TurnRequest
from tests.conftest import async_sdk_client, sdk_client
from tests.integration.session_helpers import (
    RemoteAgent,
    create_remote_agent,
    history_ids,
    message,
    scenario,
    settled,
    start_session,
)


@pytest.fixture
def remote_agent(client: anthropic.Anthropic) -> RemoteAgent:
    return create_remote_agent(client, ask_tools=("bash",))


async def test_drop_every_25_events_over_2000_events_has_no_gap_and_no_duplicate(
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = start_session(client, remote_agent)
    emulator.control.set_faults(drop_stream_after_events=25)
    engine = SessionStream(
        async_client,
        session_id,
        TurnRequest(kickoff=[message(scenario(stream={"count": 2000, "delay": 0.002}, reply="all done"))]),
    )
    end = await engine.run()
    emulator.control.set_faults()

    history = history_ids(client, session_id)
    seen = engine.transcript.event_ids
    assert end.kind == "idle" and end.stop_reason == "end_turn"
    assert len(history) > 2000
    assert len(seen) == len(set(seen)), "an event was handled twice"
    assert sorted(seen) == sorted(history), "the consolidated events differ from the server's history"
    # Apart from our own message (seen first as its queued echo), the order is the server's order.
    own = set(engine._state.kickoff_ids)
    assert [e for e in seen if e not in own] == [e for e in history if e not in own]
    assert engine.transcript.final_message == "all done"
    # Events arrive while we read (2 ms apart), so the stream really is cut mid-turn many times.
    drops = [r for r in emulator.control.requests() if r.get("injected") == "drop_stream"]
    assert engine.stats.reconnects >= 10
    assert len(drops) >= 10


async def test_the_end_of_a_long_turn_needs_no_history_read_after_the_first(
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = start_session(client, remote_agent)
    engine = SessionStream(
        async_client,
        session_id,
        TurnRequest(kickoff=[message(scenario(stream={"count": 3000}, reply="long"))]),
    )
    emulator.control.clear_requests()
    end = await engine.run()
    reads = [r for r in emulator.control.requests() if r["method"] == "GET" and r["path"].endswith("/events")]
    history = history_ids(client, session_id)
    assert (end.kind, end.stop_reason, end.event_id) == ("idle", "end_turn", history[-1])
    assert sorted(engine.transcript.event_ids) == sorted(history)
    # One history read when the stream opened (the kickoff was not processed yet); the idle that
    # follows our kickoff's processed echo on the same stream ends the turn (as in the SDK's
    # runner): the 3,000 events are never read again.
    assert engine.stats.history_reads == 1
    assert [r["query"] for r in reads] == ["limit=1000&order=asc"]


async def test_start_race_stale_idle_is_not_the_end(
    client: anthropic.Anthropic, async_client: anthropic.AsyncAnthropic, remote_agent: RemoteAgent
) -> None:
    session_id = start_session(client, remote_agent)
    engine = SessionStream(
        async_client, session_id, TurnRequest(kickoff=[message(scenario(start_race=0.5, reply="real end"))])
    )
    end = await engine.run()
    assert (end.kind, end.stop_reason) == ("idle", "end_turn")
    assert engine.transcript.final_message == "real end"
    # The stale idle was stream-only: the transcript holds it, but the turn ended on the later idle.
    assert end.event_id == history_ids(client, session_id)[-1]


@pytest.fixture
def closing_emulator() -> Iterator[EmulatorServer]:
    # Instant but for closing every stream on idle: the reconnect counted must come from that.
    with EmulatorServer(EmulatorConfig(close_stream_on_idle=True)) as server:
        yield server


async def test_reconnects_on_clean_end_of_stream_and_ignores_an_earlier_turns_idle(
    closing_emulator: EmulatorServer,
) -> None:
    with sdk_client(closing_emulator.url) as client:
        agent = create_remote_agent(client)
        session_id = start_session(client, agent)
        # An earlier turn is still running when ours is queued (1.5 s, so it still runs when our
        # stream opens): its idle closes the stream (a clean end of stream) and must not count
        # as the end of our turn.
        first = message(scenario(stream={"count": 150, "delay": 0.01}, reply="first"))
        client.beta.sessions.events.send(session_id, events=[first])  # type: ignore[list-item]
        async with async_sdk_client(closing_emulator.url) as aclient:
            engine = SessionStream(
                aclient,
                session_id,
                TurnRequest(kickoff=[message(scenario(reply="second", stream={"count": 40, "delay": 0.02}))]),
            )
            end = await engine.run()
        assert (end.kind, end.stop_reason) == ("idle", "end_turn")
        assert engine.transcript.final_message == "second"
        assert engine.stats.reconnects >= 1
        assert sorted(engine.transcript.event_ids) == sorted(history_ids(client, session_id))


async def test_max_duration_interrupts_and_times_out(
    client: anthropic.Anthropic, async_client: anthropic.AsyncAnthropic, remote_agent: RemoteAgent
) -> None:
    session_id = start_session(client, remote_agent)
    engine = SessionStream(
        async_client,
        session_id,
        TurnRequest(kickoff=[message(scenario(stream={"count": 10_000, "delay": 0.01}))], max_duration=1.0),
    )
    started = time.monotonic()
    end = await engine.run()
    assert end.kind == "timeout"
    assert time.monotonic() - started < 10
    types = [e.type for e in settled(client).beta.sessions.events.list(session_id, limit=1000)]
    assert "user.interrupt" in types
    assert settled(client).beta.sessions.retrieve(session_id).status == "idle"
    outcome = classify(end, [], session_id=session_id, console_url="https://c/x", max_duration=1.0)
    with pytest.raises(SessionTimeoutError) as info:
        outcome.raise_for_failure()
    assert info.value.session_id == session_id


@pytest.mark.parametrize(
    ("policy", "expected_note"),
    [
        (ConfirmationPolicy(allow_tools=["bash"]), "bash ran: ok"),
        (ConfirmationPolicy(default="deny", deny_message="not here"), "bash denied: not here"),
    ],
)
async def test_confirmation_policy_answers_requires_action(
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
    policy: ConfirmationPolicy,
    expected_note: str,
) -> None:
    session_id = start_session(client, remote_agent)
    prompt = scenario(tools=[{"name": "bash", "input": {"command": "ls"}}, {"name": "read", "input": {}}])
    engine = SessionStream(async_client, session_id, TurnRequest(kickoff=[message(prompt)], policy=policy))
    end = await engine.run()
    assert (end.kind, end.stop_reason) == ("idle", "end_turn")
    assert expected_note in engine.transcript.final_message
    assert engine.stats.confirmations_sent == 1  # read is always_allow; only bash asked


async def test_policy_fail_and_custom_tools_end_with_requires_action(
    client: anthropic.Anthropic, async_client: anthropic.AsyncAnthropic, remote_agent: RemoteAgent
) -> None:
    for prompt, detail in [
        (scenario(tools=[{"name": "bash"}]), "policy says fail"),
        (
            scenario(custom_tools=[{"name": "lookup_ticket", "input": {"id": "T-1"}}]),
            "custom tool 'lookup_ticket'",
        ),
    ]:
        session_id = start_session(client, remote_agent)
        engine = SessionStream(
            async_client, session_id, TurnRequest(kickoff=[message(prompt)], policy=ConfirmationPolicy())
        )
        end = await engine.run()
        assert end.kind == "requires_action"
        assert detail in (end.detail or "")
        assert len(end.pending_event_ids) == 1
        with pytest.raises(SessionRequiresActionError):
            classify(end, [], session_id=session_id, console_url=None).raise_for_failure()


async def test_resume_reads_the_history_and_sends_the_kickoff_only_once(
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = start_session(client, remote_agent)
    kickoff = [message(scenario(reply="once"))]
    first = SessionStream(async_client, session_id, TurnRequest(kickoff=kickoff, resume=True))
    assert (await first.run()).stop_reason == "end_turn"
    # A retry re-attaches: the history already holds the message and the turn's end.
    again = SessionStream(async_client, session_id, TurnRequest(kickoff=kickoff, resume=True))
    end = await again.run()
    assert (end.kind, end.stop_reason) == ("idle", "end_turn")
    assert again.transcript.final_message == "once"
    assert sorted(again.transcript.event_ids) == sorted(history_ids(client, session_id))
    sends = [
        r for r in emulator.control.requests() if r["method"] == "POST" and r["path"].endswith("/events")
    ]
    assert len(sends) == 1


async def test_commit_then_drop_on_the_kickoff_send_makes_one_turn(
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = start_session(client, remote_agent)
    emulator.control.set_faults(commit_then_drop=[f"POST /v1/sessions/{session_id}/events"])
    engine = SessionStream(async_client, session_id, TurnRequest(kickoff=[message(scenario(reply="single"))]))
    end = await engine.run()
    emulator.control.set_faults()
    assert end.stop_reason == "end_turn"
    messages = [
        e
        for e in settled(client).beta.sessions.events.list(session_id, limit=1000)
        if e.type == "user.message"
    ]
    assert len(messages) == 1


async def test_completes_with_20_percent_of_requests_failing(
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = start_session(client, remote_agent)
    emulator.control.set_faults(fail_rate=0.2, seed=7, drop_stream_after_events=40)
    engine = SessionStream(
        async_client, session_id, TurnRequest(kickoff=[message(scenario(stream={"count": 300}, reply="ok"))])
    )
    end = await engine.run()
    emulator.control.set_faults()
    assert end.stop_reason == "end_turn"
    assert sorted(engine.transcript.event_ids) == sorted(history_ids(client, session_id))
    assert any(r.get("injected") for r in emulator.control.requests())
