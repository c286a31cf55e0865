"""A multi-agent session's threads: the transcript's view from SDK-parsed thread events, and its
reconciliation with a (lagging) ``threads.list`` (managed_agents_core/threads.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent, BetaManagedAgentsSessionThread
from pydantic import TypeAdapter

from managed_agents_core.report import SessionReport
from managed_agents_core.threads import reconcile_threads
from managed_agents_core.transcript import Transcript

_EVENT: TypeAdapter[Any] = TypeAdapter(BetaManagedAgentsSessionEvent)
AT = "2026-03-15T10:00:0{}Z"


def event(type_: str, second: int, **fields: Any) -> Any:
    return _EVENT.validate_python(
        {"type": type_, "id": f"sevt_{type_}_{second}", "processed_at": AT.format(second), **fields}
    )


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


def delegation(thread_id: str, agent: str, start: int) -> list[Any]:
    return [
        event("session.thread_created", start, session_thread_id=thread_id, agent_name=agent),
        event(
            "agent.thread_message_sent",
            start,
            to_session_thread_id=thread_id,
            to_agent_name=agent,
            content=text(f"task for {agent}"),
        ),
        event("session.thread_status_running", start + 1, session_thread_id=thread_id, agent_name=agent),
        event(
            "session.thread_status_idle",
            start + 2,
            session_thread_id=thread_id,
            agent_name=agent,
            stop_reason={"type": "end_turn"},
        ),
        event(
            "agent.thread_message_received",
            start + 2,
            from_session_thread_id=thread_id,
            from_agent_name=agent,
            content=text(f"{agent} done"),
        ),
    ]


def listed(thread_id: str, agent: str, *, parent: str | None, cents: int | None) -> Any:
    usage = (
        None
        if cents is None
        else {"input_tokens": 10, "output_tokens": 2, "list_cost": {"amount": str(cents), "currency": "USD"}}
    )
    return BetaManagedAgentsSessionThread.model_validate(
        {
            "id": thread_id,
            "type": "session_thread",
            "session_id": "sesn_1",
            "agent": {
                "type": "agent",
                "id": f"agent_{agent}",
                "name": agent,
                "version": 1,
                "model": {"id": "claude-opus-4-8"},
                "tools": [],
                "mcp_servers": [],
                "skills": [],
                "execution_identity": {"type": "service_account"},
            },
            "parent_thread_id": parent,
            "status": "idle",
            "usage": usage,
            "created_at": AT.format(0 if parent is None else 1),
            "updated_at": AT.format(5),
        }
    )


def test_the_transcript_says_who_was_asked_what_and_who_answered() -> None:
    t = Transcript()
    for e in [*delegation("sthr_r", "researcher", 1), *delegation("sthr_w", "writer", 5)]:
        t.add(e)
    assert [(x.agent_name, x.tasks_sent, x.replies, x.status, x.stop_reason) for x in t.threads.values()] == [
        ("researcher", 1, 1, "idle", "end_turn"),
        ("writer", 1, 1, "idle", "end_turn"),
    ]
    assert [(e.role, e.text) for e in t.entries if e.role in ("delegated", "reply")] == [
        ("delegated", "to researcher: task for researcher"),
        ("reply", "from researcher: researcher done"),
        ("delegated", "to writer: task for writer"),
        ("reply", "from writer: writer done"),
    ]


def test_a_thread_status_backfilled_from_the_history_does_not_undo_a_newer_one() -> None:
    t = Transcript()
    for e in delegation("sthr_r", "researcher", 1):
        t.add(e)
    t.add(
        event("session.thread_status_running", 2, session_thread_id="sthr_r", agent_name="researcher"),
        from_history=True,
    )
    assert t.threads["sthr_r"].status == "idle"


def test_a_lagging_list_keeps_what_the_stream_saw() -> None:
    t = Transcript()
    for e in [*delegation("sthr_r", "researcher", 1), *delegation("sthr_w", "writer", 5)]:
        t.add(e)
    # The list shows the coordinator and the researcher (without usage yet), not the writer.
    threads = reconcile_threads(
        [
            listed("sthr_r", "researcher", parent="sthr_p", cents=None),
            listed("sthr_p", "lead", parent=None, cents=4),
        ],
        t.threads,
    )
    assert [(x.thread_id, x.agent_name, x.primary, x.tasks_sent) for x in threads] == [
        ("sthr_p", "lead", True, 0),
        ("sthr_r", "researcher", False, 1),
        ("sthr_w", "writer", False, 1),
    ]
    assert threads[0].usage is not None and threads[0].usage.cost_usd == Decimal("0.04")
    assert threads[1].usage is None and threads[2].usage is None
    page = SessionReport(
        agent_name="lead",
        session_id="sesn_1",
        console_url="u",
        headline="Completed",
        transcript=t,
        threads=threads,
    ).to_markdown()
    assert "| lead | coordinator | idle | 10 / 2 | 0.04 |" in page
    assert "| writer | 1 task, 1 reply | idle (end_turn) | not listed yet | n/a |" in page


def test_a_single_agent_report_has_no_agents_section() -> None:
    page = SessionReport(
        agent_name="a", session_id="s", console_url="u", headline="x", transcript=Transcript()
    ).to_markdown()
    assert "## Agents" not in page
