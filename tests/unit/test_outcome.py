"""Table-driven checks of end-state classification (managed_agents_core/outcome.py)."""

from __future__ import annotations

import pytest

from managed_agents_core.exceptions import (
    SessionBudgetReachedError,
    SessionError,
    SessionRefusedError,
    SessionRequiresActionError,
    SessionRetriesExhaustedError,
    SessionTerminatedError,
    SessionTimeoutError,
    UnexpectedStopReasonError,
)
from managed_agents_core.outcome import SessionEnd, classify
from managed_agents_core.results import SessionErrorRecord

SID = "sesn_011CZkZAtmR3yMPDzynEDxu7"
URL = f"https://platform.claude.com/workspaces/default/sessions/{SID}"


def _err(retry_status: str, kind: str = "model_overloaded_error") -> SessionErrorRecord:
    return SessionErrorRecord(event_id="sevt_e", type=kind, message="boom", retry_status=retry_status)


CASES: list[tuple[str, SessionEnd, list[SessionErrorRecord], type[SessionError] | None, str]] = [
    ("end_turn", SessionEnd("idle", "end_turn"), [], None, "completed"),
    ("end_turn after retrying error", SessionEnd("idle", "end_turn"), [_err("retrying")], None, "completed"),
    (
        "end_turn after exhausted error",
        SessionEnd("idle", "end_turn"),
        [_err("retrying"), _err("exhausted")],
        SessionRetriesExhaustedError,
        "failed",
    ),
    (
        "end_turn after terminal error",
        SessionEnd("idle", "end_turn"),
        [_err("terminal", "billing_error")],
        SessionTerminatedError,
        "failed",
    ),
    (
        "retries_exhausted",
        SessionEnd("idle", "retries_exhausted"),
        [],
        SessionRetriesExhaustedError,
        "failed",
    ),
    ("budget_reached", SessionEnd("idle", "budget_reached"), [], SessionBudgetReachedError, "failed"),
    ("refusal", SessionEnd("idle", "refusal"), [], SessionRefusedError, "failed"),
    ("unknown stop reason", SessionEnd("idle", "interrupted"), [], UnexpectedStopReasonError, "failed"),
    ("terminated", SessionEnd("terminated"), [], SessionTerminatedError, "failed"),
    ("deleted", SessionEnd("deleted"), [], SessionTerminatedError, "failed"),
    ("timeout", SessionEnd("timeout"), [], SessionTimeoutError, "timed-out"),
    (
        "requires_action refused by policy",
        SessionEnd("requires_action", pending_event_ids=("sevt_1",), detail="tool 'bash'"),
        [],
        SessionRequiresActionError,
        "requires-action",
    ),
]


@pytest.mark.parametrize(
    ("name", "end", "errors", "expected", "event_kind"), CASES, ids=[c[0] for c in CASES]
)
def test_classification_table(
    name: str,
    end: SessionEnd,
    errors: list[SessionErrorRecord],
    expected: type[SessionError] | None,
    event_kind: str,
) -> None:
    outcome = classify(end, errors, session_id=SID, console_url=URL, max_duration=30)
    assert outcome.event_kind == event_kind
    if expected is None:
        assert outcome.succeeded
        assert outcome.error is None
        outcome.raise_for_failure()
        return
    assert not outcome.succeeded
    assert type(outcome.error) is expected
    with pytest.raises(expected) as info:
        outcome.raise_for_failure()
    assert info.value.session_id == SID
    assert info.value.console_url == URL
    assert SID in str(info.value) and URL in str(info.value)


def test_retrying_error_is_a_warning_only() -> None:
    outcome = classify(SessionEnd("idle", "end_turn"), [_err("retrying")], session_id=SID, console_url=URL)
    assert outcome.succeeded
    assert outcome.warnings == ["session.error model_overloaded_error (retrying): boom"]


def test_refusal_message_carries_stop_details() -> None:
    end = SessionEnd(
        "idle", "refusal", stop_details={"type": "refusal", "category": "cyber", "explanation": "no"}
    )
    outcome = classify(end, [], session_id=SID, console_url=URL)
    assert outcome.error is not None
    assert "category=cyber" in str(outcome.error) and "explanation=no" in str(outcome.error)


def test_timeout_message_quotes_the_limit() -> None:
    outcome = classify(SessionEnd("timeout"), [], session_id=SID, console_url=None, max_duration=2.5)
    assert isinstance(outcome.error, TimeoutError)
    assert "2.5 s" in str(outcome.error)
    assert outcome.error.console_url is None


def test_requires_action_names_pending_ids_and_reason() -> None:
    end = SessionEnd("requires_action", pending_event_ids=("sevt_a", "sevt_b"), detail="custom tool 'lookup'")
    outcome = classify(end, [], session_id=SID, console_url=URL)
    assert "sevt_a, sevt_b" in str(outcome.error)
    assert "custom tool 'lookup'" in str(outcome.error)
