"""Sessions with follow-ups against the emulator's realistic profile at its full values.

The history trails the stream by 2 s, outputs are indexed one by one 1 to 3 s after a turn, the
status trails or leads the idle, some streams close after an idle, some go silent, and opening a
stream is sometimes answered 429. Every session runs a first turn and a follow-up, each writing
its own files, through the real flows with the runtime's default waits. The same sessions then
run against the instant profile (an ideal service) to price the realism per turn.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorConfig, EmulatorServer
from flows.follow_up import acontinue_agent_session
from flows.session import arun_agent_session
from managed_agents_core.results import SessionResult
from tests.conftest import RUNTIME_TIMING, TEST_API_KEY, sdk_client
from tests.integration.session_helpers import (
    RemoteAgent,
    create_remote_agent,
    save_agent_block,
    scenario,
    settled,
)

from .campaign import record, sized

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900), pytest.mark.usefixtures("prefect_harness")]

SESSIONS = sized(4, 20)
TURN_LIMIT = 180.0
"""A turn that takes longer than this counts as a hang (the realistic waits add seconds, not minutes)."""


def _files(turn: int) -> list[dict[str, Any]]:
    return [{"name": f"turn{turn}-{n}.txt", "size": 256, "seed": n} for n in (1, 2)]


async def _timed(coro: Any) -> tuple[SessionResult | None, float]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(TURN_LIMIT):
            result = await coro
    except TimeoutError:
        return None, time.monotonic() - started
    return result, time.monotonic() - started


async def _session_with_follow_up(block: str, out: Path) -> list[tuple[SessionResult | None, float]]:
    first = await _timed(
        arun_agent_session(block, scenario(outputs=_files(1), reply="one"), output_dir=str(out / "turn1"))
    )
    if first[0] is None:
        return [first]
    second = await _timed(
        acontinue_agent_session(
            block,
            first[0].session_id,
            scenario(outputs=_files(2), reply="two"),
            output_dir=str(out / "turn2"),
        )
    )
    return [first, second]


async def _campaign(block: str, out: Path) -> list[list[tuple[SessionResult | None, float]]]:
    return list(
        await asyncio.gather(*(_session_with_follow_up(block, out / f"s{i}") for i in range(SESSIONS)))
    )


def _block_on(server: EmulatorServer) -> tuple[str, RemoteAgent]:
    with sdk_client(server.url) as sdk:
        remote = create_remote_agent(sdk)
    return save_agent_block(remote, server.url, TEST_API_KEY, verbosity="summary"), remote


@pytest.mark.parametrize("emulator_config", [EmulatorConfig.profile("realistic")])
async def test_sessions_with_follow_ups_under_the_full_realistic_profile(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in RUNTIME_TIMING:
        monkeypatch.delenv(name, raising=False)  # the runtime's own defaults, made for the real API
    block, remote = _block_on(emulator)
    started = time.monotonic()
    runs = await _campaign(block, tmp_path / "realistic")
    realistic_wall = time.monotonic() - started

    with EmulatorServer(EmulatorConfig()) as instant:
        # The ideal service answers at once and indexes at once: nothing to wait for.
        monkeypatch.setenv("MANAGED_AGENTS_OUTPUT_INDEXING_WINDOW", "0")
        instant_block, _ = _block_on(instant)
        instant_runs = await _campaign(instant_block, tmp_path / "instant")

    turns = [turn for session in runs for turn in session]
    hangs = sum(1 for result, _ in turns if result is None)
    missed = collected_twice = 0
    for session in runs:
        seen_ids: set[str] = set()
        for number, (result, _) in enumerate(session, start=1):
            if result is None:
                continue
            names = sorted(f.filename for f in result.output_files)
            expected = sorted(f["name"] for f in _files(number))
            missed += len(set(expected) - set(names))
            ids = {f.file_id for f in result.output_files}
            collected_twice += len(ids & seen_ids) + (len(names) - len(set(names)))
            collected_twice += len(set(names) - set(expected))  # another turn's file
            seen_ids |= ids
    with sdk_client(emulator.url) as sdk:
        sessions = list(sdk.beta.sessions.list(agent_id=remote.agent_id, limit=100, include_archived=True))
        prompts = sum(
            len(list(settled(sdk).beta.sessions.events.list(s.id, limit=1000, types=["user.message"])))
            for s in sessions
        )
    late = sum(1 for result, _ in turns if result for f in result.output_files if f.arrived_late)
    realistic_turn = sum(wall for _, wall in turns) / len(turns)
    instant_turns = [turn for session in instant_runs for turn in session]
    instant_turn = sum(wall for _, wall in instant_turns) / len(instant_turns)
    line = record(
        "realistic profile",
        sessions_with_follow_ups=SESSIONS,
        turns=len(turns),
        hangs=hangs,
        missed_outputs=missed,
        outputs_collected_twice=collected_twice,
        extra_sessions=len(sessions) - SESSIONS,
        prompts_sent=prompts,
        outputs_indexed_late=late,
        seconds_per_turn=realistic_turn,
        seconds_per_turn_instant=instant_turn,
        extra_wall_per_turn_vs_instant_profile_s=realistic_turn - instant_turn,
        wall_s=realistic_wall,
    )
    assert os.environ.get("MANAGED_AGENTS_STATUS_POLL_INTERVAL") is None
    assert (hangs, missed, collected_twice, len(sessions)) == (0, 0, 0, SESSIONS), line
    assert prompts == 2 * SESSIONS, line
    assert all(result is not None for session in instant_runs for result, _ in session), line
