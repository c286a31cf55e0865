"""Every scripted scenario of emulator/SCENARIOS.md, through the real SDK (sync and async)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsSession

from emulator import EmulatorConfig, EmulatorServer
from emulator.blobs import generated_sha256
from tests.contract.session_support import (
    BETA,
    STREAM_EVENT,
    RawStream,
    ends_turn,
    history,
    make_agent,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
    types_of,
)
from tests.contract.strict import body_of, strict


def _until_idle(stream: RawStream) -> list[dict[str, Any]]:
    out = []
    for event in stream.events():
        out.append(event)
        if event["type"] in ("session.status_idle", "session.status_terminated"):
            return out
    raise AssertionError("stream ended")


def _reply(events: list[dict[str, Any]]) -> str:
    texts = [e["content"][0]["text"] for e in events if e["type"] == "agent.message"]
    return str(texts[-1])


def _retrieve(client: anthropic.Anthropic, session_id: str) -> dict[str, Any]:
    body: dict[str, Any] = body_of(client.beta.sessions.with_raw_response.retrieve(session_id))
    strict(BetaManagedAgentsSession, body)
    return body


def test_default_turn_reports_inputs_and_writes_memory(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    content = b"alpha beta\ngamma\n"
    upload = client.beta.files.upload(file=("in.txt", content, "text/plain"))
    store = client.beta.memory_stores.create(name="Team Notes")
    readonly = client.beta.memory_stores.create(name="Read Only")
    session = make_session(
        client,
        resources=[
            {"type": "file", "file_id": upload.id, "mount_path": "/workspace/in.txt"},
            {"type": "memory_store", "memory_store_id": store.id},
            {"type": "memory_store", "memory_store_id": readonly.id, "access": "read_only"},
        ],
    )
    events = run_turn(client, emulator.url, session["id"], message("Summarise the inputs"))
    assert _reply(events) == "Turn 1 done. Wrote report.md."
    (report,) = client.beta.files.list(scope_id=session["id"], betas=[BETA])
    assert report.filename == "report.md" and report.scope is not None and report.scope.id == session["id"]
    text = client.beta.files.download(report.id).text()
    digest = hashlib.sha256(content).hexdigest()
    assert f"| in.txt | /workspace/in.txt | {len(content)} | 2 | 3 | {digest} |" in text
    memories = list(client.beta.memory_stores.memories.list(store.id))
    assert [m.path for m in memories] == [f"/sessions/{session['id']}/turn-1.md"]
    assert list(client.beta.memory_stores.memories.list(readonly.id)) == []
    body = _retrieve(client, session["id"])
    assert body["usage"]["list_cost"] == {"amount": "1", "currency": "USD"}
    assert body["usage"]["input_tokens"] > 0 and body["stats"]["active_seconds"] >= 0
    usage_event = next(e for e in events if e["type"] == "session.usage")
    assert usage_event["usage"]["output_tokens"] == body["usage"]["output_tokens"]


def test_always_allow_tool_runs_inline(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    events = run_turn(
        client,
        emulator.url,
        session["id"],
        scenario(
            tools=[
                {"name": "bash", "input": {"command": "ls"}, "permission": "always_allow", "result": "a.txt"}
            ]
        ),
    )
    use = next(e for e in events if e["type"] == "agent.tool_use")
    assert use["evaluated_permission"] == "allow" and use["evaluation"] == {"type": "always_allow"}
    result = next(e for e in events if e["type"] == "agent.tool_result")
    assert result["tool_use_id"] == use["id"] and result["content"] == [{"type": "text", "text": "a.txt"}]
    assert "bash ran: a.txt" in _reply(events)
    assert "requires_action" not in str(events)


def test_always_ask_allow_deny_and_partial_answers(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    tools = [
        {"name": "bash", "input": {"command": "rm -rf /"}, "permission": "always_ask", "result": "removed"},
        {"name": "write", "input": {"path": "/x"}, "permission": "always_ask", "result": "written"},
    ]
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(tools=tools))
        first = _until_idle(stream)
        uses = [e for e in first if e["type"] == "agent.tool_use"]
        assert [u["evaluated_permission"] for u in uses] == ["ask", "ask"]
        assert first[-1]["stop_reason"] == {"type": "requires_action", "event_ids": [u["id"] for u in uses]}
        assert _retrieve(client, session["id"])["status"] == "idle"

        send(
            client,
            session["id"],
            {"type": "user.tool_confirmation", "tool_use_id": uses[1]["id"], "result": "allow"},
        )
        partial = _until_idle(stream)
        assert types_of(partial) == [
            "user.tool_confirmation",
            "user.tool_confirmation",
            "session.status_idle",
        ]
        assert partial[-1]["stop_reason"] == {"type": "requires_action", "event_ids": [uses[0]["id"]]}

        send(
            client,
            session["id"],
            {
                "type": "user.tool_confirmation",
                "tool_use_id": uses[0]["id"],
                "result": "deny",
                "deny_message": "too risky",
            },
        )
        rest = stream.until_turn_ends()
    assert types_of(rest)[:3] == [
        "user.tool_confirmation",
        "user.tool_confirmation",
        "session.status_running",
    ]
    results = [e for e in rest if e["type"] == "agent.tool_result"]
    assert [r["tool_use_id"] for r in results] == [uses[1]["id"]]
    reply = _reply(rest)
    assert "bash denied: too risky" in reply and "write ran: written" in reply
    assert rest[-1]["stop_reason"] == {"type": "end_turn"}


def test_permission_comes_from_the_agent_toolset(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    agent = make_agent(
        client,
        tools=[
            {
                "type": "agent_toolset_20260401",
                "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
            }
        ],
    )
    session = make_session(client, agent=agent.id)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(tools=[{"name": "bash"}, {"name": "read"}]))
        events = _until_idle(stream)
        send(client, session["id"], {"type": "user.interrupt"})
        stream.until_turn_ends()
    uses = [e for e in events if e["type"] == "agent.tool_use"]
    assert [(u["name"], u["evaluated_permission"]) for u in uses] == [("bash", "ask"), ("read", "allow")]


def test_several_custom_tools_pending_at_once(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    calls = [
        {"name": "lookup_ticket", "input": {"id": "T-1"}},
        {"name": "lookup_ticket", "input": {"id": "T-2"}},
    ]
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(custom_tools=calls))
        first = _until_idle(stream)
        uses = [e for e in first if e["type"] == "agent.custom_tool_use"]
        assert [u["input"] for u in uses] == [{"id": "T-1"}, {"id": "T-2"}]
        assert first[-2]["type"] == "span.model_request_end"
        assert first[-1]["stop_reason"]["event_ids"] == [u["id"] for u in uses]
        send(
            client,
            session["id"],
            *[
                {
                    "type": "user.custom_tool_result",
                    "custom_tool_use_id": u["id"],
                    "content": [{"type": "text", "text": f"open {i}"}],
                }
                for i, u in enumerate(uses)
            ],
        )
        rest = stream.until_turn_ends()
    reply = _reply(rest)
    assert "lookup_ticket returned: open 0" in reply and "lookup_ticket returned: open 1" in reply
    # Answering an already answered call is refused.
    with pytest.raises(anthropic.BadRequestError, match="does not name"):
        client.beta.sessions.events.send(
            session["id"], events=[{"type": "user.custom_tool_result", "custom_tool_use_id": uses[0]["id"]}]
        )


def test_multi_turn_state(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    run_turn(client, emulator.url, session["id"], scenario(remember="blue"))
    run_turn(client, emulator.url, session["id"], scenario(remember="green"))
    third = run_turn(client, emulator.url, session["id"], scenario(recall=True))
    assert _reply(third) == "Turn 3 done. Remembered: blue, green."
    assert types_of(history(client, session["id"])).count("session.status_idle") == 3


def test_retrying_error_then_success(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    events = run_turn(client, emulator.url, session["id"], scenario(retry=2, reply="recovered"))
    errors = [e for e in events if e["type"] == "session.error"]
    assert [e["error"]["retry_status"] for e in errors] == [{"type": "retrying"}] * 2
    assert errors[0]["error"]["type"] == "model_overloaded_error"
    kinds = types_of(events)
    assert kinds.count("session.status_rescheduled") == 2
    first_error = kinds.index("session.error")
    assert kinds[first_error - 1] == "span.model_request_end"
    assert kinds[first_error + 1 : first_error + 3] == [
        "session.status_rescheduled",
        "session.status_running",
    ]
    failed_end = events[first_error - 1]
    assert failed_end["is_error"] is True
    assert _reply(events) == "recovered" and events[-1]["stop_reason"] == {"type": "end_turn"}


@pytest.mark.parametrize(
    ("keys", "stop_reason"),
    [
        ({"stop": "retries_exhausted", "retry": 1}, {"type": "retries_exhausted"}),
        ({"stop": "budget_reached"}, {"type": "budget_reached"}),
        ({"stop": "refusal", "refusal_category": "cyber"}, {"type": "refusal"}),
    ],
)
def test_failing_endings(
    client: anthropic.Anthropic, emulator: EmulatorServer, keys: dict[str, Any], stop_reason: dict[str, Any]
) -> None:
    session = make_session(client)
    events = run_turn(client, emulator.url, session["id"], scenario(**keys))
    idle = events[-1]
    assert idle["type"] == "session.status_idle" and idle["stop_reason"] == stop_reason
    assert "agent.message" not in types_of(events)
    if stop_reason["type"] == "retries_exhausted":
        statuses = [e["error"]["retry_status"]["type"] for e in events if e["type"] == "session.error"]
        assert statuses == ["retrying", "exhausted"]
    if stop_reason["type"] == "refusal":
        assert idle["stop_details"]["type"] == "refusal" and idle["stop_details"]["category"] == "cyber"
    assert _retrieve(client, session["id"])["status"] == "idle"


def test_budget_on_the_session_stops_the_next_turn(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(
        client, budget={"type": "limit", "max_list_cost": {"amount": "3", "currency": "USD"}}
    )
    first = run_turn(client, emulator.url, session["id"], scenario(cost=3))
    assert first[-1]["stop_reason"] == {"type": "end_turn"}
    usage = next(e for e in first if e["type"] == "session.usage")
    assert usage["budget"]["max_list_cost"]["amount"] == "3"
    second = run_turn(client, emulator.url, session["id"], message("more"))
    assert second[-1]["stop_reason"] == {"type": "budget_reached"}
    assert "span.model_request_start" not in types_of(second)


def test_terminated(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    events = run_turn(client, emulator.url, session["id"], scenario(stop="terminated"))
    assert types_of(events)[-2:] == ["session.error", "session.status_terminated"]
    assert events[-2]["error"]["retry_status"] == {"type": "terminal"}
    body = _retrieve(client, session["id"])
    assert body["status"] == "terminated"
    duration = body["stats"]["duration_seconds"]
    time.sleep(0.05)
    assert _retrieve(client, session["id"])["stats"]["duration_seconds"] == duration


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(output_listing_delay=0.6)])
def test_output_files_sizes_names_and_listing_delay(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    outputs = [
        {"name": "../evil.txt", "size": 10},
        {"name": "/etc/passwd", "size": 0},
        {"size": 3_000_000_000, "seed": 7},
        {"name": "data.csv", "size": 70_000, "seed": 3},
    ]
    run_turn(client, emulator.url, session["id"], scenario(outputs=outputs))
    assert list(client.beta.files.list(scope_id=session["id"], betas=[BETA])) == []
    time.sleep(0.7)
    files = {f.filename: f for f in client.beta.files.list(scope_id=session["id"], betas=[BETA])}
    assert set(files) == {"../evil.txt", "/etc/passwd", "output-3.bin", "data.csv"}
    assert files["output-3.bin"].size_bytes == 3_000_000_000
    assert files["data.csv"].mime_type == "text/csv"
    data = client.beta.files.download(files["data.csv"].id).read()
    assert hashlib.sha256(data).hexdigest() == generated_sha256(70_000, 3)


def test_long_stream_with_delay(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    started = time.monotonic()
    events = run_turn(
        client,
        emulator.url,
        session["id"],
        scenario(stream={"count": 6, "type": "agent.thinking", "delay": 0.05}),
    )
    assert time.monotonic() - started >= 0.3
    assert types_of(events).count("agent.thinking") == 7


def test_start_race(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(start_race=0.6, reply="raced"))
        stale = _until_idle(stream)
        assert types_of(stale) == ["user.message", "session.status_idle"]
        # retrieve() still says idle although the turn has started.
        assert _retrieve(client, session["id"])["status"] == "idle"
        rest = stream.until_turn_ends()
    assert rest[0]["type"] == "session.status_running"
    assert _reply(rest) == "raced"
    listed_idles = [e["id"] for e in history(client, session["id"]) if e["type"] == "session.status_idle"]
    assert stale[-1]["id"] not in listed_idles and len(listed_idles) == 1


def test_outcome_iterations(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    outcome = {
        "type": "user.define_outcome",
        "description": '#emulator {"outcome": {"iterations": 2, "result": "satisfied"}}',
        "rubric": {"type": "text", "content": "- has a title"},
        "max_iterations": 3,
    }
    with raw_stream(emulator.url, session["id"]) as stream:
        (echo,) = send(client, session["id"], outcome)
        pending = _retrieve(client, session["id"])["outcome_evaluations"]
        assert [(o["outcome_id"], o["description"]) for o in pending] == [
            (echo["outcome_id"], outcome["description"])
        ]
        events = stream.until_turn_ends()
    ends = [e for e in events if e["type"] == "span.outcome_evaluation_end"]
    assert [(e["iteration"], e["result"]) for e in ends] == [(0, "needs_revision"), (1, "satisfied")]
    starts = [e for e in events if e["type"] == "span.outcome_evaluation_start"]
    assert [e["outcome_evaluation_start_id"] for e in ends] == [s["id"] for s in starts]
    assert all(e["outcome_id"] == echo["outcome_id"] for e in ends)
    assert "span.outcome_evaluation_ongoing" in types_of(events)
    (evaluation,) = _retrieve(client, session["id"])["outcome_evaluations"]
    assert evaluation["outcome_id"] == echo["outcome_id"]
    assert evaluation["result"] == "satisfied" and evaluation["iteration"] == 1
    assert evaluation["completed_at"] is not None


def test_max_iterations_reached(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    outcome = {
        "type": "user.define_outcome",
        "description": '#emulator {"outcome": {"iterations": 5}}',
        "rubric": {"type": "text", "content": "x"},
        "max_iterations": 2,
    }
    events = run_turn(client, emulator.url, session["id"], outcome)
    results = [e["result"] for e in events if e["type"] == "span.outcome_evaluation_end"]
    assert results == ["needs_revision", "max_iterations_reached"]


def test_interrupt_stops_the_turn(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(stream={"count": 1000, "delay": 0.05}))
        for event in stream.events():
            if event["type"] == "agent.message":
                break
        (interrupt,) = send(client, session["id"], {"type": "user.interrupt"})
        rest = stream.until_turn_ends()
    kinds = types_of(rest)
    assert kinds[-3:] == ["user.interrupt", "span.model_request_end", "session.status_idle"]
    assert rest[-3]["id"] == interrupt["id"] and rest[-3]["processed_at"] is not None
    assert rest[-1]["stop_reason"] == {"type": "end_turn"}
    assert kinds.count("agent.message") < 50
    assert _retrieve(client, session["id"])["status"] == "idle"


def test_interrupt_while_waiting_for_action_and_during_outcome(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client)
    with raw_stream(emulator.url, session["id"]) as stream:
        send(client, session["id"], scenario(custom_tools=[{"name": "lookup_ticket"}]))
        _until_idle(stream)
        send(client, session["id"], {"type": "user.interrupt"})
        rest = stream.until_turn_ends()
        assert types_of(rest) == ["user.interrupt", "user.interrupt", "session.status_idle"]
        send(
            client,
            session["id"],
            {
                "type": "user.define_outcome",
                "description": '#emulator {"delay": 0.1, "outcome": {"iterations": 3}}',
                "rubric": {"type": "text", "content": "x"},
            },
        )
        for event in stream.events():
            if event["type"] == "span.outcome_evaluation_start":
                break
        send(client, session["id"], {"type": "user.interrupt"})
        after = stream.until_turn_ends()
    end = next(e for e in after if e["type"] == "span.outcome_evaluation_end")
    assert end["result"] == "interrupted"
    assert _retrieve(client, session["id"])["outcome_evaluations"][0]["result"] == "interrupted"


ASYNC_CASES = [
    ({"reply": "plain"}, "end_turn"),
    ({"tools": [{"name": "grep", "input": {"pattern": "x"}}]}, "end_turn"),
    ({"retry": 1}, "end_turn"),
    ({"stop": "refusal"}, "refusal"),
    ({"stop": "budget_reached"}, "budget_reached"),
    ({"stop": "retries_exhausted"}, "retries_exhausted"),
    ({"stop": "terminated"}, "terminated"),
    ({"outputs": [{"name": "x.bin", "size": 5}]}, "end_turn"),
]


@pytest.mark.parametrize(("keys", "ending"), ASYNC_CASES)
async def test_scenarios_with_the_async_client(
    async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic, keys: dict[str, Any], ending: str
) -> None:
    session = make_session(client)
    events: list[dict[str, Any]] = []
    stream = await async_client.beta.sessions.events.stream(session["id"])
    async with stream:
        await async_client.beta.sessions.events.send(session["id"], events=[scenario(**keys)])
        async for event in stream:
            data = event.to_dict()
            STREAM_EVENT.validate_python(data)
            events.append(data)
            if ends_turn(data):
                break
    last = events[-1]
    got = "terminated" if last["type"] == "session.status_terminated" else last["stop_reason"]["type"]
    assert got == ending
    if "outputs" in keys:
        files = [f async for f in async_client.beta.files.list(scope_id=session["id"], betas=[BETA])]
        assert [f.filename for f in files] == ["x.bin"]


async def test_async_custom_tool_round_trip(
    async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic
) -> None:
    session = make_session(client)
    stream = await async_client.beta.sessions.events.stream(session["id"])
    replies = []
    async with stream:
        await async_client.beta.sessions.events.send(
            session["id"],
            events=[scenario(custom_tools=[{"name": "lookup_ticket", "input": {"id": "T-9"}}])],
        )
        async for event in stream:
            if event.type == "agent.custom_tool_use":
                await async_client.beta.sessions.events.send(
                    session["id"],
                    events=[
                        {
                            "type": "user.custom_tool_result",
                            "custom_tool_use_id": event.id,
                            "content": [{"type": "text", "text": f"ticket {event.input['id']} is open"}],
                        }
                    ],
                )
            if event.type == "agent.message":
                replies.append(event.content[0].text)  # type: ignore[union-attr]
            if ends_turn(event.to_dict()):
                break
    assert "lookup_ticket returned: ticket T-9 is open" in replies[-1]


def test_report_counts_words_across_read_chunks(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    # 1.2 MB: the emulator reads 1 MiB chunks, and 2**20 % 3 == 1 splits a word in two.
    content = b"ab " * 400_000 + b"\nend"
    upload = client.beta.files.upload(file=("big.txt", content, "text/plain"))
    session = make_session(client, resources=[{"type": "file", "file_id": upload.id}])
    run_turn(client, emulator.url, session["id"], message("count"))
    (report,) = client.beta.files.list(scope_id=session["id"], betas=[BETA])
    row = next(
        line for line in client.beta.files.download(report.id).text().splitlines() if "big.txt" in line
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == [
        str(len(content)),
        "1",
        str(len(content.split())),
        hashlib.sha256(content).hexdigest(),
    ]
