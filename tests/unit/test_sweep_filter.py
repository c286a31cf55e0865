"""The sweeper's pure filter: exactly the orphans of final flow runs past the grace period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from flows.sweep import OwnerRun, owner_run_id, select_orphans
from managed_agents_core.keys import FLOW_RUN_KEY

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)


def session(
    sid: str, status: str, run_id: str | None, *, archived: bool = False, updated: datetime | None = None
) -> Any:
    metadata = {FLOW_RUN_KEY: run_id} if run_id else {"other": "x"}
    return SimpleNamespace(
        id=sid, status=status, metadata=metadata, archived_at=NOW if archived else None, updated_at=updated
    )


def run(state: str, ended_minutes_ago: float | None) -> OwnerRun:
    ended = NOW - timedelta(minutes=ended_minutes_ago) if ended_minutes_ago is not None else None
    return OwnerRun(id=str(uuid.uuid4()), state_type=state, ended_at=ended)


def test_selects_exactly_the_orphans() -> None:
    done, failed, cancelled, crashed = (
        run("COMPLETED", 60),
        run("FAILED", 30),
        run("CANCELLED", 16),
        run("CRASHED", 20),
    )
    recent = run("COMPLETED", 5)
    live, scheduled = run("RUNNING", None), run("SCHEDULED", None)
    owners = {r.id: r for r in (done, failed, cancelled, crashed, recent, live, scheduled)}
    sessions = [
        session("s-idle-done", "idle", done.id),
        session("s-running-failed", "running", failed.id),
        session("s-resched-cancelled", "rescheduling", cancelled.id),
        session("s-idle-crashed", "idle", crashed.id),
        session("s-terminated", "terminated", done.id),
        session("s-archived", "idle", done.id, archived=True),
        session("s-within-grace", "idle", recent.id),
        session("s-live-run", "running", live.id),
        session("s-scheduled-run", "idle", scheduled.id),
        session("s-unknown-run", "idle", str(uuid.uuid4())),
        session("s-no-metadata", "idle", None),
        session("s-bad-uuid", "idle", "not-a-uuid"),
    ]
    orphans = select_orphans(sessions, owners, now=NOW, grace=GRACE)
    assert [o.session_id for o in orphans] == [
        "s-idle-done",
        "s-running-failed",
        "s-resched-cancelled",
        "s-idle-crashed",
    ]
    assert orphans[1].status == "running" and orphans[1].flow_run_state == "FAILED"
    assert orphans[0].flow_run_id == done.id


def test_grace_period_boundary_and_zero_grace() -> None:
    exactly = run("COMPLETED", 15)
    owners = {exactly.id: exactly}
    assert [
        o.session_id for o in select_orphans([session("s", "idle", exactly.id)], owners, now=NOW, grace=GRACE)
    ] == ["s"]
    just_before = NOW - timedelta(minutes=15) + timedelta(seconds=1)
    owners = {exactly.id: OwnerRun(exactly.id, "COMPLETED", just_before)}
    assert select_orphans([session("s", "idle", exactly.id)], owners, now=NOW, grace=GRACE) == []
    assert len(select_orphans([session("s", "idle", exactly.id)], owners, now=NOW, grace=timedelta(0))) == 1


def test_missing_end_time_falls_back_to_session_update_time() -> None:
    owner = run("CANCELLED", None)
    owners = {owner.id: owner}
    old = session("old", "idle", owner.id, updated=NOW - timedelta(hours=1))
    fresh = session("fresh", "idle", owner.id, updated=NOW - timedelta(minutes=1))
    unknown = session("unknown", "idle", owner.id)
    assert [o.session_id for o in select_orphans([old, fresh, unknown], owners, now=NOW, grace=GRACE)] == [
        "old"
    ]


def test_owner_run_id_normalises_and_rejects() -> None:
    rid = uuid.uuid4()
    assert owner_run_id(session("s", "idle", str(rid).upper())) == str(rid)
    assert owner_run_id(session("s", "idle", "nope")) is None
    assert owner_run_id(SimpleNamespace(metadata=None)) is None
