"""A batch under a storm of 429/500/529 answers (and creates committed but never answered).

The campaign form of the 20%-failure checks in ``tests/integration``: a whole batch (50 sessions
in the long form), with the counts reported.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import anthropic
import pytest

from emulator import EmulatorServer
from flows.batch import arun_agent_batch
from managed_agents_core.batch_items import BatchItem, BatchResult
from managed_agents_core.keys import CREATE_TOKEN_KEY, TASK_RUN_KEY
from tests.integration.session_helpers import scenario

from .campaign import record, sized

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("prefect_harness")]

SESSIONS = sized(12, 50)
FAIL_RATE = 0.2
COMMIT_THEN_DROP = 3
"""Session creates the emulator commits but answers by dropping the connection."""


@pytest.mark.parametrize("item_runs", ["flow", "task"])
async def test_batch_completes_every_session_once_with_20_percent_of_requests_failing(
    emulator: EmulatorServer, client: anthropic.Anthropic, agent_block: str, tmp_path: Path, item_runs: str
) -> None:
    items = [
        BatchItem(
            prompt=scenario(reply=f"item {i}", outputs=[{"name": f"out-{i}.txt", "size": 512, "seed": i}]),
            key=f"item-{i}",
        )
        for i in range(SESSIONS)
    ]
    emulator.control.clear_requests()
    emulator.control.set_faults(
        seed=1234,
        fail_rate=FAIL_RATE,
        fail_statuses=[429, 500, 529],
        commit_then_drop=["POST /v1/sessions"],
        commit_then_drop_times=COMMIT_THEN_DROP,
    )
    started = time.monotonic()
    try:
        state = await arun_agent_batch(
            agent=agent_block,
            items=items,
            max_concurrency=10,
            output_dir=str(tmp_path / "out"),
            concurrency_limit_name=f"campaign-{uuid.uuid4().hex[:8]}",
            item_runs=item_runs,
            return_state=True,
        )
    finally:
        emulator.control.set_faults()
    elapsed = time.monotonic() - started
    result = await state.aresult(raise_on_failure=False)
    assert isinstance(result, BatchResult)

    requests = emulator.control.requests()
    injected = Counter(str(r["injected"]) for r in requests if r.get("injected"))
    sessions = list(client.beta.sessions.list(limit=100))
    # Sessions are titled "<batch run>-<item key>" whether the item ran as a flow or a task run.
    per_item = Counter(s.title for s in sessions)
    duplicates = sum(n - 1 for n in per_item.values() if n > 1)
    outputs = sorted(p.name for p in (tmp_path / "out").rglob("out-*.txt"))
    line = record(
        f"{FAIL_RATE:.0%} of requests failing, {SESSIONS}-session batch, items as {item_runs} runs",
        completed=f"{len(result.completed)}/{SESSIONS}",
        sessions_created=len(sessions),
        duplicate_sessions=duplicates,
        requests=len(requests),
        injected_errors=sum(v for k, v in injected.items() if k.startswith("error")),
        committed_then_dropped=sum(v for k, v in injected.items() if "drop" in k and "stream" not in k),
        outputs=len(outputs),
        seconds=round(elapsed, 1),
    )
    doubled = [r for r, n in per_item.items() if n > 1]
    detail = [
        (s.id, (s.metadata or {}).get(TASK_RUN_KEY), (s.metadata or {}).get(CREATE_TOKEN_KEY))
        for s in sessions
        if s.title in doubled
    ]
    line += f"; duplicated (session, task run, create token): {detail}" if detail else ""
    assert [i.key for i in result.failed] == [], f"{line}; errors: {[i.error for i in result.failed]}"
    assert len(result.completed) == SESSIONS, line
    assert len(sessions) == SESSIONS and duplicates == 0, line
    assert len(outputs) == SESSIONS, line
    assert sum(injected.values()) >= SESSIONS, f"the storm was too weak to prove anything: {line}"
