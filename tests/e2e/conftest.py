"""End-to-end fixtures: a real ``prefect server start``, a process work pool, the deployments of
``prefect.yaml`` and a ``prefect worker start``, all in child processes.

Everything runs on loopback with a temporary ``PREFECT_HOME`` and a database of its own
(``tests/postgres.py``), and every process started here is stopped after the last end-to-end
test, pass or fail (package-scoped fixtures: pytest-xdist runs this folder's tests on one
worker, one after another). The emulator runs in a
thread of the test process; the worker's flow-run processes reach it over HTTP.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import IntervalSchedule

from emulator import EmulatorConfig, EmulatorServer
from tests.conftest import REALISTIC_SCALE, TEST_API_KEY
from tests.postgres import suite_database_url
from tests.prefect_server import PROJECT_ROOT, PrefectServerProcess, start_prefect, stop_process_group

WORK_POOL = "managed-agents"
WATCHER_DEPLOYMENT = "watch-detached-sessions/detached-watcher"
STARTUP_TIMEOUT = 120.0


PrefectServer = PrefectServerProcess
"""The e2e server (the shared starter's class)."""


def prefect_cli(server: PrefectServer, *args: str, timeout: float = 180) -> str:
    """Run a ``prefect`` CLI command against the server; fail the test with its output on error."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT_ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port with a database of its own."""
    home = tmp_path_factory.mktemp("prefect-home")
    server = PrefectServerProcess(home, log_path=home / "server.log", database_url=suite_database_url())
    server.start(timeout=STARTUP_TIMEOUT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def e2e_emulator() -> Iterator[EmulatorServer]:
    """One emulator for the whole e2e session (the deployments' flows talk to it), lagging and
    racing like the real service (the realistic profile, scaled like the rest of the suite)."""
    with EmulatorServer(EmulatorConfig.profile("realistic", scale=REALISTIC_SCALE)) as server:
        yield server


@pytest.fixture(scope="package")
def deployed(prefect_server: PrefectServer, e2e_emulator: EmulatorServer) -> Iterator[PrefectServer]:
    """The process work pool, every deployment of ``prefect.yaml``, and a running worker.

    The worker (and the flow-run processes it starts) gets the emulator's URL and a test key
    through the environment, as a real worker would get ANTHROPIC_API_KEY.
    """
    prefect_cli(prefect_server, "work-pool", "create", WORK_POOL, "--type", "process")
    prefect_cli(prefect_server, "--no-prompt", "deploy", "--all", timeout=300)
    pause_watcher_schedule(prefect_server)
    worker_env = {
        **prefect_server.env,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": e2e_emulator.url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    worker = start_prefect(
        ["worker", "start", "--pool", WORK_POOL, "--name", "e2e-worker", "--limit", "4"],
        worker_env,
        prefect_server.home / "worker.log",
    )
    try:
        yield prefect_server
    finally:
        # Its flow runs are over; a Prefect worker was seen to take the whole default grace
        # (20 s) to act on SIGTERM, at the end of every run.
        stop_process_group(worker, grace=5)


def pause_watcher_schedule(server: PrefectServer) -> None:
    """Pause the detached-watcher's every-minute schedule (after checking that ``prefect.yaml``
    gave it one): the detached test runs the watcher when it needs it, and each scheduled run
    would be one more flow-run process (about 8 s of CPU) for nothing, all through these tests."""
    with SyncPrefectClient(server.api_url) as api:
        watcher = api.read_deployment_by_name(WATCHER_DEPLOYMENT)
        (schedule,) = watcher.schedules
        assert schedule.active and isinstance(schedule.schedule, IntervalSchedule), schedule
        assert schedule.schedule.interval.total_seconds() == 60, schedule
        api.update_deployment_schedule(watcher.id, schedule.id, active=False)


def worker_log(server: PrefectServer) -> str:
    """The worker's output so far (for failure messages)."""
    path = server.home / "worker.log"
    return path.read_text()[-6000:] if path.exists() else ""


@pytest.fixture
async def api(deployed: PrefectServer) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(deployed.api_url) as client:
        yield client


async def wait_for(
    api: PrefectClient, run_id: UUID, server: PrefectServer, *, final: bool = True, within: float = 240
) -> FlowRun:
    """Poll the flow run until it is final (or, with final=False, until it runs)."""
    deadline = time.monotonic() + within
    while True:
        run = await api.read_flow_run(run_id)
        if run.state is not None and (run.state.is_final() if final else run.state.is_running()):
            return run
        assert time.monotonic() < deadline, f"run {run.name} stuck in {run.state}\n{worker_log(server)}"
        await asyncio.sleep(1)


async def run_deployment_via_api(
    api: PrefectClient, server: PrefectServer, name: str, parameters: dict[str, Any]
) -> FlowRun:
    """What the UI's "Run" button does: create a flow run of the deployment, then wait."""
    deployment = await api.read_deployment_by_name(name)
    created = await api.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    return await wait_for(api, created.id, server)


async def deploy_block(
    api: PrefectClient, server: PrefectServer, spec: str, prefix: str, *, credentials: str | None = None
) -> str:
    """Run the setup deployment for ``spec`` and return the name of the block it saved.

    ``credentials`` names a saved ``AnthropicCredentials`` block (default: the worker's environment).
    """
    block_name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    parameters: dict[str, Any] = {"spec": spec, "block_name": block_name}
    if credentials is not None:
        parameters["credentials"] = credentials
    setup = await run_deployment_via_api(api, server, "deploy-agent/setup", parameters)
    assert setup.state is not None and setup.state.is_completed(), f"{setup.state}\n{worker_log(server)}"
    return block_name
