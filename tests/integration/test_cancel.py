"""Cancelling a served deployment's flow run interrupts, then archives, its session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling

from blocks.session_run import SESSION_LABEL
from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "cancel-test"

SERVE = f"""
from flows.session import run_agent_session
run_agent_session.serve(name={DEPLOYMENT!r}, print_starting_message=False, limit=2)
"""


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(prefect_harness: None, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Serve ``run_agent_session`` in a child process (the Runner runs hooks there)."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "runner.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        with get_client(sync_client=True) as pc:
            _wait_for(lambda: _deployment_exists(pc), 90, "the served deployment to register")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _deployment_exists(pc: object) -> bool:
    try:
        pc.read_deployment_by_name(f"run-agent-session/{DEPLOYMENT}")  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def test_cancelling_a_running_flow_run_interrupts_and_archives_the_session(
    served: subprocess.Popen[bytes], emulator: EmulatorServer, client: anthropic.Anthropic, tmp_path: Path
) -> None:
    agent_name = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    flow_run = run_deployment(
        f"run-agent-session/{DEPLOYMENT}",
        parameters={
            "agent": agent_name,
            "prompt": scenario(stream={"count": 100_000, "delay": 0.05}),
            "output_dir": str(tmp_path / "out"),
        },
        timeout=0,
    )
    assert isinstance(flow_run, FlowRun)
    flow_run_id = UUID(str(flow_run.id))

    with get_client(sync_client=True) as pc:
        session_id: list[str] = []

        def labelled_and_running() -> bool:
            run = pc.read_flow_run(flow_run_id)
            assert run.state is None or not run.state.is_final(), f"flow run ended early: {run.state}"
            labels = run.labels or {}
            if SESSION_LABEL not in labels:
                return False
            session_id[:] = [str(labels[SESSION_LABEL])]
            return client.beta.sessions.retrieve(session_id[0]).status == "running"

        _wait_for(labelled_and_running, 120, "the session to run under the flow run")
        time.sleep(1.0)  # let it stream for a moment
        pc.set_flow_run_state(flow_run_id, Cancelling(), force=True)

        _wait_for(
            lambda: client.beta.sessions.retrieve(session_id[0]).archived_at is not None,
            120,
            "the session to be archived",
        )
        _wait_for(
            lambda: getattr(pc.read_flow_run(flow_run_id).state, "type", None) == StateType.CANCELLED,
            120,
            "the flow run to be cancelled",
        )

    history = [e.type for e in client.beta.sessions.events.list(session_id[0], limit=1000)]
    assert "user.interrupt" in history
    final = client.beta.sessions.retrieve(session_id[0])
    assert final.status == "idle" and final.archived_at is not None
