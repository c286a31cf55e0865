"""Every way a session runs goes through one pipeline, so each gets every feature.

One turn asks for all of them at once: a custom tool call, an outcome graded by a rubric, an
output file, and memory written to an attached read-write store. The single-session flow, a
batch item as a flow run and as a task run, and ``ManagedAgent.trigger()`` must each report
the tool's answer, the outcome's grade, the downloaded file and the memory change; the
follow-up flow must report the same for a session's next turn (its stores were attached by the
first turn, so it has no memory audit of its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import anthropic
import pytest

from blocks.agent import ManagedAgent, ManagedAgentSessionRun
from emulator import EmulatorServer
from flows.batch import arun_agent_batch
from flows.follow_up import continue_agent_session
from flows.session import run_agent_session
from managed_agents_core.batch_items import BatchItem, BatchResult
from managed_agents_core.custom_tools import custom_tool
from managed_agents_core.inputs import MemoryStoreAttachment
from managed_agents_core.outcome_spec import OutcomeSpec
from managed_agents_core.results import SessionResult
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario

pytestmark = pytest.mark.usefixtures("prefect_harness")


@custom_tool
def entry_point_lookup(id: str) -> str:
    """Look up a record by id.

    Args:
        id: The record's id.
    """
    return f"{id} is filed"


EVERYTHING = OutcomeSpec(
    description=scenario(
        custom_tools=[{"name": "entry_point_lookup", "input": {"id": "R-7"}}],
        outputs=[{"name": "findings.csv", "size": 64}],
        report=True,
        memory=True,
        outcome={"iterations": 1, "result": "satisfied"},
    ),
    rubric="- names the record",
    max_iterations=3,
)


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


@pytest.fixture
def store(client: anthropic.Anthropic) -> MemoryStoreAttachment:
    created = client.beta.memory_stores.create(name="entry-point-notes")
    return MemoryStoreAttachment(store=created.id, access="read_write")


def assert_every_feature(result: SessionResult, output_dir: Path, *, memory: bool = True) -> None:
    assert result.stop_reason == "end_turn"
    assert "entry_point_lookup returned: R-7 is filed" in result.final_message  # the custom tool ran
    assert [e.result for e in result.outcome_evaluations] == ["satisfied"]  # the outcome was graded
    written = {f.filename: f for f in result.output_files}
    assert "findings.csv" in written and (output_dir / "findings.csv").stat().st_size == 64
    if memory:  # what the session wrote to its store, read from the store's version history
        paths = {c.path for c in result.memory_changes}
        assert paths and all(p.startswith(f"/sessions/{result.session_id}/") for p in paths), paths


def test_the_single_session_flow(agent_name: str, store: MemoryStoreAttachment, tmp_outputs: Path) -> None:
    result = run_agent_session(
        agent_name,
        "Work towards the outcome.",
        memory_stores=[store],
        output_dir=str(tmp_outputs),
        custom_tools=["entry_point_lookup"],
        outcome=EVERYTHING,
    )
    assert_every_feature(result, tmp_outputs)


def test_the_follow_up_flow(agent_name: str, tmp_outputs: Path, tmp_path: Path) -> None:
    first = run_agent_session(agent_name, scenario(reply="first turn"), output_dir=str(tmp_outputs))
    later = tmp_path / "later"
    result = continue_agent_session(
        agent_name,
        first.session_id,
        "Now work towards the outcome.",
        output_dir=str(later),
        custom_tools=["entry_point_lookup"],
        outcome=EVERYTHING,
    )
    assert result.session_id == first.session_id
    assert_every_feature(result, later, memory=False)


@pytest.mark.parametrize("item_runs", ["flow", "task"])
async def test_a_batch_item(
    agent_name: str, store: MemoryStoreAttachment, tmp_path: Path, item_runs: str
) -> None:
    out = tmp_path / "out"
    item = BatchItem(
        key="everything", prompt="Work towards the outcome.", memory_stores=[store], outcome=EVERYTHING
    )
    state = await arun_agent_batch(
        agent=agent_name,
        items=[item],
        output_dir=str(out),
        custom_tools=["entry_point_lookup"],
        item_runs=item_runs,
        concurrency_limit_name=f"entry-points-{item_runs}",
        return_state=True,
    )
    batch = await state.aresult(raise_on_failure=False)
    assert isinstance(batch, BatchResult)
    (only,) = batch.items
    assert only.state == "completed", (only.error_type, only.error)
    assert only.result is not None
    assert_every_feature(only.result, out / "everything")


async def test_trigger(agent_name: str, store: MemoryStoreAttachment, tmp_outputs: Path) -> None:
    block = cast(ManagedAgent, await ManagedAgent.aload(agent_name))
    run = await block.atrigger(
        "Work towards the outcome.",
        memory_stores=[store],
        output_dir=str(tmp_outputs),
        custom_tools=[entry_point_lookup],
        outcome=EVERYTHING,
    )
    assert isinstance(run, ManagedAgentSessionRun)
    result: Any = await run.afetch_result()
    assert_every_feature(result, tmp_outputs)
    assert run.memory_changes == result.memory_changes
