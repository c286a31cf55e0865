"""Transcript accumulation and markdown rendering (managed_agents_core/transcript.py), on SDK-parsed events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent
from pydantic import TypeAdapter

from managed_agents_core import transcript as transcript_module
from managed_agents_core.report import SessionReport
from managed_agents_core.transcript import Transcript

_ADAPTER: TypeAdapter[Any] = TypeAdapter(BetaManagedAgentsSessionEvent)

# Validated payloads from the API reference, Appendix A.
EVENTS: list[dict[str, Any]] = [
    {
        "type": "user.message",
        "id": "sevt_011A",
        "content": [{"type": "text", "text": "Go"}],
        "processed_at": None,
    },
    {"type": "session.status_running", "id": "sevt_011B", "processed_at": "2026-03-15T10:00:01Z"},
    {
        "type": "agent.message",
        "id": "sevt_011E",
        "content": [{"type": "text", "text": "Working on it."}],
        "processed_at": "2026-03-15T10:00:03Z",
    },
    {
        "type": "agent.tool_use",
        "id": "sevt_011F",
        "name": "bash",
        "input": {"command": "ls"},
        "evaluated_permission": "ask",
        "evaluation": {"type": "always_ask"},
        "processed_at": "2026-03-15T10:00:03Z",
    },
    {
        "type": "span.model_request_end",
        "id": "sevt_011H",
        "model_request_start_id": "sevt_011C",
        "is_error": False,
        "model_usage": {
            "input_tokens": 3571,
            "output_tokens": 727,
            "cache_read_input_tokens": 6656,
            "cache_creation_input_tokens": 5,
        },
        "processed_at": "2026-03-15T10:00:04Z",
    },
    {
        "type": "session.status_idle",
        "id": "sevt_011I",
        "stop_reason": {"type": "requires_action", "event_ids": ["sevt_011F"]},
        "stop_details": None,
        "processed_at": "2026-03-15T10:00:04Z",
    },
    {
        "type": "user.tool_confirmation",
        "id": "sevt_011J",
        "tool_use_id": "sevt_011F",
        "result": "allow",
        "deny_message": None,
        "processed_at": None,
    },
    {
        "type": "agent.tool_result",
        "id": "sevt_011L",
        "tool_use_id": "sevt_011F",
        "content": [{"type": "text", "text": "README.md"}],
        "is_error": False,
        "processed_at": "2026-03-15T10:00:06Z",
    },
    {
        "type": "session.error",
        "id": "sevt_011R",
        "error": {
            "type": "mcp_authentication_failed_error",
            "mcp_server_name": "linear",
            "message": "401 from MCP server",
            "retry_status": {"type": "retrying"},
        },
        "processed_at": "2026-03-15T10:00:09Z",
    },
    {
        "type": "agent.message",
        "id": "sevt_011X",
        "content": [{"type": "text", "text": "Done: report.md"}],
        "processed_at": "2026-03-15T10:00:07Z",
    },
    {
        "type": "session.usage",
        "id": "sevt_011P",
        "usage": {
            "input_tokens": 3571,
            "output_tokens": 727,
            "cache_read_input_tokens": 6656,
            "active_seconds": 6.2,
            "list_cost": {"amount": "12", "currency": "USD"},
        },
        "budget": None,
        "processed_at": "2026-03-15T10:00:08Z",
    },
    {
        "type": "session.status_idle",
        "id": "sevt_011Q",
        "stop_reason": {"type": "end_turn"},
        "stop_details": None,
        "processed_at": "2026-03-15T10:00:09Z",
    },
]


def _parsed() -> list[Any]:
    return [_ADAPTER.validate_python(e) for e in EVENTS]


def test_accumulates_messages_tools_errors_and_usage() -> None:
    t = Transcript()
    for event in _parsed():
        t.add(event)
    assert t.event_count == len(EVENTS)
    assert t.event_ids == [e["id"] for e in EVENTS]
    assert t.final_message == "Done: report.md"
    assert t.model_requests == 1
    assert (t.model_usage.input_tokens, t.model_usage.output_tokens) == (3571, 727)
    assert t.model_usage.cache_creation_input_tokens == 5
    assert t.usage.cost_usd == Decimal("0.12")  # the session.usage snapshot wins over summed spans
    assert t.usage.active_seconds == 6.2
    assert [(e.type, e.retry_status) for e in t.errors] == [("mcp_authentication_failed_error", "retrying")]
    assert t.counts_by_type["agent.message"] == 2
    roles = [e.role for e in t.entries]
    assert roles == ["user", "agent", "tool", "status", "user", "tool-result", "error", "agent", "status"]


def test_usage_falls_back_to_model_requests_without_a_snapshot() -> None:
    t = Transcript()
    for event in _parsed()[:5]:
        t.add(event)
    assert t.session_usage is None
    assert t.usage.input_tokens == 3571
    assert t.usage.cost_usd is None


def test_markdown_shows_messages_tool_calls_results_and_errors() -> None:
    t = Transcript()
    for event in _parsed():
        t.add(event)
    md = SessionReport(
        agent_name="Writer",
        session_id="sesn_1",
        console_url="https://console/x",
        headline="Completed",
        transcript=t,
        status="idle",
        stop_reason="end_turn",
    ).to_markdown()
    assert md.startswith(
        "# Writer: Completed\n\n[Open session sesn_1 in the Claude Console](https://console/x)"
    )
    assert "`" not in md  # the Prefect UI shows backticks literally in links and tables
    assert "<b>User</b>: Go" in md
    assert '<b>Tool call</b>: bash({"command":"ls"}) [ask]' in md
    assert "<b>Tool result</b>: bash → ok: README.md" in md
    assert "tool confirmation for bash: allow" in md
    assert "| sevt_011R | mcp_authentication_failed_error | retrying | 401 from MCP server |" in md
    assert "1 error(s)" in md


def test_long_text_is_cut_and_entries_are_capped(monkeypatch: Any) -> None:
    monkeypatch.setattr(transcript_module, "MAX_ENTRIES", 3)
    t = Transcript()
    long = "x" * (transcript_module.MAX_ENTRY_CHARS * 2)
    for i in range(5):
        t.add(
            _ADAPTER.validate_python(
                {
                    "type": "agent.message",
                    "id": f"sevt_{i}",
                    "content": [{"type": "text", "text": long}],
                    "processed_at": "2026-03-15T10:00:03Z",
                }
            )
        )
    assert t.event_count == 5
    assert len(t.entries) == 3 and t.omitted_entries == 2
    assert len(t.entries[0].text) == transcript_module.MAX_ENTRY_CHARS
    assert t.final_message == long  # the result keeps the whole final message
    report = SessionReport(agent_name="a", session_id="s", console_url="u", headline="x", transcript=t)
    assert "2 more entries omitted" in report.to_markdown()


def test_unknown_event_types_are_counted_not_rendered() -> None:
    t = Transcript()
    t.add(
        _ADAPTER.validate_python(
            {"type": "agent.thinking", "id": "sevt_t", "processed_at": "2026-03-15T10:00:02Z"}
        )
    )
    assert t.event_count == 1 and t.entries == []


def _message(event_id: str, text: str, second: int) -> Any:
    return _ADAPTER.validate_python(
        {
            "type": "agent.message",
            "id": event_id,
            "content": [{"type": "text", "text": text}],
            "processed_at": f"2026-03-15T10:00:{second:02d}Z",
        }
    )


def test_an_event_backfilled_from_the_lagging_history_goes_back_in_its_place() -> None:
    t = Transcript()
    t.add(_message("sevt_1", "one", 1))
    t.add(_message("sevt_3", "three", 3))
    # Hidden by a reconnect's gap, read from the history later: older than what the stream gave.
    t.add(_message("sevt_2", "two", 2), from_history=True)
    assert t.event_ids == ["sevt_1", "sevt_2", "sevt_3"]
    assert [e.text for e in t.entries] == ["one", "two", "three"]
    assert t.final_message == "three"  # the newest message, not the last one read
    t.add(_message("sevt_4", "four", 4), from_history=True)
    assert t.event_ids[-1] == "sevt_4" and t.final_message == "four"
