"""End-to-end fixtures: a real ``prefect server start``, a process work pool, the deployments of
``prefect.yaml`` and a ``prefect worker start``, all in child processes.

Everything runs on loopback with a temporary ``PREFECT_HOME`` and SQLite database, and every
process started here is stopped at the end of the session, pass or fail. The emulator runs in a
thread of the test process; the worker's flow-run processes reach it over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun

from emulator import EmulatorConfig, EmulatorServer
from emulator.server import free_port
from tests.conftest import REALISTIC_SCALE, TEST_API_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "managed-agents"
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class PrefectServer:
    """A running ``prefect server start``."""

    api_url: str
    home: Path
    env: dict[str, str]


def _child_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_"))}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),
            "PWD": str(PROJECT_ROOT),
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with_group = os.getpgid(process.pid)
    os.killpg(with_group, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(with_group, signal.SIGKILL)
        process.wait(timeout=10)


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


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port with a temporary SQLite database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _child_env(home)
    process = _start(
        ["server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"],
        env,
        home / "server.log",
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, (home / "server.log").read_text()[-4000:]
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not become healthy"
            time.sleep(0.5)
        yield PrefectServer(api_url=api_url, home=home, env=_child_env(home, api_url))
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[EmulatorServer]:
    """One emulator for the whole e2e session (the deployments' flows talk to it), lagging and
    racing like the real service (the realistic profile, scaled like the rest of the suite)."""
    with EmulatorServer(EmulatorConfig.profile("realistic", scale=REALISTIC_SCALE)) as server:
        yield server


@pytest.fixture(scope="session")
def deployed(prefect_server: PrefectServer, e2e_emulator: EmulatorServer) -> Iterator[PrefectServer]:
    """The process work pool, every deployment of ``prefect.yaml``, and a running worker.

    The worker (and the flow-run processes it starts) gets the emulator's URL and a test key
    through the environment, as a real worker would get ANTHROPIC_API_KEY.
    """
    prefect_cli(prefect_server, "work-pool", "create", WORK_POOL, "--type", "process")
    prefect_cli(prefect_server, "--no-prompt", "deploy", "--all", timeout=300)
    worker_env = {
        **prefect_server.env,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": e2e_emulator.url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    worker = _start(
        ["worker", "start", "--pool", WORK_POOL, "--name", "e2e-worker", "--limit", "4"],
        worker_env,
        prefect_server.home / "worker.log",
    )
    try:
        yield prefect_server
    finally:
        _stop(worker)


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


async def deploy_block(api: PrefectClient, server: PrefectServer, spec: str, prefix: str) -> str:
    """Run the setup deployment for ``spec`` and return the name of the block it saved."""
    block_name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    setup = await run_deployment_via_api(
        api, server, "deploy-agent/setup", {"spec": spec, "block_name": block_name}
    )
    assert setup.state is not None and setup.state.is_completed(), f"{setup.state}\n{worker_log(server)}"
    return block_name
