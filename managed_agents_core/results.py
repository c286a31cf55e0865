"""Typed results returned by session runs (shared by blocks, tasks and flows)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from .memory_audit import MemoryChange


class OutputFile(BaseModel):
    """One session output file, downloaded and verified."""

    file_id: str = Field(description="Id of the file in the Files API.")
    filename: str = Field(description="Name the service gave the file.")
    path: str = Field(description="Where it was written (local path or path inside the storage block).")
    size_bytes: int = Field(description="Size in bytes, checked against the file's metadata.")
    sha256: str = Field(description="Lowercase hex SHA-256 of the content.")
    skipped: bool = Field(default=False, description="True when an identical copy was already there.")
    arrived_late: bool = Field(
        default=False, description="True when the service listed the file only after the turn had ended."
    )


class UsageSummary(BaseModel):
    """Cumulative usage of a session, as the service reports it."""

    input_tokens: int = Field(default=0, description="Uncached input tokens.")
    output_tokens: int = Field(default=0, description="Output tokens.")
    cache_read_input_tokens: int = Field(default=0, description="Input tokens read from the cache.")
    cache_creation_input_tokens: int = Field(default=0, description="Input tokens written to the cache.")
    active_seconds: float = Field(default=0.0, description="Seconds with at least one thread running.")
    cost_usd: Decimal | None = Field(
        default=None, description="List cost in USD (None until the service reports it)."
    )

    @classmethod
    def from_session_usage(cls, usage: Any) -> UsageSummary:
        """Build from the SDK's ``BetaManagedAgentsSessionUsage`` (or a ``session.usage`` event's usage).

        ``list_cost.amount`` is in minor units (cents) as a string.
        """
        if usage is None:
            return cls()
        cache = getattr(usage, "cache_creation", None)
        created = 0
        if cache is not None:
            created = (getattr(cache, "ephemeral_1h_input_tokens", 0) or 0) + (
                getattr(cache, "ephemeral_5m_input_tokens", 0) or 0
            )
        list_cost = getattr(usage, "list_cost", None)
        cost = Decimal(str(list_cost.amount)) / 100 if list_cost is not None else None
        return cls(
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
            cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
            cache_creation_input_tokens=created,
            active_seconds=float(getattr(usage, "active_seconds", 0) or 0),
            cost_usd=cost,
        )


def cost_text(usage: UsageSummary | None) -> str:
    """``list cost $0.12``, or that the service reported none."""
    if usage is None or usage.cost_usd is None:
        return "list cost not reported"
    return f"list cost ${usage.cost_usd:.2f}"


class SessionErrorRecord(BaseModel):
    """A ``session.error`` event seen during the run (kept even when the turn succeeds)."""

    event_id: str = Field(description="Id of the session.error event.")
    type: str = Field(description="The error's type, e.g. model_overloaded_error.")
    message: str = Field(description="The error's message.")
    retry_status: str = Field(description="retrying, exhausted or terminal.")


class OutcomeEvaluation(BaseModel):
    """One grading of a ``user.define_outcome`` outcome (an iteration, or the session's last word)."""

    outcome_id: str = Field(description="The outcome's id (outc_...).")
    iteration: int = Field(description="0-based work pass the grade is about.")
    result: str = Field(
        description="satisfied, needs_revision, max_iterations_reached, failed or interrupted."
    )
    explanation: str | None = Field(default=None, description="The grader's explanation.")
    description: str | None = Field(default=None, description="What the outcome asked for.")


class ThreadSummary(BaseModel):
    """One thread of a multi-agent session: which agent ran it, what it was asked, what it cost."""

    thread_id: str = Field(description="The thread's id (sthr_...).")
    agent_name: str = Field(description="The agent the thread runs.")
    primary: bool = Field(default=False, description="True for the session's own (coordinator's) thread.")
    status: str = Field(description="running, idle, rescheduling or terminated, as last known.")
    stop_reason: str | None = Field(default=None, description="Why the thread last went idle.")
    tasks_sent: int = Field(default=0, description="Messages the coordinator sent to this thread.")
    replies: int = Field(default=0, description="Messages this thread sent back.")
    usage: UsageSummary | None = Field(
        default=None,
        description="The thread's own usage, when the service listed it (per-thread list costs are "
        "rounded and leave out runtime: the session's total is authoritative).",
    )


class SessionResult(BaseModel):
    """What one agent session produced."""

    session_id: str = Field(description="The session's id.")
    agent_id: str = Field(description="The agent's id.")
    agent_version: int = Field(description="The agent version the session was pinned to.")
    status: str = Field(description="Final session status reported by the service.")
    stop_reason: str | None = Field(description="stop_reason of the final idle, if any.")
    final_message: str = Field(default="", description="Text of the last agent.message.")
    usage: UsageSummary = Field(default_factory=UsageSummary, description="Tokens and cost.")
    output_files: list[OutputFile] = Field(default_factory=list, description="Downloaded outputs.")
    event_count: int = Field(default=0, description="Distinct persisted events seen (deduplicated).")
    errors: list[SessionErrorRecord] = Field(
        default_factory=list, description="session.error events seen, including retried ones."
    )
    console_url: str = Field(description="Where to inspect the session in the Anthropic Console.")
    outcome_evaluations: list[OutcomeEvaluation] = Field(
        default_factory=list,
        description="Final grade of each outcome defined with user.define_outcome (the session's record).",
    )
    memory_changes: list[MemoryChange] = Field(
        default_factory=list,
        description="Memory versions the session wrote to the stores this run attached, oldest first.",
    )
    threads: list[ThreadSummary] = Field(
        default_factory=list,
        description="A multi-agent session's threads (the coordinator's first); empty for one agent.",
    )

    def summary(self) -> str:
        """One line for the final log line and the flow run's state message:
        ``idle (end_turn), 2 output file(s), 10 events, list cost $0.01``."""
        return (
            f"{self.status} ({self.stop_reason}), {len(self.output_files)} output file(s), "
            f"{self.event_count} events, {cost_text(self.usage)}"
        )
