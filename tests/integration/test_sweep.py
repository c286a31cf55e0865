"""The orphan sweeper against the emulator and a real local Prefect server.

Flow runs in each state are created through the Prefect API (the state machine sets their end
times); sessions carry the ``prefect-managed-agents.flow-run-id`` metadata that ``create_session`` writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Failed, Running

from blocks.credentials import AnthropicCredentials
from emulator import EmulatorServer
from flows.sweep import asweep_sessions
from managed_agents_core.keys import FLOW_RUN_KEY
from tests.conftest import TEST_API_KEY, sdk_client
from tests.integration.session_helpers import RemoteAgent, create_remote_agent, message, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow(name="sweep-test-owner")
def owner_flow() -> None:
    """Only a name to create flow runs under; never run."""


async def flow_run_in(*states: Any) -> str:
    """Create a flow run and walk it through ``states`` (forced, as the engine would)."""
    async with get_client() as prefect:
        run = await prefect.create_flow_run(owner_flow, state=states[0])
        for state in states[1:]:
            await prefect.set_flow_run_state(run.id, state, force=True)
        return str(run.id)


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with sdk_client(emulator.url) as c:
        yield c


@pytest.fixture
def remote(sdk: anthropic.Anthropic) -> RemoteAgent:
    return create_remote_agent(sdk)


def new_session(sdk: anthropic.Anthropic, remote: RemoteAgent, owner: str | None) -> str:
    metadata = {FLOW_RUN_KEY: owner} if owner else {"purpose": "manual"}
    return sdk.beta.sessions.create(
        agent=remote.reference(),  # type: ignore[arg-type]
        environment_id=remote.environment_id,
        metadata=metadata,
    ).id


def make_running(sdk: anthropic.Anthropic, session_id: str) -> None:
    """Start a turn that streams for a minute, and wait until the session reports running."""
    sdk.beta.sessions.events.send(
        session_id,
        events=[message(scenario(stream={"count": 1200, "delay": 0.05}))],  # type: ignore[list-item]
    )
    deadline = time.monotonic() + 10
    while settled(sdk).beta.sessions.retrieve(session_id).status != "running":
        assert time.monotonic() < deadline, "session never started running"
        time.sleep(0.05)


def archive_paths(emulator: EmulatorServer) -> set[str]:
    return {
        r["path"].split("/")[3]
        for r in emulator.control.requests()
        if r["method"] == "POST" and r["path"].endswith("/archive")
    }


async def test_sweeper_archives_exactly_the_orphans(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, remote: RemoteAgent
) -> None:
    completed = await flow_run_in(Running(), Completed())
    failed = await flow_run_in(Running(), Failed())
    cancelled = await flow_run_in(Running(), Cancelled())
    still_running = await flow_run_in(Running())

    orphan_idle = new_session(sdk, remote, completed)
    orphan_failed = new_session(sdk, remote, failed)
    orphan_running = new_session(sdk, remote, cancelled)
    make_running(sdk, orphan_running)
    keep_live_owner = new_session(sdk, remote, still_running)
    keep_unknown_owner = new_session(sdk, remote, str(uuid.uuid4()))
    keep_no_metadata = new_session(sdk, remote, None)
    keep_running_unowned = new_session(sdk, remote, None)
    make_running(sdk, keep_running_unowned)
    already_archived = new_session(sdk, remote, completed)
    sdk.beta.sessions.archive(already_archived)
    emulator.control.clear_requests()

    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)
    report = await asweep_sessions(credentials=creds, grace_period_seconds=0)

    swept = {o.session_id: o for o in report.orphans}
    assert set(swept) == {orphan_idle, orphan_failed, orphan_running}
    assert {o.outcome for o in report.orphans} == {"archived"}
    assert swept[orphan_running].status == "running" and swept[orphan_running].flow_run_state == "CANCELLED"
    assert report.scanned == 7  # every unarchived session: the archived one is not listed
    assert report.with_owner == 5

    # Exactly three archive calls, and the running orphan was interrupted first.
    assert archive_paths(emulator) == set(swept)
    interrupts = [
        r["path"]
        for r in emulator.control.requests()
        if r["method"] == "POST" and r["path"].endswith("/events")
    ]
    assert interrupts == [f"/v1/sessions/{orphan_running}/events"]
    kinds = [e.type for e in settled(sdk).beta.sessions.events.list(orphan_running, limit=1000)]
    assert "user.interrupt" in kinds
    for sid in swept:
        assert settled(sdk).beta.sessions.retrieve(sid).archived_at is not None
    for sid in (keep_live_owner, keep_unknown_owner, keep_no_metadata, keep_running_unowned):
        assert settled(sdk).beta.sessions.retrieve(sid).archived_at is None
    assert settled(sdk).beta.sessions.retrieve(keep_running_unowned).status == "running"

    # A second sweep finds nothing left to do.
    again = await asweep_sessions(credentials=creds, grace_period_seconds=0)
    assert again.orphans == []
    sdk.beta.sessions.events.send(keep_running_unowned, events=[{"type": "user.interrupt"}])


async def test_grace_period_and_dry_run_change_nothing(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, remote: RemoteAgent
) -> None:
    completed = await flow_run_in(Running(), Completed())
    orphan = new_session(sdk, remote, completed)
    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)
    emulator.control.clear_requests()

    within_grace = await asweep_sessions(credentials=creds, grace_period_seconds=3600)
    dry = await asweep_sessions(credentials=creds, grace_period_seconds=0, dry_run=True)

    assert within_grace.orphans == []
    assert [o.session_id for o in dry.orphans] == [orphan] and dry.orphans[0].outcome is None
    assert archive_paths(emulator) == set()
    assert settled(sdk).beta.sessions.retrieve(orphan).archived_at is None


async def test_an_orphan_whose_archive_never_answers_is_reported_and_the_sweep_goes_on(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, remote: RemoteAgent
) -> None:
    """Every archive of one orphan is committed, then its connection dropped: the archive loop
    gives up with ApiUnreachableError, which is that orphan's outcome, not the sweep's end."""
    completed = await flow_run_in(Running(), Completed())
    unlucky, fine = new_session(sdk, remote, completed), new_session(sdk, remote, completed)
    emulator.control.set_faults(commit_then_drop=[f"POST /{unlucky}/archive"], commit_then_drop_times=100)
    try:
        creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)
        report = await asweep_sessions(credentials=creds, grace_period_seconds=0)
    finally:
        emulator.control.set_faults()
    outcomes = {o.session_id: o.outcome for o in report.orphans}
    assert outcomes[fine] == "archived"
    assert outcomes[unlucky] == "error: ApiUnreachableError"
