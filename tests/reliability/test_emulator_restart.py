"""The API process dies and comes back (``--state``) in the middle of a run.

The run either recovers or fails with a clear, typed error that names the session, and the
output folder holds nothing half-written.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from emulator import EmulatorProcess
from managed_agents_core.exceptions import ManagedAgentsError, SessionError
from tests.conftest import TEST_API_KEY, sdk_client
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario

from .campaign import record, sized
from .conftest import leftovers

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("prefect_harness")]

RESTARTS = sized(1, 3)


def _kickoffs(emu: EmulatorProcess) -> int:
    return sum(1 for r in emu.control.requests() if r["method"] == "POST" and r["path"].endswith("/events"))


@pytest.mark.parametrize("attempt", range(RESTARTS), ids=lambda i: f"run{i}")
async def test_emulator_killed_and_restarted_mid_stream(attempt: int, tmp_path: Path) -> None:
    from flows.session import arun_agent_session

    state_file = tmp_path / "state.json"
    emu = EmulatorProcess(["--state", str(state_file)], log_path=tmp_path / "emulator.log").start()
    out = tmp_path / "out"
    try:
        with sdk_client(emu.url) as sdk:
            block = save_agent_block(create_remote_agent(sdk), emu.url, TEST_API_KEY, verbosity="summary")
        prompt = scenario(
            stream={"count": 600, "delay": 0.02}, outputs=[{"name": "result.bin", "size": 2_000_000}]
        )
        run = asyncio.create_task(arun_agent_session(agent=block, prompt=prompt, output_dir=str(out)))
        deadline = time.monotonic() + 120
        while _kickoffs(emu) == 0:
            assert time.monotonic() < deadline and not run.done(), "the run never sent its prompt"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # well into the stream
        down_at = time.monotonic()
        await asyncio.to_thread(emu.stop, True)  # SIGKILL: no goodbye
        await asyncio.sleep(1.0)
        await asyncio.to_thread(emu.start)
        downtime = time.monotonic() - down_at
        error: BaseException | None = None
        try:
            await asyncio.wait_for(run, timeout=180)
        except BaseException as exc:
            error = exc
    finally:
        emu.stop()
    partial = leftovers(out)
    written = (
        sorted(p.name for p in out.rglob("*") if p.is_file() and "result" in p.name) if out.exists() else []
    )
    line = record(
        f"emulator SIGKILLed and restarted mid-stream (run {attempt + 1})",
        downtime_seconds=round(downtime, 1),
        outcome="recovered" if error is None else type(error).__name__,
        session=getattr(error, "session_id", None) or "-",
        outputs_written=len(written),
        partial_files=len(partial),
    )
    assert partial == [], line
    if error is not None:
        assert isinstance(error, ManagedAgentsError), f"unclear error {error!r}: {line}"
        if isinstance(error, SessionError):
            assert error.session_id, line
        assert written == [], f"outputs of a failed run were written: {line}"
