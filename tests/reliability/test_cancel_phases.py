"""Cancelling a served deployment's flow run, in each phase of the run, leaves no session running.

The phases: uploading the inputs, starting the session (the create is committed but its answer
has not arrived yet, so the run never learnt the session's id), streaming, and downloading the
outputs. The Runner kills the flow's process and runs the cancellation hook in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling

from emulator import EmulatorServer
from managed_agents_core.keys import FLOW_RUN_KEY, run_session_id
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario, settled

from .campaign import record
from .conftest import leftovers

pytestmark = pytest.mark.reliability

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


@pytest.fixture(scope="module")
def served(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """Serve ``run_agent_session`` in a child process (the Runner runs hooks there)."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path_factory.mktemp("runner") / "runner.log", "wb")  # noqa: SIM115
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


def _in_flight(emulator: EmulatorServer, method: str, path_part: str) -> bool:
    return any(
        r["method"] == method and path_part in r["path"] and r["status"] == 0
        for r in emulator.control.requests()
    )


@dataclass(frozen=True)
class Phase:
    """How to hold a run in one phase long enough to cancel it there."""

    name: str
    doing: str
    faults: dict[str, Any]
    prompt: str
    with_input: bool = False
    session_expected: bool = True

    def reached(self, emulator: EmulatorServer, client: anthropic.Anthropic, session_id: str | None) -> bool:
        if self.name == "upload":
            return _in_flight(emulator, "POST", "/v1/files")
        if self.name == "start":
            return _in_flight(emulator, "POST", "/v1/sessions")
        if self.name == "download":  # the answer has started; its body trickles in
            return any("slow_download" in (r["injected"] or "") for r in emulator.control.requests())
        return (
            session_id is not None and settled(client).beta.sessions.retrieve(session_id).status == "running"
        )


PHASES = [
    Phase(
        "upload",
        "uploading the inputs",
        {"slow_answers": ["POST /v1/files 20"]},
        scenario(reply="x"),
        with_input=True,
        session_expected=False,
    ),
    Phase(
        "start",
        "starting (the create committed, its answer not yet back)",
        {"slow_answers": ["POST /v1/sessions 20"]},
        scenario(reply="x"),
    ),
    Phase("stream", "streaming", {}, scenario(stream={"count": 100_000, "delay": 0.05})),
    Phase(
        "download",
        "downloading the outputs",
        {"slow_download_bytes_per_second": 100_000},
        scenario(outputs=[{"name": "big.bin", "size": 3_000_000}]),
    ),
]


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_cancelling_in_each_phase_leaves_no_session_running(
    served: subprocess.Popen[bytes],
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    tmp_path: Path,
    phase: Phase,
) -> None:
    remote = create_remote_agent(client)
    agent_name = save_agent_block(remote, emulator.url, TEST_API_KEY)
    data = tmp_path / "input.csv"
    data.write_text("region,total\nnorth,1\n")
    out = tmp_path / "out"
    emulator.control.set_faults(**phase.faults)
    flow_run = run_deployment(
        f"run-agent-session/{DEPLOYMENT}",
        parameters={
            "agent": agent_name,
            "prompt": phase.prompt,
            "files": [str(data)] if phase.with_input else None,
            "output_dir": str(out),
        },
        timeout=0,
    )
    assert isinstance(flow_run, FlowRun)
    flow_run_id = UUID(str(flow_run.id))

    with get_client(sync_client=True) as pc:

        def in_phase() -> bool:
            run = pc.read_flow_run(flow_run_id)
            assert run.state is None or not run.state.is_final(), f"flow run ended early: {run.state}"
            label = run_session_id(run.tags, run.labels)
            return phase.reached(emulator, client, str(label) if label else None)

        _wait_for(in_phase, 120, f"the run to reach the {phase.name} phase")
        pc.set_flow_run_state(flow_run_id, Cancelling(), force=True)
        _wait_for(
            lambda: getattr(pc.read_flow_run(flow_run_id).state, "type", None) == StateType.CANCELLED,
            120,
            "the flow run to be cancelled",
        )

    def sessions() -> list[Any]:
        return list(client.beta.sessions.list(agent_id=remote.agent_id, include_archived=True, limit=100))

    if phase.session_expected:
        _wait_for(
            lambda: bool(sessions()) and all(s.archived_at for s in sessions()), 120, "the session's archive"
        )
    else:
        time.sleep(1.0)  # a late create would show up now
    found = sessions()
    line = record(
        f"cancelled while {phase.doing}",
        sessions=len(found),
        running=sum(1 for s in found if s.status == "running"),
        archived=sum(1 for s in found if s.archived_at is not None),
        partial_files=len(leftovers(out)),
    )
    assert len(found) == (1 if phase.session_expected else 0), line
    assert all(s.status != "running" and s.archived_at is not None for s in found), line
    assert all(dict(s.metadata or {})[FLOW_RUN_KEY] == str(flow_run_id) for s in found), line
    if phase.name == "stream":
        history = [e.type for e in settled(client).beta.sessions.events.list(found[0].id, limit=1000)]
        assert "user.interrupt" in history, line
    assert leftovers(out) == [], line
