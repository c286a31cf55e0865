"""A detached session run: the worker is released while the agent works, and the run is woken
and resumed when the session stops, then collects its outputs.

Through real Prefect machinery: the on-demand deployment runs in a process worker with
``detach=True``; the run suspends and its process exits. Two ways to wake it, one test each:
the watcher deployment (``watch-detached-sessions/detached-watcher``), which reads the session,
and the webhook receiver (``managed-agents webhooks serve``), to which an emulator delivers
signed webhooks. Either emits the wake
event; the resume Automation resumes the run, which the worker picks up again. Run alone with
``uv run pytest -m e2e``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, temporary_settings

from blocks.credentials import AnthropicCredentials
from emulator import EmulatorConfig, EmulatorServer, free_port
from flows.detached import RESUME_AUTOMATION_NAME
from managed_agents.webhooks import WEBHOOK_PATH
from managed_agents_core.keys import DETACHED_TAG, FLOW_RUN_KEY, read_key, run_session_id
from tests.conftest import REALISTIC_SCALE, TEST_API_KEY, sdk_client
from tests.e2e.conftest import (
    PROJECT_ROOT,
    WATCHER_DEPLOYMENT,
    PrefectServer,
    deploy_block,
    wait_for,
    worker_log,
)
from tests.e2e.test_suspend_approval import _process_is_gone, _wait_for_suspension
from tests.integration.session_helpers import scenario, settled
from tests.integration.test_webhook_receiver import SECRET
from tests.prefect_server import start_module, stop_process_group, wait_until_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def _poll(check: Any, within: float) -> Any:
    """What ``check`` returns once it is truthy, or its last (falsy) answer after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(0.5)


async def _until(check: Any, what: str, server: PrefectServer, within: float = 240) -> Any:
    value = await _poll(check, within)
    assert value, f"{what} did not happen\n{worker_log(server)}"
    return value


async def _watch_until_resumed(
    api: PrefectClient, server: PrefectServer, woken_by: Any, resumed: Any, timeline: dict[str, datetime]
) -> None:
    """Run the watcher as its every-minute schedule would (paused in these tests: conftest)
    until the detached run resumes. A run that has just created the resume Automation may emit
    its wake event before Prefect has loaded the Automation; the next run wakes it again."""
    watcher = await api.read_deployment_by_name(WATCHER_DEPLOYMENT)
    for _ in range(3):
        watch = await api.create_flow_run_from_deployment(watcher.id)
        watched = await wait_for(api, watch.id, server)
        assert watched.state is not None and watched.state.is_completed(), (
            f"{watched.state}\n{worker_log(server)}"
        )
        timeline.setdefault("watcher run done", datetime.now(UTC))
        sources = await _until(woken_by, "the wake event", server, within=120)
        assert "watcher" in sources, sources
        timeline.setdefault("wake event (watcher)", datetime.now(UTC))
        if await _poll(resumed, within=30):
            return
    raise AssertionError(f"three watcher runs did not resume the detached run\n{worker_log(server)}")


@pytest.fixture
def webhook_emulator(deployed: PrefectServer) -> Iterator[EmulatorServer]:
    """``managed-agents webhooks serve`` (a process of its own, as a team runs it, reaching the
    e2e Prefect server), and an emulator that delivers signed webhooks to it."""
    port = free_port()
    log = deployed.home / "webhooks.log"
    env = {**deployed.env, "ANTHROPIC_WEBHOOK_SIGNING_KEY": SECRET}
    receiver = start_module("managed_agents.cli", ["webhooks", "serve", "--port", str(port)], env, log)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/healthz", receiver, 60, log)
        config = EmulatorConfig.profile(
            "realistic",
            scale=REALISTIC_SCALE,
            webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
            webhook_secret=SECRET,
        )
        with EmulatorServer(config) as server:
            yield server
    finally:
        stop_process_group(receiver)


async def _wake_sources(api: PrefectClient, session_id: str) -> set[str]:
    page = await api.read_events(
        EventFilter(
            event=EventNameFilter(name=["managed-agents.session.idled"]),
            resource=EventResourceFilter(id=[f"managed-agents.session.{session_id}"]),
        ),
        limit=20,
    )
    return {str(e.payload.get("source")) for e in page.events}


@pytest.mark.parametrize("wake", ["watcher", "webhook"])
async def test_a_detached_run_frees_the_worker_and_is_resumed_when_the_session_stops(
    wake: str,
    deployed: PrefectServer,
    api: PrefectClient,
    e2e_emulator: EmulatorServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    record_property: Any,
) -> None:
    spec = str(PROJECT_ROOT / "flows/specs/example-agent.yaml")
    if wake == "webhook":
        emulator: EmulatorServer = request.getfixturevalue("webhook_emulator")
        # The sessions go to the emulator that delivers webhooks: the block's saved credentials.
        creds_name = f"e2e-webhook-emulator-{time.monotonic_ns()}"
        with temporary_settings(updates={PREFECT_API_URL: deployed.api_url}):
            await AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url).save(creds_name)
        # `webhooks serve` created the resume Automation before it began to serve.
        assert await api.read_automations_by_name(RESUME_AUTOMATION_NAME)
        block_name = await deploy_block(api, deployed, spec, "e2e-detach-hook", credentials=creds_name)
    else:
        emulator = e2e_emulator
        block_name = await deploy_block(api, deployed, spec, "e2e-detach")
    sdk = sdk_client(emulator.url)
    out = tmp_path / "out"
    deployment = await api.read_deployment_by_name("run-agent-session/on-demand")
    timeline: dict[str, datetime] = {}

    created = await api.create_flow_run_from_deployment(
        deployment.id,
        parameters={
            "agent": block_name,
            # A turn of several seconds: the run suspends while the agent still works.
            "prompt": scenario(reply="done later", delay=1.0, outputs=[{"name": "answer.txt", "size": 42}]),
            "output_dir": str(out),
            "detach": True,
        },
    )
    suspended = await _wait_for_suspension(api, created.id, deployed)
    timeline["run suspended"] = datetime.now(UTC)
    assert DETACHED_TAG in suspended.tags
    session_id = str(run_session_id(suspended.tags, suspended.labels))

    # The worker is released: the flow-run process exits while the session works.
    async def process_gone() -> bool:
        return _process_is_gone(suspended.infrastructure_pid)

    await _until(process_gone, "the flow-run process's exit", deployed, within=60)
    timeline["flow-run process gone"] = datetime.now(UTC)
    assert sdk.beta.sessions.retrieve(session_id).status in ("running", "idle")

    async def session_idle() -> bool:
        return settled(sdk).beta.sessions.retrieve(session_id).status == "idle"

    await _until(session_idle, "the session's idle", deployed, within=120)
    timeline["session idle"] = datetime.now(UTC)

    async def woken_by() -> set[str]:
        return await _wake_sources(api, session_id)

    async def resumed() -> FlowRun | None:
        run = await api.read_flow_run(created.id)
        return run if run.state is not None and run.state.name != "Suspended" else None

    if wake == "watcher":
        await _watch_until_resumed(api, deployed, woken_by, resumed, timeline)
    else:
        sources = await _until(woken_by, "the wake event", deployed, within=120)
        assert wake in sources, sources
        timeline[f"wake event ({wake})"] = datetime.now(UTC)

    await _until(resumed, "the resume", deployed, within=120)
    timeline["run resumed"] = datetime.now(UTC)
    final = await wait_for(api, created.id, deployed, within=240)
    timeline["run completed"] = datetime.now(UTC)
    assert final.state is not None and final.state.is_completed(), f"{final.state}\n{worker_log(deployed)}"

    # One session, the prompt sent once, the outputs collected by the resumed run.
    assert str(run_session_id(final.tags, final.labels)) == session_id
    assert (out / "answer.txt").stat().st_size == 42
    assert len(list(settled(sdk).beta.sessions.events.list(session_id, types=["user.message"]))) == 1
    # Other tests' sessions share the agent: this run's are those its metadata names.
    ours = [
        s.id
        for s in sdk.beta.sessions.list(limit=100)
        if read_key(s.metadata, FLOW_RUN_KEY) == str(created.id)
    ]
    assert ours == [session_id]
    states = [s.name for s in await api.read_flow_run_states(created.id)]
    assert states.count("Running") >= 2 and "Suspended" in states, states  # ran, was released, ran again
    start = min(timeline.values())
    record_property(
        "figures",
        f"detached run timeline ({wake}): "
        + ", ".join(f"{name} +{(at - start).total_seconds():.1f} s" for name, at in timeline.items()),
    )
    sdk.close()
