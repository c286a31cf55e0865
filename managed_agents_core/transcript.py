"""What a session run saw, accumulated event by event (the session report renders it).

``Transcript.add`` is on the stream engine's hot path: it does a dict dispatch on ``event.type``
and keeps short strings only, never the event objects themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .results import OutcomeEvaluation, SessionErrorRecord, ThreadSummary, UsageSummary

MAX_ENTRY_CHARS = 2_000
"""Longest text kept per transcript entry (longer text is cut with an ellipsis)."""

MAX_ENTRIES = 1_000
"""Most entries rendered; the rest are counted as omitted (artifacts stay small)."""


@dataclass(frozen=True)
class TranscriptEntry:
    """One line of the transcript.

    Attributes:
        role: Who produced it: ``user``, ``agent``, ``tool``, ``tool-result``, ``error``,
            ``status``, ``delegated`` (the coordinator to a callee) or ``reply`` (a callee back).
        text: What to show (already cut to :data:`MAX_ENTRY_CHARS`).
        event_id: The event's id.
    """

    role: str
    text: str
    event_id: str


def _cut(text: str, limit: int = MAX_ENTRY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def content_text(content: Any) -> str:
    """Join the text blocks of an SDK content list (non-text blocks show as ``[type]``)."""
    if not content:
        return ""
    parts: list[str] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        else:
            parts.append(f"[{kind}]")
    return "".join(parts)


def _place(items: list[Any], stamps: list[Any], item: Any, event: Any, late: bool) -> None:
    """Append ``item``; a ``late`` one goes after the items processed no later than ``event``.

    ``stamps`` runs beside ``items`` (``processed_at``; None for queued events, which keep their
    arrival place). Appending is the hot path; an insert only happens for an event backfilled
    after newer ones.
    """
    stamp = getattr(event, "processed_at", None)
    index = len(items)
    if late and stamp is not None:
        while index > 0 and stamps[index - 1] is not None and stamps[index - 1] > stamp:
            index -= 1
    items.insert(index, item)
    stamps.insert(index, stamp)


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Transcript:
    """Accumulates messages, tool calls, errors and usage from distinct session events.

    Feed it each *distinct* event once (the engine deduplicates); it never makes network calls.
    """

    event_ids: list[str] = field(default_factory=list)
    entries: list[TranscriptEntry] = field(default_factory=list)
    omitted_entries: int = 0
    errors: list[SessionErrorRecord] = field(default_factory=list)
    final_message: str = ""
    model_requests: int = 0
    model_usage: UsageSummary = field(default_factory=UsageSummary)
    session_usage: UsageSummary | None = None
    tool_names: dict[str, str] = field(default_factory=dict)
    counts_by_type: dict[str, int] = field(default_factory=dict)
    outcome_grades: list[OutcomeEvaluation] = field(default_factory=list)
    threads: dict[str, ThreadSummary] = field(default_factory=dict)
    """A multi-agent session's child threads as the stream showed them, by thread id."""
    _latest: dict[str, Any] = field(default_factory=dict, repr=False)
    _id_stamps: list[Any] = field(default_factory=list, repr=False)
    _entry_stamps: list[Any] = field(default_factory=list, repr=False)
    _late: bool = field(default=False, repr=False)

    @property
    def event_count(self) -> int:
        """Number of distinct events seen."""
        return len(self.event_ids)

    @property
    def usage(self) -> UsageSummary:
        """Best usage known: the service's cumulative snapshot, else the sum of model requests."""
        return self.session_usage if self.session_usage is not None else self.model_usage

    def add(self, event: Any, *, from_history: bool = False) -> None:
        """Record one distinct event (SDK model from the stream or the history).

        Args:
            event: The event.
            from_history: It was read from the history, which lags the stream: it may be older
                than events already recorded (what a reconnect's gap hid), so it is put in its
                place by ``processed_at`` instead of at the end.
        """
        kind = str(getattr(event, "type", ""))
        self._late = from_history
        _place(self.event_ids, self._id_stamps, str(getattr(event, "id", "") or ""), event, from_history)
        self.counts_by_type[kind] = self.counts_by_type.get(kind, 0) + 1
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event)

    def _entry(self, role: str, text: str, event: Any) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.omitted_entries += 1
            return
        entry = TranscriptEntry(role, _cut(text), str(getattr(event, "id", "") or ""))
        _place(self.entries, self._entry_stamps, entry, event, self._late)

    # --- per-type handlers (looked up in _HANDLERS) --------------------------------------------

    def _on_user_message(self, event: Any) -> None:
        self._entry("user", content_text(getattr(event, "content", None)), event)

    def _newest(self, slot: str, event: Any) -> bool:
        """True when ``event`` is the newest seen for ``slot`` (an event backfilled from a lagging
        history may arrive after newer ones from the stream)."""
        processed = getattr(event, "processed_at", None)
        latest = self._latest.get(slot)
        if self._late and processed is not None and latest is not None and processed < latest:
            return False
        if processed is not None:
            self._latest[slot] = processed
        return True

    def _on_agent_message(self, event: Any) -> None:
        text = content_text(getattr(event, "content", None))
        if self._newest("final_message", event):
            self.final_message = text
        self._entry("agent", text, event)

    def _on_tool_use(self, event: Any) -> None:
        name = str(getattr(event, "name", ""))
        server = getattr(event, "mcp_server_name", None)
        label = f"{server}.{name}" if server else name
        thread = self.threads.get(str(getattr(event, "session_thread_id", None)))
        if thread is not None:  # cross-posted from a callee's thread
            label = f"{thread.agent_name}: {label}"
        self.tool_names[str(getattr(event, "id", ""))] = name
        permission = getattr(event, "evaluated_permission", None)
        suffix = f" [{permission}]" if permission else ""
        self._entry("tool", f"{label}({_compact_json(getattr(event, 'input', {}))}){suffix}", event)

    def _on_tool_result(self, event: Any) -> None:
        use_id = getattr(event, "tool_use_id", None) or getattr(event, "mcp_tool_use_id", None) or ""
        name = self.tool_names.get(str(use_id), "tool")
        status = "error" if getattr(event, "is_error", False) else "ok"
        text = content_text(getattr(event, "content", None))
        self._entry("tool-result", f"{name} → {status}: {text}", event)

    def _on_confirmation(self, event: Any) -> None:
        use_id = str(getattr(event, "tool_use_id", ""))
        result = getattr(event, "result", "")
        self._entry("user", f"tool confirmation for {self.tool_names.get(use_id, use_id)}: {result}", event)

    def _on_error(self, event: Any) -> None:
        error = getattr(event, "error", None)
        retry = getattr(getattr(error, "retry_status", None), "type", None) or "unknown"
        record = SessionErrorRecord(
            event_id=str(getattr(event, "id", "") or ""),
            type=str(getattr(error, "type", "unknown_error")),
            message=str(getattr(error, "message", "")),
            retry_status=str(retry),
        )
        self.errors.append(record)
        self._entry("error", f"{record.type} ({record.retry_status}): {record.message}", event)

    def _on_model_request_end(self, event: Any) -> None:
        usage = getattr(event, "model_usage", None)
        if usage is None:
            return
        self.model_requests += 1
        mu = self.model_usage
        mu.input_tokens += int(getattr(usage, "input_tokens", 0) or 0)
        mu.output_tokens += int(getattr(usage, "output_tokens", 0) or 0)
        mu.cache_read_input_tokens += int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        mu.cache_creation_input_tokens += int(getattr(usage, "cache_creation_input_tokens", 0) or 0)

    def _on_outcome_evaluation_end(self, event: Any) -> None:
        grade = OutcomeEvaluation(
            outcome_id=str(getattr(event, "outcome_id", "")),
            iteration=int(getattr(event, "iteration", 0) or 0),
            result=str(getattr(event, "result", "")),
            explanation=getattr(event, "explanation", None),
        )
        self.outcome_grades.append(grade)
        self._entry("status", f"outcome iteration {grade.iteration}: {grade.result}", event)

    def _on_session_usage(self, event: Any) -> None:
        if self._newest("session_usage", event):
            self.session_usage = UsageSummary.from_session_usage(getattr(event, "usage", None))

    def _on_idle(self, event: Any) -> None:
        reason = getattr(getattr(event, "stop_reason", None), "type", None)
        self._entry("status", f"idle ({reason})", event)

    def _on_terminated(self, event: Any) -> None:
        self._entry("status", str(getattr(event, "type", "terminated")), event)

    def _thread(self, thread_id: str, agent_name: str | None) -> ThreadSummary:
        thread = self.threads.get(thread_id)
        if thread is None:
            thread = ThreadSummary(thread_id=thread_id, agent_name=agent_name or "?", status="running")
            self.threads[thread_id] = thread
        elif agent_name and thread.agent_name == "?":
            thread.agent_name = agent_name
        return thread

    def _on_thread_created(self, event: Any) -> None:
        thread = self._thread(str(event.session_thread_id), event.agent_name)
        self._entry("status", f"{thread.agent_name} started (thread {thread.thread_id})", event)

    def _on_thread_message_sent(self, event: Any) -> None:
        thread = self._thread(str(event.to_session_thread_id), getattr(event, "to_agent_name", None))
        thread.tasks_sent += 1
        self._entry("delegated", f"to {thread.agent_name}: {content_text(event.content)}", event)

    def _on_thread_message_received(self, event: Any) -> None:
        thread = self._thread(str(event.from_session_thread_id), getattr(event, "from_agent_name", None))
        thread.replies += 1
        self._entry("reply", f"from {thread.agent_name}: {content_text(event.content)}", event)

    def _on_thread_status(self, event: Any) -> None:
        thread = self._thread(str(event.session_thread_id), getattr(event, "agent_name", None))
        if not self._newest(f"thread:{thread.thread_id}", event):
            return
        thread.status = _THREAD_STATUS[str(event.type)]
        reason = getattr(getattr(event, "stop_reason", None), "type", None)
        thread.stop_reason = str(reason) if reason else None
        if thread.status == "terminated":
            self._entry("error", f"{thread.agent_name}'s thread {thread.thread_id} was terminated", event)

    # --- rendering -----------------------------------------------------------------------------


_THREAD_STATUS = {
    "session.thread_status_running": "running",
    "session.thread_status_idle": "idle",
    "session.thread_status_rescheduled": "rescheduling",
    "session.thread_status_terminated": "terminated",
}

_HANDLERS: dict[str, Callable[[Transcript, Any], None]] = {
    "user.message": Transcript._on_user_message,
    "agent.message": Transcript._on_agent_message,
    "agent.tool_use": Transcript._on_tool_use,
    "agent.mcp_tool_use": Transcript._on_tool_use,
    "agent.custom_tool_use": Transcript._on_tool_use,
    "agent.tool_result": Transcript._on_tool_result,
    "agent.mcp_tool_result": Transcript._on_tool_result,
    "user.tool_confirmation": Transcript._on_confirmation,
    "session.error": Transcript._on_error,
    "span.model_request_end": Transcript._on_model_request_end,
    "session.usage": Transcript._on_session_usage,
    "span.outcome_evaluation_end": Transcript._on_outcome_evaluation_end,
    "session.status_idle": Transcript._on_idle,
    "session.status_terminated": Transcript._on_terminated,
    "session.deleted": Transcript._on_terminated,
    "session.thread_created": Transcript._on_thread_created,
    "agent.thread_message_sent": Transcript._on_thread_message_sent,
    "agent.thread_message_received": Transcript._on_thread_message_received,
    **dict.fromkeys(_THREAD_STATUS, Transcript._on_thread_status),
}
