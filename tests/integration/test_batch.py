"""run_agent_batch against the emulator and a real local Prefect server.

Covers: a failing item does not fail the others; the spend limit stops new sessions at the
ceiling (also counting sessions still running); the global concurrency limit is created and
shared; and a 200-item batch in one flow run (outputs per item, usage totals equal the sum).
"""

from __future__ import annotations

import json
import resource
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterTaskRunId,
)
from prefect.client.schemas.sorting import ArtifactSort

import flows.batch
from blocks.agent import ManagedAgent
from emulator import EmulatorServer
from flows.batch import BATCH_TABLE_KEY, arun_agent_batch, ensure_global_limit, item_run_url, read_child_runs
from flows.session import arun_agent_session
from managed_agents_core.batch_items import BatchFailedError, BatchItem, BatchResult
from managed_agents_core.keys import BATCH_ITEM_KEY, FLOW_RUN_KEY, TASK_RUN_KEY
from managed_agents_core.report import report_key
from managed_agents_core.turn import ConfirmationPolicy
from tests.conftest import TEST_API_KEY, sdk_client
from tests.integration.session_helpers import (
    agent_block,
    create_remote_agent,
    scenario,
    settled,
    wait_for_event,
    wait_for_log,
    wait_for_task_run,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with sdk_client(emulator.url) as c:
        yield c


@pytest.fixture
def agent(emulator: EmulatorServer, sdk: anthropic.Anthropic) -> ManagedAgent:
    return agent_block(create_remote_agent(sdk), emulator.url, TEST_API_KEY, agent_name="batch-test")


def limit_name() -> str:
    """A limit of its own per test, so tests never share slots."""
    return f"batch-test-{uuid.uuid4().hex[:8]}"


def created_sessions(emulator: EmulatorServer) -> int:
    return sum(
        1 for r in emulator.control.requests() if r["method"] == "POST" and r["path"] == "/v1/sessions"
    )


async def run_batch(**kwargs: Any) -> tuple[Any, BatchResult]:
    state = await arun_agent_batch(return_state=True, **kwargs)
    result = await state.aresult(raise_on_failure=False)
    if isinstance(result, BatchFailedError):  # every started item failed
        result = result.result
    assert isinstance(result, BatchResult)
    return state, result


ITEM_RUNS = pytest.mark.parametrize("item_runs", ["flow", "task"])


async def test_item_flow_runs_get_the_block_the_batch_loaded_and_publish_one_artifact(
    agent: ManagedAgent, tmp_path: Path
) -> None:
    name = f"batch-block-{uuid.uuid4().hex[:8]}"
    await agent.asave(name)

    state, result = await run_batch(
        agent=name,
        items=[BatchItem(key="a", prompt=scenario()), BatchItem(key="b", prompt=scenario())],
        max_concurrency=2,
        output_dir=str(tmp_path / "out"),
        concurrency_limit_name=limit_name(),
        item_runs="flow",
    )

    assert len(result.completed) == 2
    children = await read_child_runs(state.state_details.flow_run_id)
    assert len(children) == 2
    async with get_client() as prefect:
        # Each lane names its own item run (both lanes start theirs at once).
        batch_run = await prefect.read_flow_run(state.state_details.flow_run_id)
        assert sorted(c.name for c in children) == [f"{batch_run.name}-a", f"{batch_run.name}-b"]
        for child in children:
            # The batch's own copy of the block, not its name: an item run reads no block, and
            # a deploy that moves the block's pin during the batch does not reach its items.
            block = child.parameters["agent"]
            assert isinstance(block, dict), block
            assert block["_block_document_name"] == name and block["version"] == agent.version
            # One artifact per item run, its report: no progress bar (the batch shows progress).
            artifacts = await prefect.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[child.id]))
            )
            assert [a.key for a in artifacts] == [report_key(agent.agent_name)]


@ITEM_RUNS
async def test_one_failing_item_does_not_fail_the_others(
    agent: ManagedAgent, emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path, item_runs: str
) -> None:
    data = tmp_path / "in.txt"
    data.write_text("alpha beta\ngamma\n")
    out = tmp_path / "out"
    items = [
        BatchItem(key="first", prompt=scenario(outputs=[{"name": "a.txt", "size": 10}]), metadata={"n": "1"}),
        BatchItem(key="broken", prompt=scenario(stop="retries_exhausted")),
        BatchItem(key="third", prompt="Report on the file.", files=[str(data)]),
    ]
    name = limit_name()

    state, result = await run_batch(
        agent=agent,
        items=items,
        max_concurrency=3,
        output_dir=str(out),
        concurrency_limit_name=name,
        item_runs=item_runs,
    )

    assert state.is_completed()
    assert state.message == f"3 items: 2 completed, 1 failed, list cost ${result.total_cost_usd:.2f}"
    assert [i.state for i in result.items] == ["completed", "failed", "completed"]
    broken = result.items[1]
    assert broken.error_type == "SessionRetriesExhaustedError" and broken.session_id
    assert broken.cost_usd is not None
    assert settled(sdk).beta.sessions.retrieve(broken.session_id).status == "idle"
    first, third = result.items[0], result.items[2]
    assert first.metadata == {"n": "1"} and first.result is not None and third.result is not None
    assert (out / "first" / "a.txt").stat().st_size == 10
    report = (out / "third" / "report.md").read_text()
    assert "in.txt" in report
    assert result.total_cost_usd == first.cost_usd + third.cost_usd + broken.cost_usd  # type: ignore[operator]

    batch_run_id = state.state_details.flow_run_id
    children = {str(c.id): c for c in await read_child_runs(batch_run_id)}
    if item_runs == "flow":
        # Every item's session names its own item flow run, a child of the batch run.
        for item in result.items:
            assert item.flow_run_id in children and item.task_run_id is None
            session = settled(sdk).beta.sessions.retrieve(str(item.session_id))
            assert session.metadata[FLOW_RUN_KEY] == item.flow_run_id
            assert children[str(item.flow_run_id)].name.endswith(f"-{item.key}")
    else:
        # No item flow runs: every item is a task run "item-<key>" of the batch run, named in
        # its session's metadata next to the batch run.
        assert children == {}
        async with get_client() as prefect:
            for item in result.items:
                assert item.flow_run_id is None and item.task_run_id
                task_run = await wait_for_task_run(item.task_run_id)
                assert task_run.name == f"item-{item.key}" and task_run.flow_run_id == batch_run_id
                session = settled(sdk).beta.sessions.retrieve(str(item.session_id))
                assert session.metadata[FLOW_RUN_KEY] == str(batch_run_id)
                assert session.metadata[TASK_RUN_KEY] == item.task_run_id
                assert session.metadata[BATCH_ITEM_KEY] == item.key
                # Each item keeps its own report, on its task run (a failed one says so).
                [report] = await prefect.read_artifacts(
                    artifact_filter=ArtifactFilter(task_run_id=ArtifactFilterTaskRunId(any_=[task_run.id]))
                )
                headline = (
                    "Completed" if item.state == "completed" else "Failed: SessionRetriesExhaustedError"
                )
                assert report.key == report_key(agent.agent_name)
                assert str(report.data).startswith(f"# {agent.agent_name}: {headline}\n")

    async with get_client() as prefect:
        limit = await prefect.read_global_concurrency_limit_by_name(name)
        # This batch run's newest table: the test server is shared with the other tests of this
        # pytest worker, whose artifacts would crowd an unfiltered "latest per key" page.
        [table] = await prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[BATCH_TABLE_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[batch_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert limit.limit == 3 and limit.active_slots == 0
    # The batch report: totals, and per item a link to its run and one to its session.
    report = str(table.data)
    assert report.startswith(
        f"# Batch: 3 items: 2 completed, 1 failed, list cost ${result.total_cost_usd:.2f}\n"
    )
    for item in result.items:
        assert f"| [{item.key}]({item_run_url(item)}) | {item.state}" in report
        assert f" | [{item.session_id}](" in report
    assert "| failed | " in report and "| SessionRetriesExhaustedError: " in report
    assert "| completed, 1 file(s) | " in report  # the first item's output
    assert f"| {first.result.stop_reason} | " in report
    # The warning names the item's run and links its session.
    warning = await wait_for_log(batch_run_id, "Item broken failed (attempt 1) in ")
    run = (
        f"flow run '{children[str(broken.flow_run_id)].name}'"
        if item_runs == "flow"
        else "task run 'item-broken'"
    )
    assert f"in {run}: SessionRetriesExhaustedError" in warning and str(broken.session_id) in warning
    # One batch-level event with the totals, for Automations; the agent is a related resource.
    event = await wait_for_event("managed-agents.batch.completed", f"managed-agents.batch.{batch_run_id}")
    assert event.payload["items"] == 3 and event.payload["completed"] == 2 and event.payload["failed"] == 1
    assert event.payload["cost_usd"] == str(result.total_cost_usd)
    assert event.payload["output_tokens"] == result.usage.output_tokens > 0
    assert ("agent", f"managed-agents.agent.{agent.agent_id}") in {(r.role, r.id) for r in event.related}


@ITEM_RUNS
async def test_a_batch_whose_every_item_failed_raises_a_typed_error_with_the_result(
    agent: ManagedAgent, tmp_path: Path, item_runs: str
) -> None:
    items = [BatchItem(prompt=scenario(stop="retries_exhausted")) for _ in range(2)]
    with pytest.raises(BatchFailedError, match="2 items: 0 completed, 2 failed") as raised:
        await arun_agent_batch(
            agent=agent,
            items=items,
            output_dir=str(tmp_path),
            concurrency_limit_name=limit_name(),
            item_runs=item_runs,
        )
    assert [i.error_type for i in raised.value.result.items] == ["SessionRetriesExhaustedError"] * 2


def most_sessions_at_once(sdk: anthropic.Anthropic, session_ids: list[str]) -> int:
    """The most sessions that were between their creation and their final idle at one time
    (the service's own clock)."""
    marks: list[tuple[Any, int]] = []
    for session_id in session_ids:
        created = settled(sdk).beta.sessions.retrieve(session_id).created_at
        idle = [e for e in sdk.beta.sessions.events.list(session_id) if e.type == "session.status_idle"]
        marks += [(created, 1), (idle[-1].processed_at, -1)]
    running = most = 0
    for _, step in sorted(marks, key=lambda mark: (mark[0], mark[1])):  # an end before a start
        running += step
        most = max(most, running)
    return most


async def test_a_limit_other_work_shares_caps_the_batch_at_its_free_slots(
    agent: ManagedAgent, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    """A limit smaller than the batch's lanes (a quota several teams share): the batch cannot
    take every lane's slot at once, so its lanes wait for slots one by one, and no more sessions
    run at once than the limit allows."""
    name = limit_name()
    await ensure_global_limit(name, 2)
    items = [BatchItem(prompt=scenario(thinking=False, delay=0.3, reply=f"r{i}")) for i in range(5)]

    state, result = await run_batch(
        agent=agent, items=items, max_concurrency=4, output_dir=str(tmp_path), concurrency_limit_name=name
    )

    assert state.is_completed() and [i.state for i in result.items] == ["completed"] * 5
    assert 1 <= most_sessions_at_once(sdk, [str(i.session_id) for i in result.items]) <= 2
    async with get_client() as prefect:
        limit = await prefect.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.active_slots) == (2, 0)


@ITEM_RUNS
async def test_spend_limit_stops_new_sessions_at_the_ceiling(
    agent: ManagedAgent, emulator: EmulatorServer, tmp_path: Path, item_runs: str
) -> None:
    # Each session costs 5 cents; one at a time, the third start sees 0.10 < 0.12 and the
    # fourth sees 0.15 >= 0.12.
    items = [BatchItem(prompt=scenario(cost=5, thinking=False, reply=f"r{i}")) for i in range(6)]
    emulator.control.clear_requests()

    state, result = await run_batch(
        agent=agent,
        items=items,
        max_concurrency=1,
        spend_limit_usd=Decimal("0.12"),
        output_dir=str(tmp_path),
        concurrency_limit_name=limit_name(),
        item_runs=item_runs,
    )

    assert [i.state for i in result.items] == ["completed"] * 3 + ["not_started"] * 3
    assert [i.key for i in result.not_started] == ["item-0004", "item-0005", "item-0006"]
    assert result.spend_limit_reached and result.total_cost_usd == Decimal("0.15")
    assert result.usage.cost_usd == Decimal("0.15")
    assert created_sessions(emulator) == 3
    assert state.is_completed()
    assert "3 not started (spend limit 0.12 USD reached)" in str(state.message)


@ITEM_RUNS
async def test_spend_limit_counts_the_cost_of_running_sessions(
    agent: ManagedAgent, emulator: EmulatorServer, tmp_path: Path, item_runs: str
) -> None:
    # "slow" pays 6 cents early (its first model request ends before it waits for a tool
    # confirmation) and keeps running for several seconds; "quick" finishes first with 5 cents.
    # When "quick" frees its slot, finished (0.05) + running (0.06) >= 0.10, so "late" must not
    # start, although the finished sessions alone are below the ceiling.
    items = [
        BatchItem(
            key="slow",
            prompt=scenario(tools=[{"name": "bash", "permission": "always_ask"}], cost=6, delay=1.5),
        ),
        BatchItem(key="quick", prompt=scenario(cost=5, delay=2.0)),
        BatchItem(key="late", prompt=scenario(cost=1)),
    ]
    emulator.control.clear_requests()

    _, result = await run_batch(
        agent=agent,
        items=items,
        max_concurrency=2,
        spend_limit_usd=Decimal("0.10"),
        output_dir=str(tmp_path),
        concurrency_limit_name=limit_name(),
        confirmation_policy=ConfirmationPolicy(allow_tools=["bash"]),
        item_runs=item_runs,
    )

    assert {i.key: i.state for i in result.items} == {
        "slow": "completed",
        "quick": "completed",
        "late": "not_started",
    }
    assert {i.key: i.cost_usd for i in result.completed} == {
        "slow": Decimal("0.12"),
        "quick": Decimal("0.05"),
    }
    assert created_sessions(emulator) == 2


async def test_batch_from_a_jsonl_file(agent: ManagedAgent, tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("one two three\n")
    path = tmp_path / "items.jsonl"
    path.write_text(
        json.dumps(
            {"key": "doc", "prompt": "Describe the file.", "files": ["doc.txt"], "metadata": {"id": 7}}
        )
        + "\n"
    )
    _, result = await run_batch(
        agent=agent, items=str(path), output_dir=str(tmp_path / "out"), concurrency_limit_name=limit_name()
    )  # the default mode: task runs (auto, no policy that asks)
    assert [(i.key, i.state, i.metadata) for i in result.items] == [("doc", "completed", {"id": "7"})]
    assert "doc.txt" in (tmp_path / "out" / "doc" / "report.md").read_text()


@pytest.mark.timeout(900)
@pytest.mark.batch200
@ITEM_RUNS
async def test_two_hundred_items_in_one_flow_run(
    agent: ManagedAgent,
    emulator: EmulatorServer,
    tmp_path: Path,
    record_property: Any,
    item_runs: str,
) -> None:
    count = 200
    items = [
        BatchItem(
            prompt=scenario(
                thinking=False, cost=1 + i % 3, outputs=[{"name": "result.bin", "size": 256 + i, "seed": i}]
            ),
            metadata={"index": str(i)},
        )
        for i in range(count)
    ]
    out = tmp_path / "out"
    started = time.monotonic()

    state, result = await run_batch(
        agent=agent,
        items=items,
        max_concurrency=4,
        output_dir=str(out),
        concurrency_limit_name=limit_name(),
        item_runs=item_runs,
    )

    wall = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record_property(
        "figures",
        f"200-item batch, items as {item_runs} runs: wall {wall:.1f} s, "
        f"peak RSS of the test process {peak_mib:.0f} MiB",
    )
    assert state.is_completed(), state.message
    assert len(result.completed) == count, [i.error for i in result.failed][:3]
    sizes = {}
    for item in result.items:
        assert item.result is not None
        assert len(item.result.output_files) == 1, _outputs_seen(emulator, item.result.session_id)
        (output,) = item.result.output_files
        assert Path(output.path) == out / item.key / "result.bin"
        sizes[item.key] = output.size_bytes
    on_disk = {p.parent.name: p.stat().st_size for p in out.glob("*/result.bin")}
    assert on_disk == sizes == {item.key: 256 + index for index, item in enumerate(result.items)}
    usages = [i.result.usage for i in result.items if i.result]
    assert result.usage.input_tokens == sum(u.input_tokens for u in usages) > 0
    assert result.usage.output_tokens == sum(u.output_tokens for u in usages) > 0
    assert result.usage.cost_usd == sum((u.cost_usd for u in usages if u.cost_usd), Decimal(0))
    assert result.usage.cost_usd == Decimal(sum(1 + i % 3 for i in range(count))) / 100
    assert len({i.session_id for i in result.items}) == count


def _outputs_seen(emulator: EmulatorServer, session_id: str) -> str:
    """What the emulator holds and was asked about a session's outputs (for a failure message)."""
    files = [
        {k: meta.get(k) for k in ("id", "filename", "created_at", "_listable_after", "_indexing_pending")}
        for meta in emulator.app.state.emulator.store.files.values()
        if (meta.get("scope") or {}).get("id") == session_id
    ]
    lists = [
        (r["query"], r["status"])
        for r in emulator.control.requests()
        if r["path"] == "/v1/files" and session_id in r["query"]
    ]
    return f"session {session_id}: files {files}; its listings (query, status) {lists}"


class _OutageThenReal:
    """Stands in for ``arun_agent_session`` in ``flows.batch``: a Prefect API 503 around a real run.

    A 503 from an overloaded Prefect server cannot be produced on demand (the test server is
    real but not overloaded), so the failure is raised here; the session runs stay real.
    """

    def __init__(
        self, *, fail_before: int = 0, fail_after: int = 0, archive: anthropic.Anthropic | None = None
    ):
        self.fail_before = fail_before
        self.fail_after = fail_after
        self.archive = archive  # archive the session before the outage (as a crash hook would)
        self.calls: list[dict[str, Any]] = []

    @staticmethod
    def outage() -> httpx.HTTPStatusError:
        request = httpx.Request("POST", "http://127.0.0.1/api/task_runs/")
        return httpx.HTTPStatusError("503", request=request, response=httpx.Response(503, request=request))

    def with_options(self, **options: Any) -> Any:
        real = arun_agent_session.with_options(**options)

        async def call(**kwargs: Any) -> Any:
            self.calls.append(kwargs)
            if len(self.calls) <= self.fail_before:
                raise self.outage()
            state = await real(**kwargs)
            if len(self.calls) <= self.fail_after:
                if self.archive is not None:
                    self.archive.beta.sessions.archive((await state.aresult()).session_id)
                raise self.outage()
            return state

        return call


async def run_one(tmp_path: Path, agent: ManagedAgent, stand_in: _OutageThenReal, reply: str) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flows.batch, "arun_agent_session", stand_in)
        _, result = await run_batch(
            agent=agent,
            items=[scenario(reply=reply, outputs=[{"name": "o.txt", "size": 7}])],
            output_dir=str(tmp_path / reply),
            concurrency_limit_name=limit_name(),
            item_runs="flow",
        )
    (item,) = result.items
    return item


async def test_prefect_outage_before_a_session_is_retried_with_a_new_one(
    agent: ManagedAgent, emulator: EmulatorServer, tmp_path: Path
) -> None:
    before = _OutageThenReal(fail_before=1)
    emulator.control.clear_requests()
    item = await run_one(tmp_path, agent, before, "a")
    assert (item.state, item.attempts, len(before.calls)) == ("completed", 2, 2)
    assert [c["session_id"] for c in before.calls] == [None, None]
    assert created_sessions(emulator) == 1


async def test_prefect_outage_after_the_session_started_re_attaches_to_it(
    agent: ManagedAgent, emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    after = _OutageThenReal(fail_after=1)
    emulator.control.clear_requests()
    item = await run_one(tmp_path, agent, after, "b")
    assert (item.state, item.attempts, len(after.calls)) == ("completed", 2, 2)
    assert created_sessions(emulator) == 1  # the second attempt took over the first one's session
    assert after.calls[1]["session_id"] == item.session_id
    assert item.result is not None and item.result.final_message.startswith("b")
    assert (tmp_path / "b" / item.key / "o.txt").stat().st_size == 7
    sent = list(settled(sdk).beta.sessions.events.list(item.session_id, types=["user.message"]))
    assert len(sent) == 1  # the prompt was not sent again


async def test_prefect_outage_after_a_crash_hook_archived_the_session_starts_a_new_one(
    agent: ManagedAgent, emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    archived = _OutageThenReal(fail_after=1, archive=sdk)
    emulator.control.clear_requests()
    item = await run_one(tmp_path, agent, archived, "c")
    assert (item.state, item.attempts) == ("completed", 2)
    assert archived.calls[1]["session_id"] is None  # an archived session cannot be taken over
    assert created_sessions(emulator) == 2
