"""Streams cut every k events over long sessions: nothing lost, nothing handled twice.

The campaign form of ``tests/integration/test_session_stream.py``'s drop-every-25 check: many
values of k, longer sessions, and the figures reported.
"""

from __future__ import annotations

import anthropic
import pytest

from emulator import EmulatorServer
from managed_agents_core.session_stream import SessionStream
from managed_agents_core.turn import TurnRequest
from tests.integration.session_helpers import RemoteAgent, history_ids, message, scenario

from .campaign import record, sized

pytestmark = pytest.mark.reliability

EVENTS = sized(1500, 20_000)
DROP_EVERY = sized([7, 25, 101], [3, 7, 13, 25, 50, 101, 250, 1000])


@pytest.mark.parametrize("k", DROP_EVERY, ids=lambda k: f"k{k}")
async def test_stream_dropped_every_k_events_loses_and_duplicates_nothing(
    k: int,
    emulator: EmulatorServer,
    client: anthropic.Anthropic,
    async_client: anthropic.AsyncAnthropic,
    remote_agent: RemoteAgent,
) -> None:
    session_id = client.beta.sessions.create(
        agent=remote_agent.reference(),  # type: ignore[arg-type]
        environment_id=remote_agent.environment_id,
    ).id
    emulator.control.set_faults(drop_stream_after_events=k)
    engine = SessionStream(
        async_client,
        session_id,
        # A small delay keeps events arriving while we read, so cuts land mid-turn.
        TurnRequest(
            kickoff=[message(scenario(stream={"count": EVENTS, "delay": 0.001}, reply="campaign done"))]
        ),
    )
    end = await engine.run()
    emulator.control.set_faults()

    history = history_ids(client, session_id)
    seen = engine.transcript.event_ids
    lost = len(set(history) - set(seen))
    duplicated = len(seen) - len(set(seen))
    drops = sum(1 for r in emulator.control.requests() if r.get("injected") == "drop_stream")
    line = record(
        f"dropped streams k={k}",
        events=len(history),
        stream_cuts=drops,
        reconnects=engine.stats.reconnects,
        history_reads=engine.stats.history_reads,
        history_events_read=engine.stats.history_events_read,
        lost=lost,
        duplicated=duplicated,
    )
    assert end.kind == "idle" and end.stop_reason == "end_turn", line
    assert lost == 0 and duplicated == 0, line
    assert set(seen) == set(history), line
    assert engine.transcript.final_message == "campaign done", line
    assert drops >= 1, f"the stream was never cut: {line}"
    # A reconnect reads the gap since the last event handled, not the whole history again.
    assert engine.stats.history_events_read <= 2 * len(history) + 2 * engine.stats.history_reads, line
