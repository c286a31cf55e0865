"""run_agent_session end to end: emulator + real local Prefect server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from emulator import EmulatorServer
from flows.session import arun_agent_session, run_agent_session
from managed_agents_core.exceptions import (
    SessionBudgetReachedError,
    SessionError,
    SessionRefusedError,
    SessionRequiresActionError,
    SessionRetriesExhaustedError,
    SessionTerminatedError,
    SessionTimeoutError,
)
from managed_agents_core.inputs import MemoryStoreAttachment
from managed_agents_core.keys import FLOW_RUN_KEY
from managed_agents_core.report import report_key
from managed_agents_core.results import SessionResult
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import (
    create_remote_agent,
    save_agent_block,
    scenario,
    session_creates,
    settled,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


def _downloaded(client: anthropic.Anthropic, file_id: str) -> bytes:
    return client.beta.files.download(file_id).read()


def test_end_to_end_with_files_and_memory_store(
    agent_name: str, client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path, tmp_outputs: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nhello world\n")
    store = client.beta.memory_stores.create(name=f"e2e-store-{time.monotonic_ns()}")

    state = run_agent_session(
        agent_name,
        "Summarise the files you were given.",
        files=[str(data), str(notes)],
        memory_stores=[MemoryStoreAttachment(store=store.name, instructions="Keep notes here.")],
        output_dir=str(tmp_outputs),
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, SessionResult)
    assert (result.status, result.stop_reason) == ("idle", "end_turn")
    assert "Wrote report.md" in result.final_message
    assert result.usage.cost_usd is not None and result.usage.output_tokens > 0
    assert result.event_count > 5
    assert result.console_url.endswith(result.session_id)

    # Outputs are byte-identical to what the emulator wrote.
    remote = list(
        settled(client).beta.files.list(scope_id=result.session_id, betas=["managed-agents-2026-04-01"])
    )
    assert {f.filename for f in remote} >= {"report.md"}
    assert result.output_files, "no output collected"
    for out in result.output_files:
        assert Path(out.path).read_bytes() == _downloaded(client, out.file_id)
        assert Path(out.path).resolve().is_relative_to(tmp_outputs.resolve())
    report = next(o for o in result.output_files if o.filename == "report.md")
    assert "data.csv" in Path(report.path).read_text() and "notes.md" in Path(report.path).read_text()

    # The read_write memory store got the session's report; the session is pinned and labelled.
    memories = list(client.beta.memory_stores.memories.list(store.id))
    assert any(result.session_id in m.path for m in memories)
    session = settled(client).beta.sessions.retrieve(result.session_id)
    assert session.metadata[FLOW_RUN_KEY] == str(state.state_details.flow_run_id)
    assert session.agent.version == result.agent_version
    with get_client(sync_client=True) as prefect_client:
        flow_run = prefect_client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[arg-type]
    assert flow_run.tags == [f"session:{result.session_id}"]
    # The run is named by its agent and prompt, and that name is the session's title.
    assert flow_run.name == f"{agent_name}: Summarise the files you were given."
    assert session.title == flow_run.name
    # The state message carries the cost: the run page and an Automation see it.
    assert state.message == result.summary()
    assert state.message.startswith(f"idle (end_turn), {len(result.output_files)} output file(s), ")
    assert state.message.endswith(f"list cost ${result.usage.cost_usd:.2f}")

    # A second run with the same input files uploads nothing.
    emulator.control.clear_requests()
    again = run_agent_session(
        agent_name, "Again.", files=[str(data), str(notes)], output_dir=str(tmp_outputs / "2")
    )
    uploads = [r for r in emulator.control.requests() if r["method"] == "POST" and r["path"] == "/v1/files"]
    assert uploads == []
    assert again.stop_reason == "end_turn"


END_STATES: list[tuple[str, dict[str, Any], dict[str, Any], type[SessionError]]] = [
    ("retries_exhausted", {"stop": "retries_exhausted"}, {}, SessionRetriesExhaustedError),
    ("budget_reached", {"stop": "budget_reached"}, {}, SessionBudgetReachedError),
    ("refusal", {"stop": "refusal", "refusal_category": "bio"}, {}, SessionRefusedError),
    ("terminated", {"stop": "terminated"}, {}, SessionTerminatedError),
    (
        "requires_action",
        {"tools": [{"name": "bash", "permission": "always_ask"}]},
        {},
        SessionRequiresActionError,
    ),
    (
        "timeout",
        {"stream": {"count": 10000, "delay": 0.01}},
        {"max_duration_seconds": 1.0},
        SessionTimeoutError,
    ),
]


@pytest.mark.parametrize(("name", "keys", "options", "expected"), END_STATES, ids=[c[0] for c in END_STATES])
def test_each_end_state_fails_the_flow_with_its_typed_error(
    agent_name: str,
    tmp_outputs: Path,
    name: str,
    keys: dict[str, Any],
    options: dict[str, Any],
    expected: type[SessionError],
) -> None:
    state = run_agent_session(
        agent_name, scenario(**keys), output_dir=str(tmp_outputs), return_state=True, **options
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error) is expected
    assert isinstance(error, SessionError) and error.session_id.startswith("sesn_")
    assert error.console_url and error.session_id in error.console_url


def test_retrying_session_errors_are_warnings_and_the_run_completes(
    agent_name: str, tmp_outputs: Path
) -> None:
    result = run_agent_session(agent_name, scenario(retry=2, reply="recovered"), output_dir=str(tmp_outputs))
    assert result.final_message == "recovered"
    assert [e.retry_status for e in result.errors] == ["retrying", "retrying"]


def test_completes_with_20_percent_of_requests_failing_and_one_session_despite_commit_then_drop(
    agent_name: str, emulator: EmulatorServer, client: anthropic.Anthropic, tmp_path: Path, tmp_outputs: Path
) -> None:
    data = tmp_path / "input.txt"
    data.write_text("x" * 5000)
    emulator.control.clear_requests()
    emulator.control.set_faults(
        fail_rate=0.2, fail_statuses=[429, 500, 529], seed=11, commit_then_drop=["POST /v1/sessions"]
    )
    try:
        result = run_agent_session(
            agent_name,
            scenario(report=True, stream={"count": 100}, outputs=[{"name": "out.bin", "size": 100_000}]),
            files=[str(data)],
            output_dir=str(tmp_outputs),
        )
    finally:
        requests = emulator.control.requests()
        emulator.control.set_faults()
    assert result.stop_reason == "end_turn"
    injected = [r["injected"] for r in requests if r.get("injected")]
    assert any(i.startswith("error_") for i in injected) and "commit_then_drop" in ",".join(injected)
    sessions = list(
        client.beta.sessions.list(agent_id=settled(client).beta.sessions.retrieve(result.session_id).agent.id)
    )
    assert [s.id for s in sessions] == [result.session_id]
    out = next(o for o in result.output_files if o.filename == "out.bin")
    assert Path(out.path).read_bytes() == _downloaded(client, out.file_id)


def test_flow_retry_after_mid_stream_failure_reattaches_to_the_same_session(
    agent_name: str, emulator: EmulatorServer, tmp_outputs: Path
) -> None:
    """A non-retryable error mid-stream fails the attempt; the flow retry must re-attach.

    The stream is cut every 30 events and, once the session runs, reconnects are refused with
    403 (fatal: no task retry). A watcher lifts the fault once it was hit, so the flow's own
    retry (same flow run) finds the cached session and streams it to the end.
    """
    emulator.control.clear_requests()
    stop = threading.Event()

    def fault_then_heal() -> None:
        while not stop.is_set() and not any(
            r["method"] == "POST" and r["path"].endswith("/events") for r in emulator.control.requests()
        ):
            time.sleep(0.05)
        time.sleep(0.3)  # let the turn get going
        emulator.control.set_faults(
            drop_stream_after_events=30, fail_rate=1.0, fail_statuses=[403], fail_paths=["/events/stream"]
        )
        while not stop.is_set() and not any(
            r.get("injected") == "error_403" for r in emulator.control.requests()
        ):
            time.sleep(0.05)
        emulator.control.set_faults()

    emulator.control.set_faults(drop_stream_after_events=30)
    watcher = threading.Thread(target=fault_then_heal, daemon=True)
    watcher.start()
    try:
        state = run_agent_session.with_options(retries=1, retry_delay_seconds=1)(
            agent_name,
            scenario(stream={"count": 300, "delay": 0.01}, reply="finished after retry"),
            output_dir=str(tmp_outputs),
            return_state=True,
        )
    finally:
        stop.set()
        watcher.join(timeout=10)
        emulator.control.set_faults()
    requests = emulator.control.requests()
    assert any(r.get("injected") == "error_403" for r in requests), "the fault never hit"
    assert state.is_completed(), state.message
    assert state.result().final_message == "finished after retry"
    assert session_creates(requests) == 1
    kickoffs = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/events")]
    assert len(kickoffs) == 1


async def test_async_caller_awaits_the_async_flow(agent_name: str, tmp_outputs: Path) -> None:
    result = await arun_agent_session(agent_name, scenario(reply="async ok"), output_dir=str(tmp_outputs))
    assert result.final_message == "async ok"


def test_sync_caller_with_a_block_object_and_ui_artifacts_events_and_no_secret(
    agent_name: str, tmp_outputs: Path
) -> None:
    from blocks.agent import ManagedAgent

    block = ManagedAgent.load(agent_name)
    state = run_agent_session(
        block,
        scenario(
            tools=[{"name": "bash", "input": {"command": "ls"}, "permission": "always_allow"}],
            reply="sync ok",
        ),
        output_dir=str(tmp_outputs),
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result.final_message.startswith("sync ok")
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None

    async def collect() -> tuple[list[Any], list[Any], list[Any], Any]:
        async with get_client() as pc:
            flow_run = await pc.read_flow_run(flow_run_id)
            artifacts = await pc.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            events: list[Any] = []
            logs: list[Any] = []
            for _ in range(50):  # logs and events are persisted asynchronously
                logs = await pc.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
                page = await pc.read_events(
                    EventFilter(
                        event=EventNameFilter(prefix=["managed-agents.session."]),
                        resource=EventResourceFilter(id=[f"managed-agents.session.{result.session_id}"]),
                    ),
                    limit=50,
                )
                events = page.events
                final_line = any(f"Session {result.session_id} completed" in log.message for log in logs)
                if final_line and any(e.event == "managed-agents.session.completed" for e in events):
                    break
                await asyncio.sleep(0.2)
            return logs, artifacts, events, flow_run

    logs, artifacts, events, flow_run = asyncio.run(collect())
    assert f"session:{result.session_id}" in flow_run.tags  # shown on the run page
    # Two artifacts: the progress bar (no key, linking the session) and the report, keyed per agent.
    assert sorted((a.type, a.key) for a in artifacts) == [
        ("markdown", report_key(block.agent_name)),
        ("progress", None),
    ]
    progress = next(a for a in artifacts if a.type == "progress")
    assert progress.data == 100 and result.console_url in str(progress.description)
    report = str(next(a for a in artifacts if a.type == "markdown").data)
    assert report.startswith(f"# {block.agent_name}: Completed\n")
    assert "## Usage" in report and "## Output files" in report and "bash" in report
    names = {e.event for e in events}
    assert {
        "managed-agents.session.started",
        "managed-agents.session.running",
        "managed-agents.session.completed",
    } <= names
    assert "managed-agents.session.idle" in names
    [completed] = [e for e in events if e.event == "managed-agents.session.completed"]
    assert completed.payload["cost_usd"] == str(result.usage.cost_usd)
    assert completed.payload["output_tokens"] == result.usage.output_tokens > 0
    # The agent and its block are related resources (the UI links the block's page).
    related = {(r.role, r.id) for r in completed.related}
    assert ("agent", f"managed-agents.agent.{block.agent_id}") in related
    assert ("block", f"prefect.block-document.{block._block_document_id}") in related
    # The final log line says how it ended, what it produced and what it cost.
    assert any(
        log.message.startswith(f"Session {result.session_id} completed: idle (end_turn), 0 output file(s)")
        and f"list cost ${result.usage.cost_usd:.2f}" in log.message
        for log in logs
    )

    haystack = json.dumps(
        {
            "logs": [log.message for log in logs],
            "artifacts": [str(a.data) + str(a.description) for a in artifacts],
            "events": [e.model_dump(mode="json") for e in events],
            "parameters": flow_run.parameters,
        },
        default=str,
    )
    assert len(logs) > 3
    assert TEST_API_KEY not in haystack
    assert "SECRET" not in haystack


@pytest.mark.parametrize("flow_obj", [run_agent_session, arun_agent_session], ids=["sync", "async"])
def test_every_parameter_has_a_description_for_the_ui_form(flow_obj: Any) -> None:
    schema = flow_obj.parameters.model_dump()
    assert schema["required"] == ["agent", "prompt"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"parameter {name} has no description"


def test_cut_downloads_are_retried_and_traversal_names_are_contained(
    agent_name: str, emulator: EmulatorServer, client: anthropic.Anthropic, tmp_path: Path
) -> None:
    out_dir = tmp_path / "deep" / "outputs"
    emulator.control.set_faults(cut_download_after_bytes=1000, cut_download_times=2)
    try:
        result = run_agent_session(
            agent_name,
            scenario(outputs=[{"name": "big.bin", "size": 300_000}, {"name": "../../evil.txt", "size": 10}]),
            output_dir=str(out_dir),
        )
    finally:
        requests = emulator.control.requests()
        emulator.control.set_faults()
    assert any("cut" in (r.get("injected") or "") for r in requests), "no download was cut"
    assert len(result.output_files) == 2
    for out in result.output_files:
        path = Path(out.path).resolve()
        assert path.is_relative_to(out_dir.resolve())
        assert path.read_bytes() == _downloaded(client, out.file_id)
        assert path.stat().st_size == out.size_bytes
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
