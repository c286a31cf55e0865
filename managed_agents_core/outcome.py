"""Classify how a session ended: success, or the typed exception that says why not.

Pure and table-driven (no I/O, no Prefect): the stream engine reports *how* the stream ended
(``SessionEnd``) plus the ``session.error`` events it saw, and :func:`classify` turns that into an
:class:`Outcome`. Every caller (flow task, ``JobRun``, hooks) maps end states the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .exceptions import (
    SessionBudgetReachedError,
    SessionError,
    SessionRefusedError,
    SessionRequiresActionError,
    SessionRetriesExhaustedError,
    SessionTerminatedError,
    SessionTimeoutError,
    UnexpectedStopReasonError,
)
from .results import SessionErrorRecord
from .tool_calls import PendingToolCall

EndKind = Literal["idle", "terminated", "deleted", "timeout", "requires_action", "awaiting_approval"]
"""How the stream loop stopped.

``idle``: a turn-ending ``session.status_idle`` (its ``stop_reason`` says how);
``terminated`` / ``deleted``: the session is gone; ``timeout``: our own ``max_duration`` ran out
and the session was interrupted; ``requires_action``: the session waits for answers the
confirmation policy refused to give; ``awaiting_approval``: the policy says ``ask``, so the
session waits for a person's verdict (the flow pauses; any other caller treats it as
``requires_action``).
"""

EventKind = Literal["completed", "failed", "requires-action", "timed-out"]
"""Suffix of the ``managed-agents.session.<kind>`` Prefect event that announces the end."""


@dataclass(frozen=True)
class SessionEnd:
    """How the event loop ended, as observed on the stream.

    Attributes:
        kind: See :data:`EndKind`.
        stop_reason: ``stop_reason.type`` of the final idle (``None`` unless ``kind`` is idle).
        stop_details: The idle's ``stop_details`` as a dict (refusals carry category/explanation).
        event_id: Id of the event that ended the loop, when there was one.
        pending_event_ids: Unanswered tool-call event ids (``requires_action`` only).
        detail: Free text the engine adds (e.g. which tool the policy refused).
        pending_calls: The calls that wait for a person's verdict (``awaiting_approval`` only).
    """

    kind: EndKind
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    event_id: str | None = None
    pending_event_ids: tuple[str, ...] = ()
    detail: str | None = None
    pending_calls: tuple[PendingToolCall, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The classified end state.

    Attributes:
        succeeded: True when the turn completed normally.
        event_kind: Which ``managed-agents.session.<kind>`` event announces it.
        error: The typed exception to raise when it did not succeed.
        warnings: Human-readable notes about non-fatal problems (retried ``session.error``).
    """

    succeeded: bool
    event_kind: EventKind
    error: SessionError | None = None
    warnings: list[str] = field(default_factory=list)

    def raise_for_failure(self) -> None:
        """Raise :attr:`error` when the session did not succeed."""
        if self.error is not None:
            raise self.error


_FAILED_STOP_REASONS: dict[str, tuple[type[SessionError], str]] = {
    "retries_exhausted": (
        SessionRetriesExhaustedError,
        "The session stopped after the service's own retries were exhausted; check its errors, then run again",
    ),
    "budget_reached": (
        SessionBudgetReachedError,
        "The session hit its max_list_cost budget; raise the budget or shorten the task",
    ),
    "refusal": (SessionRefusedError, "The model refused the request"),
    "requires_action": (
        SessionRequiresActionError,
        "The session waits for tool confirmations or custom tool results the confirmation policy cannot give",
    ),
}
"""Stop reasons that end the turn as a failure: exception class and message."""

_FAILED_ERROR_STATUSES: dict[str, type[SessionError]] = {
    "exhausted": SessionRetriesExhaustedError,
    "terminal": SessionTerminatedError,
}
"""``session.error`` retry statuses that fail a run even when it ends with ``end_turn``."""


def _refusal_detail(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    parts = [f"{key}={details[key]}" for key in ("category", "explanation") if details.get(key)]
    return f" ({', '.join(parts)})" if parts else ""


def classify(
    end: SessionEnd,
    errors: Sequence[SessionErrorRecord],
    *,
    session_id: str,
    console_url: str | None,
    max_duration: float | None = None,
) -> Outcome:
    """Map how a session ended to success or a typed exception.

    Args:
        end: What the stream loop observed last.
        errors: Every ``session.error`` seen during the run, in order.
        session_id: The session's id (carried by the exception).
        console_url: The session's console URL (carried by the exception).
        max_duration: The deadline that applied, quoted in the timeout message.

    Returns:
        The outcome. ``session.error`` with ``retry_status`` ``retrying`` only adds a warning;
        an ``exhausted`` or ``terminal`` one fails an otherwise successful ``end_turn``.
    """
    warnings = [
        f"session.error {e.type} (retrying): {e.message}" for e in errors if e.retry_status == "retrying"
    ]

    def fail(cls: type[SessionError], message: str, kind: EventKind = "failed") -> Outcome:
        return Outcome(
            succeeded=False,
            event_kind=kind,
            error=cls(message, session_id=session_id, console_url=console_url),
            warnings=warnings,
        )

    if end.kind == "timeout":
        limit = f" of {max_duration:g} s" if max_duration is not None else ""
        return fail(
            SessionTimeoutError,
            f"The session ran past its max_duration{limit} and was interrupted; raise the limit or split the task",
            "timed-out",
        )
    if end.kind in ("terminated", "deleted"):
        return fail(
            SessionTerminatedError,
            f"The session was {end.kind} by the service; it cannot continue, start a new one",
        )
    if end.kind in ("requires_action", "awaiting_approval"):
        cls, message = _FAILED_STOP_REASONS["requires_action"]
        pending = ", ".join(end.pending_event_ids)
        suffix = f": {end.detail}" if end.detail else ""
        return fail(cls, f"{message} (pending {pending}){suffix}", "requires-action")

    reason = end.stop_reason
    if reason == "end_turn":
        fatal = [e for e in errors if e.retry_status in _FAILED_ERROR_STATUSES]
        if fatal:
            last = fatal[-1]
            return fail(
                _FAILED_ERROR_STATUSES[last.retry_status],
                f"The turn ended after a session.error {last.type} ({last.retry_status}): {last.message}",
            )
        return Outcome(succeeded=True, event_kind="completed", warnings=warnings)
    if reason in _FAILED_STOP_REASONS:
        cls, message = _FAILED_STOP_REASONS[reason]
        if reason == "refusal":
            message += _refusal_detail(end.stop_details)
        return fail(cls, message)
    return fail(
        UnexpectedStopReasonError,
        f"The session stopped with stop_reason {reason!r}, which this integration does not know; "
        "inspect it in the console",
    )
