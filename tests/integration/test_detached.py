"""Detached runs outside a deployment, and the watcher's view of their sessions, against the
emulator's realistic profile (real SDK, real HTTP) and a real local Prefect server.

The whole path (a deployment run suspends, the worker is freed, the watcher wakes it, the
Automation resumes it) is proven in ``tests/e2e/test_detached.py``.
"""

from __future__ import annotations

import asyncio
import time

import anthropic
import pytest
from prefect import flow, get_client
from prefect.states import Suspended

from blocks import ConfigurationError
from emulator import EmulatorServer
from flows.detached import RESUME_AUTOMATION_NAME, session_stopped, watch_detached_sessions
from flows.session import run_agent_session
from managed_agents_core.keys import DETACHED_TAG, session_tag
from tasks.detached import asuspended_runs, detach_pause_key
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import (
    create_remote_agent,
    message,
    save_agent_block,
    scenario,
    session_creates,
    start_session,
    wait_for_event,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_detach_outside_a_deployment_is_refused_before_anything_is_created(
    emulator: EmulatorServer, client: anthropic.Anthropic
) -> None:
    name = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    with pytest.raises(ConfigurationError, match="deployment run"):
        run_agent_session(name, "Work for hours.", detach=True)
    assert session_creates(emulator.control.requests()) == 0


@flow(name="detached-stand-in")
def detached_stand_in() -> None:
    """Stands for a suspended run_agent_session run in the watcher test (never run)."""


async def test_the_watcher_wakes_runs_whose_session_stopped_and_only_those(
    emulator: EmulatorServer, client: anthropic.Anthropic
) -> None:
    remote = create_remote_agent(client)
    name = save_agent_block(remote, emulator.url, TEST_API_KEY)
    done, working = start_session(client, remote), start_session(client, remote)
    client.beta.sessions.events.send(done, events=[message(scenario(reply="quick"))])  # type: ignore[list-item]
    client.beta.sessions.events.send(working, events=[message(scenario(reply="slow", delay=3.0))])  # type: ignore[list-item]
    from blocks.agent import aresolve_agent

    block = await aresolve_agent(name)
    deadline = time.monotonic() + 30
    while await session_stopped.fn(block, done) is None:  # the history lags: wait for the end
        assert time.monotonic() < deadline, "the quick session's end was never listed"
        await asyncio.sleep(0.2)
    assert await session_stopped.fn(block, working) is None  # its prompt is still being worked on
    assert await session_stopped.fn(block, "sesn_011CnoSuchSession0000") == "terminated"

    async with get_client() as prefect:
        runs = {}
        for session_id in (done, working):
            run = await prefect.create_flow_run(
                detached_stand_in, parameters={"agent": name}, tags=[DETACHED_TAG, session_tag(session_id)]
            )
            suspend = Suspended(timeout_seconds=600, pause_key=detach_pause_key(session_id))
            await prefect.set_flow_run_state(run.id, suspend, force=True)
            runs[session_id] = run
        # A detached run that later suspended for a tool approval waits for a person's form:
        # its (finished) session never wakes it, or it would resume without their answer.
        approval = await prefect.create_flow_run(
            detached_stand_in, parameters={"agent": name}, tags=[DETACHED_TAG, session_tag(done)]
        )
        await prefect.set_flow_run_state(
            approval.id, Suspended(timeout_seconds=600, pause_key="approval-1"), force=True
        )

        woken = await watch_detached_sessions()

        assert woken == [done]
        event = await wait_for_event("managed-agents.session.idled", f"managed-agents.session.{done}")
        assert event.related[0].id == f"prefect.flow-run.{runs[done].id}"
        assert [r.id for r in await asuspended_runs(done)] == [runs[done].id]  # not the approval's
        assert event.payload["source"] == "watcher"
        assert await prefect.read_automations_by_name(RESUME_AUTOMATION_NAME)
