"""A tool approval that suspends a deployment run: the worker is released while a person decides,
and the resumed run re-attaches to the same session.

Through real Prefect machinery: the on-demand deployment of ``prefect.yaml`` runs in a process
worker; the test plays the person in the UI, reading the form and resuming through the API.
Run alone with ``uv run pytest -m e2e``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun

from emulator import EmulatorServer
from managed_agents_core.keys import run_session_id
from tests.conftest import sdk_client
from tests.e2e.conftest import PROJECT_ROOT, PrefectServer, deploy_block, wait_for, worker_log
from tests.integration.session_helpers import scenario, settled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _spec_with_bash_on_ask(tmp_path: Path) -> Path:
    spec = yaml.safe_load((PROJECT_ROOT / "flows/specs/example-agent.yaml").read_text())
    spec["name"] = f"approval-writer-{uuid.uuid4().hex[:6]}"
    spec["environment"]["name"] = f"{spec['name']}-env"
    for config in spec["tools"][0]["configs"]:
        if config["name"] == "bash":
            config["permission_policy"] = {"type": "always_ask"}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


async def _wait_for_suspension(api: PrefectClient, run_id: Any, server: PrefectServer) -> FlowRun:
    deadline = time.monotonic() + 240
    while True:
        run = await api.read_flow_run(run_id)
        if run.state is not None and run.state.name == "Suspended":
            return run
        assert run.state is None or not run.state.is_final(), f"{run.state}\n{worker_log(server)}"
        assert time.monotonic() < deadline, f"run never suspended: {run.state}\n{worker_log(server)}"
        await asyncio.sleep(0.5)


async def _read_form(api: PrefectClient, run: FlowRun) -> dict[str, Any]:
    """The form the UI shows; Prefect saves it just after setting the state, so poll briefly."""
    assert run.state is not None and run.state.state_details.run_input_keyset is not None
    key = run.state.state_details.run_input_keyset["schema"]
    deadline = time.monotonic() + 30
    while True:
        try:
            return dict(json.loads(await api.read_flow_run_input(run.id, key)))
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 404 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _process_is_gone(infrastructure_pid: str | None) -> bool:
    assert infrastructure_pid, "the worker did not record the flow-run process"
    pid = int(infrastructure_pid.rsplit(":", 1)[-1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie the worker has not reaped yet is gone too: it holds no memory and runs nothing.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


async def test_suspended_approval_releases_the_worker_and_resumes_the_same_session(
    deployed: PrefectServer, api: PrefectClient, e2e_emulator: EmulatorServer, tmp_path: Path
) -> None:
    sdk = sdk_client(e2e_emulator.url)
    block_name = await deploy_block(api, deployed, str(_spec_with_bash_on_ask(tmp_path)), "e2e-approval")

    out = tmp_path / "out"
    deployment = await api.read_deployment_by_name("run-agent-session/on-demand")
    created = await api.create_flow_run_from_deployment(
        deployment.id,
        parameters={
            "agent": block_name,
            "prompt": scenario(
                tools=[{"name": "bash", "input": {"command": "ls /data"}, "result": "a.csv"}],
                reply="checked",
                outputs=[{"name": "answer.txt", "size": 42}],
            ),
            "output_dir": str(out),
            # approval_mode "auto" suspends deployment runs.
            "confirmation_policy": {"default": "ask", "approval_timeout_seconds": 600},
        },
    )
    suspended = await _wait_for_suspension(api, created.id, deployed)
    session_id = str(run_session_id(suspended.tags, suspended.labels))

    # The worker is released: the flow-run process has exited while the session waits.
    deadline = time.monotonic() + 60
    while not _process_is_gone(suspended.infrastructure_pid):
        assert time.monotonic() < deadline, f"flow-run process still alive\n{worker_log(deployed)}"
        await asyncio.sleep(0.5)
    assert settled(sdk).beta.sessions.retrieve(session_id).status == "idle"
    assert list(settled(sdk).beta.sessions.events.list(session_id, types=["user.tool_confirmation"])) == []

    form = await _read_form(api, suspended)
    [event_id] = [name for name, field in form["properties"].items() if field.get("enum")]
    assert (form["properties"][event_id]["title"], form["properties"][event_id]["default"]) == (
        "1. bash",
        "deny",
    )
    await api.resume_flow_run(created.id, run_input={event_id: "allow"})

    final = await wait_for(api, created.id, deployed, within=240)
    assert final.state is not None and final.state.is_completed(), f"{final.state}\n{worker_log(deployed)}"
    assert str(run_session_id(final.tags, final.labels)) == session_id  # re-attached, not re-created
    assert (out / "answer.txt").stat().st_size == 42
    [confirmation] = list(
        settled(sdk).beta.sessions.events.list(session_id, types=["user.tool_confirmation"])
    )
    assert (confirmation.tool_use_id, confirmation.result) == (event_id, "allow")
    assert len(list(settled(sdk).beta.sessions.events.list(session_id, types=["user.message"]))) == 1
    agent_id = settled(sdk).beta.sessions.retrieve(session_id).agent.id
    sessions_of_agent = [s for s in sdk.beta.sessions.list(limit=100) if s.agent.id == agent_id]
    assert len(sessions_of_agent) == 1
    sdk.close()
