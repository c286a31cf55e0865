"""End to end through real Prefect machinery: ``prefect server start``, a process work pool, the
deployments of ``prefect.yaml``, a ``prefect worker start``, and runs created through the
Prefect API with parameters (as the UI creates them).

Run alone with ``uv run pytest -m e2e``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import anthropic
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import CronSchedule
from prefect.states import Cancelling

from emulator import EmulatorServer
from flows.batch import BATCH_TABLE_KEY
from managed_agents_core.keys import DEPLOYMENT_KEY, FLOW_RUN_KEY, run_session_id
from managed_agents_core.report import report_key
from tests.conftest import sdk_client
from tests.e2e.conftest import PrefectServer, deploy_block, run_deployment_via_api, wait_for, worker_log
from tests.integration.session_helpers import scenario, settled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def artifacts_of(api: PrefectClient, run_id: UUID) -> dict[str, Any]:
    found = await api.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return {str(a.key or a.type): a for a in found}


async def test_deploy_run_and_cancel_through_the_prefect_api(
    deployed: PrefectServer, api: PrefectClient, e2e_emulator: EmulatorServer, tmp_path: Path
) -> None:
    sdk = sdk_client(e2e_emulator.url)
    deployments = {d.name: d for d in await api.read_deployments()}
    assert set(deployments) >= {"setup", "on-demand", "nightly", "orphan-sweeper"}
    nightly = deployments["nightly"]
    (schedule,) = nightly.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert schedule.schedule.cron == "30 2 * * *" and schedule.schedule.timezone == "Europe/Berlin"
    assert schedule.parameters == {"spend_limit_usd": 5, "output_dir": "outputs/nightly"}
    assert nightly.work_pool_name == "managed-agents"
    assert nightly.pull_steps and "set_working_directory" in json.dumps(nightly.pull_steps)

    # 1. The setup deployment creates the agent and saves the block.
    block_name = await deploy_block(api, deployed, "flows/specs/example-agent.yaml", "e2e-writer")
    block = await api.read_block_document_by_name(block_name, block_type_slug="managed-agent")
    agent_id = block.data["agent_id"]
    assert sdk.beta.agents.retrieve(agent_id).version == block.data["version"]

    # 2. One session through the on-demand deployment.
    out = tmp_path / "session"
    session_run = await run_deployment_via_api(
        api,
        deployed,
        "run-agent-session/on-demand",
        {
            "agent": block_name,
            "prompt": scenario(outputs=[{"name": "answer.txt", "size": 42}]),
            "output_dir": str(out),
        },
    )
    assert session_run.state is not None and session_run.state.is_completed(), worker_log(deployed)
    # A deployment run too is named by its agent and prompt, and its state message has the cost.
    assert session_run.name.startswith(f"{block_name}: #emulator"), session_run.name
    assert "1 output file(s)" in str(session_run.state.message)
    assert "list cost $" in str(session_run.state.message)
    session_id = str(run_session_id(session_run.tags, session_run.labels))
    session = settled(sdk).beta.sessions.retrieve(session_id)
    assert session.metadata[FLOW_RUN_KEY] == str(session_run.id)
    assert session.metadata[DEPLOYMENT_KEY] == str(deployments["on-demand"].id)
    assert (out / "answer.txt").stat().st_size == 42
    keys = set(await artifacts_of(api, session_run.id))
    assert keys == {report_key(block.data["agent_name"]), "progress"}, keys

    # 3. A batch through the nightly deployment, with parameters overriding the defaults.
    batch_out = tmp_path / "batch"
    batch_run = await run_deployment_via_api(
        api,
        deployed,
        "run-agent-batch/nightly",
        {
            "agent": block_name,
            "items": [
                {"key": f"k{i}", "prompt": scenario(outputs=[{"name": "o.txt", "size": 5 + i}])}
                for i in range(3)
            ],
            "output_dir": str(batch_out),
            "max_concurrency": 2,
        },
    )
    assert batch_run.state is not None and batch_run.state.is_completed(), worker_log(deployed)
    assert str(batch_run.state.message).startswith("3 items: 3 completed, 0 failed, list cost $")
    assert [(batch_out / f"k{i}" / "o.txt").stat().st_size for i in range(3)] == [5, 6, 7]
    table = (await artifacts_of(api, batch_run.id))[BATCH_TABLE_KEY]
    assert all(f"| [k{i}](" in str(table.data) for i in range(3)), table.data

    # 4. Cancel a running session deployment through the API: the hook (in the worker's
    #    process) interrupts, then archives, the session.
    deployment = deployments["on-demand"]
    created = await api.create_flow_run_from_deployment(
        deployment.id,
        parameters={
            "agent": block_name,
            "prompt": scenario(stream={"count": 3000, "delay": 0.05}),
            "output_dir": str(tmp_path / "cancelled"),
        },
    )
    deadline = time.monotonic() + 180
    while True:
        run = await api.read_flow_run(created.id)
        label = run_session_id(run.tags, run.labels)
        running_session = str(label) if label else ""
        if running_session and settled(sdk).beta.sessions.retrieve(running_session).status == "running":
            break
        assert time.monotonic() < deadline, f"session never started running\n{worker_log(deployed)}"
        await asyncio.sleep(0.5)
    await api.set_flow_run_state(created.id, Cancelling(message="cancelled by the e2e test"))
    cancelled = await wait_for(api, created.id, deployed, within=120)
    assert cancelled.state is not None and cancelled.state.is_cancelled(), worker_log(deployed)
    deadline = time.monotonic() + 90
    while settled(sdk).beta.sessions.retrieve(running_session).archived_at is None:
        assert time.monotonic() < deadline, f"session was not archived\n{worker_log(deployed)}"
        await asyncio.sleep(1)
    final = settled(sdk).beta.sessions.retrieve(running_session)
    assert final.status == "idle"
    events = [e.type for e in settled(sdk).beta.sessions.events.list(running_session, limit=1000)]
    assert "user.interrupt" in events
    sdk.close()


@pytest.mark.parametrize("item_runs", ["flow", "task"])
async def test_cancelling_a_batch_archives_its_running_sessions(
    deployed: PrefectServer, api: PrefectClient, e2e_emulator: EmulatorServer, tmp_path: Path, item_runs: str
) -> None:
    # Item 1 finishes first and must be left alone; items 2 and 3 are running when the batch
    # is cancelled and must be interrupted and archived by the hook in the worker's process.
    sdk = sdk_client(e2e_emulator.url)
    block_name = await deploy_block(api, deployed, "flows/specs/example-agent.yaml", "e2e-batch")
    deployment = await api.read_deployment_by_name("run-agent-batch/nightly")
    long_item = scenario(stream={"count": 3000, "delay": 0.05})
    created = await api.create_flow_run_from_deployment(
        deployment.id,
        parameters={
            "agent": block_name,
            "items": [scenario(outputs=[{"name": "q.txt", "size": 3}]), long_item, long_item],
            "output_dir": str(tmp_path),
            "max_concurrency": 3,
            "concurrency_limit_name": f"e2e-{uuid.uuid4().hex[:6]}",
            "item_runs": item_runs,
        },
    )
    deadline = time.monotonic() + 180
    while True:
        sessions = batch_sessions(sdk, created.name)
        running = [sessions[k].id for k in ("item-0002", "item-0003") if k in sessions]
        if (
            len(running) == 2
            and all(settled(sdk).beta.sessions.retrieve(s).status == "running" for s in running)
            and await item_finished(api, created.id, "item-0001", item_runs)
        ):
            break
        assert time.monotonic() < deadline, f"item sessions never ran\n{worker_log(deployed)}"
        await asyncio.sleep(0.5)

    await api.set_flow_run_state(created.id, Cancelling(message="cancelled by the e2e test"))
    cancelled = await wait_for(api, created.id, deployed, within=120)
    assert cancelled.state is not None and cancelled.state.is_cancelled(), worker_log(deployed)
    deadline = time.monotonic() + 90
    while not all(settled(sdk).beta.sessions.retrieve(s).archived_at for s in running):
        assert time.monotonic() < deadline, f"item sessions were not archived\n{worker_log(deployed)}"
        await asyncio.sleep(1)
    for session_id in running:
        assert "user.interrupt" in [
            e.type for e in settled(sdk).beta.sessions.events.list(session_id, limit=1000)
        ]
    finished = settled(sdk).beta.sessions.retrieve(sessions["item-0001"].id)
    assert finished.archived_at is None and finished.status == "idle"
    assert (tmp_path / "item-0001" / "q.txt").stat().st_size == 3
    sdk.close()


def batch_sessions(sdk: anthropic.Anthropic, run_name: str) -> dict[str, Any]:
    """The sessions of a batch run by item key (sessions are titled ``<batch run>-<key>``)."""
    prefix = f"{run_name}-"
    return {
        str(s.title).removeprefix(prefix): s
        for s in sdk.beta.sessions.list(limit=100)
        if (s.title or "").startswith(prefix)
    }


async def item_finished(api: PrefectClient, batch_run_id: UUID, key: str, item_runs: str) -> bool:
    """Whether the item's own flow run (or its task run in the batch's run) completed."""
    if item_runs == "flow":
        runs = [c for c in await read_children(api, batch_run_id) if c.name.endswith(f"-{key}")]
    else:
        runs = await api.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[batch_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[f"item-{key}"])),
        )
    return any(r.state is not None and r.state.is_completed() for r in runs)


async def read_children(api: PrefectClient, parent: UUID) -> list[FlowRun]:
    return await api.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
    )
