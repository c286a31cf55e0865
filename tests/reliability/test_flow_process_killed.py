"""The flow's own process is SIGKILLed mid-stream, then the same flow run runs again.

This is what a crashed worker machine or the OOM killer does, followed by Prefect running the
flow run again (a reschedule of the same flow-run id). Both runs are separate Python processes
against the session's real Prefect test server and the emulator, either sharing the result
storage (where ``create-session`` keeps its cache record) or not: a retry in a new container of
a Kubernetes or Docker work pool has none of the first attempt's disk, so the API must be the
source of truth (the session's metadata names the flow run and the run's idempotency key). The
second run must take over the session the first one started: one session, the prompt sent
once, the outputs complete.

Nothing runs the ``on_crashed`` hook here (a SIGKILLed process cannot, and no runner watches
it); under a worker, Prefect runs that hook after a crash and it archives the session, so a
later retry starts a new one (see the README's Reliability section).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anthropic
import pytest
from prefect.settings import PREFECT_API_URL

from tests.integration.session_helpers import RemoteAgent, scenario, settled

from .campaign import record
from .conftest import leftovers

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(400)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_SIZE = 2_000_000

FIRST_RUN = """
import sys
from flows.session import run_agent_session

name, agent, prompt, output_dir = sys.argv[1:5]
run_agent_session.with_options(flow_run_name=name)(agent=agent, prompt=prompt, output_dir=output_dir)
"""

RUN_AGAIN = """
import json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.flow_engine import run_flow
from prefect.states import Scheduled
from flows.session import run_agent_session

with get_client(sync_client=True) as client:
    [flow_run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[sys.argv[1]])))
    # What a reschedule of a crashed run does: the same flow-run id goes back to Scheduled.
    client.set_flow_run_state(flow_run.id, Scheduled(message="run again after a crash"), force=True)
    flow_run = client.read_flow_run(flow_run.id)
result = run_flow(run_agent_session, flow_run=flow_run, parameters=flow_run.parameters)
print("RESULT " + json.dumps({"session_id": result.session_id, "files": [f.path for f in result.output_files]}))
"""


def _child(script: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _sessions_of(sdk: anthropic.Anthropic, agent_id: str) -> list[str]:
    return [s.id for s in sdk.beta.sessions.list(agent_id=agent_id, limit=100)]


@pytest.mark.parametrize("result_storage", ["shared", "deleted"])
def test_flow_process_sigkilled_mid_stream_then_run_again_resumes_the_same_session(
    agent_block: str,
    remote_agent: RemoteAgent,
    client: anthropic.Anthropic,
    tmp_path: Path,
    result_storage: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "results"),
            "PREFECT_LOGGING_TO_API_ENABLED": "false",
        }
    )
    name = f"killed-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    prompt = scenario(
        stream={"count": 1500, "delay": 0.01}, outputs=[{"name": "result.bin", "size": OUTPUT_SIZE}]
    )
    log = tmp_path / "runs.log"

    first = _child(FIRST_RUN, [name, agent_block, prompt, str(out)], env, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            sessions = _sessions_of(client, remote_agent.agent_id)
            seen = (
                len(list(settled(client).beta.sessions.events.list(sessions[0], limit=1000)))
                if sessions
                else 0
            )
            if seen >= 100:
                break
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"the first run never got into its stream\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    [session_id] = sessions
    assert settled(client).beta.sessions.retrieve(session_id).status == "running"  # the work goes on remotely
    killed_at_events = seen
    if result_storage == "deleted":
        # The first attempt's cache record of its session is what a new container would not have.
        assert [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
        shutil.rmtree(tmp_path / "results")

    started = time.monotonic()
    again = subprocess.run(
        [sys.executable, "-c", RUN_AGAIN, name],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, f"{again.stdout[-3000:]}\n{again.stderr[-3000:]}"
    result = json.loads(again.stdout.split("RESULT ", 1)[1])
    output = out / "result.bin"
    user_messages = list(settled(client).beta.sessions.events.list(session_id, types=["user.message"]))
    line = record(
        f"flow process SIGKILLed mid-stream, same flow run run again (result storage {result_storage})",
        events_before_kill=killed_at_events,
        sessions_created=len(_sessions_of(client, remote_agent.agent_id)),
        same_session=result["session_id"] == session_id,
        prompts_sent=len(user_messages),
        output_bytes=output.stat().st_size if output.exists() else 0,
        partial_files=len(leftovers(out)),
        seconds_to_finish=round(time.monotonic() - started, 1),
    )
    assert result["session_id"] == session_id, line
    assert _sessions_of(client, remote_agent.agent_id) == [session_id], line
    assert len(user_messages) == 1, line
    assert output.stat().st_size == OUTPUT_SIZE and result["files"] == [str(output)], line
    assert leftovers(out) == [], line
