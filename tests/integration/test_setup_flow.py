"""deploy_agent and pin_agent_version against the emulator (real SDK, real HTTP) and a real Prefect server."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler
from prefect.testing.fixtures import asserting_events_worker  # noqa: F401  (fixture)

from blocks import (
    AgentArchivedError,
    AgentDeploymentSpec,
    AgentDriftError,
    AgentVersionNotFoundError,
    AnthropicCredentials,
    ApiUnreachableError,
    BlockNotFoundError,
    EnvironmentArchivedError,
    ManagedAgent,
    MissingCredentialsError,
    SpecValidationError,
    StaleAgentVersionError,
)
from emulator import EmulatorServer
from emulator.server import free_port
from flows.setup import deploy_agent, deploy_lock_name, pin_agent_version
from managed_agents_core.spec import FINGERPRINT_KEY
from tests.conftest import TEST_API_KEY, sdk_client

pytestmark = pytest.mark.usefixtures("prefect_harness")

EXAMPLE = Path(__file__).resolve().parents[2] / "flows" / "specs" / "example-agent.yaml"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def spec_with(**changes: Any) -> AgentDeploymentSpec:
    """The example spec with some fields replaced, and a per-test agent name."""
    data = AgentDeploymentSpec.from_yaml(EXAMPLE).model_dump(exclude_unset=True)
    data.update(changes)
    return AgentDeploymentSpec.parse(data)


def load_block(block_name: str) -> ManagedAgent:
    block = ManagedAgent.load(block_name, _sync=True)  # type: ignore[call-arg]
    assert isinstance(block, ManagedAgent)
    return block


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def writes(emulator: EmulatorServer) -> list[str]:
    """The write requests in the emulator's log, as 'METHOD path'."""
    return [
        f"{r['method']} {r['path']}"
        for r in emulator.control.requests()
        if r["method"] in WRITE_METHODS and r["path"].startswith("/v1/")
    ]


def api_requests(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [r for r in emulator.control.requests() if r["path"].startswith("/v1/")]


def artifact_markdown(key: str) -> str:
    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    latest = max(found, key=lambda a: a.created or 0)
    return str(latest.data)


def recorded_events(worker: EventsWorker, block_name: str | None = None) -> list[Any]:
    """Events the asserting worker caught (optionally only those about one block's deploys)."""
    worker.drain()
    events = [e for client in AssertingEventsClient.all for e in client.events]
    return [e for e in events if block_name is None or e.payload.get("block") == block_name]


@pytest.fixture
def creds(emulator: EmulatorServer) -> AnthropicCredentials:
    return AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with sdk_client(emulator.url) as c:
        yield c


@pytest.fixture
def name() -> str:
    return unique("writer")


# --- idempotence, update, pin ---------------------------------------------------------------------


def test_first_run_creates_rerun_writes_nothing_changed_spec_updates(
    emulator: EmulatorServer, creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str
) -> None:
    block_name = unique("report-writer")
    spec = spec_with(name=name)

    first = deploy_agent(spec, block_name, credentials=creds)
    first_writes = writes(emulator)
    assert first_writes == ["POST /v1/environments", "POST /v1/agents"]
    assert first.version == 1
    assert first.agent_name == name
    assert first.spec_fingerprint == spec.fingerprint()
    remote = sdk.beta.agents.retrieve(first.agent_id)
    assert remote.metadata[FINGERPRINT_KEY] == spec.fingerprint()
    assert remote.metadata["team"] == "analytics"
    stored = load_block(block_name)
    assert (stored.agent_id, stored.version, stored.environment_id) == (
        first.agent_id,
        1,
        first.environment_id,
    )
    assert "| Action | **created** |" in artifact_markdown(f"deploy-{block_name}")

    emulator.control.clear_requests()
    again = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    rerun_requests = api_requests(emulator)
    assert writes(emulator) == []  # the idempotence claim: reads only
    assert (again.agent_id, again.version, again.environment_id) == (
        first.agent_id,
        1,
        first.environment_id,
    )

    emulator.control.clear_requests()
    changed = spec_with(name=name, system="You write terse reports.")
    updated = deploy_agent(changed, block_name, credentials=creds)
    assert writes(emulator) == [f"POST /v1/agents/{first.agent_id}"]
    assert (updated.agent_id, updated.version) == (first.agent_id, 2)
    assert load_block(block_name).version == 2
    assert sdk.beta.agents.retrieve(first.agent_id).system == "You write terse reports."
    report = artifact_markdown(f"deploy-{block_name}")
    assert "| Action | **updated** |" in report
    assert "| Pin | v1 → v2 |" in report
    assert "| `system` | changed |" in report
    assert f"`metadata.{FINGERPRINT_KEY}`" in report
    print(  # the closing note's request counts (run with -s to see them)
        f"\nrequest counts: first run {len(first_writes)} writes; re-run {len(rerun_requests)} requests "
        f"({len([r for r in rerun_requests if r['method'] in WRITE_METHODS])} writes); changed spec 1 write"
    )


def test_update_clears_removed_fields_and_metadata(
    emulator: EmulatorServer, creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str
) -> None:
    block_name = unique("clear")
    deploy_agent(spec_with(name=name), block_name, credentials=creds)
    spec = spec_with(name=name, description=None, metadata={"owner": "data"})
    block = deploy_agent(spec, block_name, credentials=creds)
    remote = sdk.beta.agents.retrieve(block.agent_id)
    assert remote.description is None
    assert "team" not in remote.metadata
    assert remote.metadata["owner"] == "data"
    emulator.control.clear_requests()
    deploy_agent(spec, block_name, credentials=creds)
    assert writes(emulator) == []


def test_environment_config_change_updates_environment_in_place(
    emulator: EmulatorServer, creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str
) -> None:
    block_name = unique("env")
    first = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    env = {
        "name": "report-writer-env",
        "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["api.example.com"]}},
    }
    emulator.control.clear_requests()
    block = deploy_agent(spec_with(name=name, environment=env), block_name, credentials=creds)
    assert writes(emulator) == [f"POST /v1/environments/{first.environment_id}"]
    assert block.environment_id == first.environment_id
    stored = sdk.beta.environments.retrieve(first.environment_id)
    assert stored.config.networking.type == "limited"  # type: ignore[union-attr]
    assert stored.description is None
    emulator.control.clear_requests()
    deploy_agent(spec_with(name=name, environment=env), block_name, credentials=creds)
    assert writes(emulator) == []


# --- concurrency ----------------------------------------------------------------------------------


def test_two_concurrent_runs_create_one_agent(
    emulator: EmulatorServer, creds: AnthropicCredentials, name: str
) -> None:
    spec = spec_with(name=name)
    blocks = [unique("dev"), unique("prod")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(deploy_agent, spec, b, credentials=creds) for b in blocks]
        results = [f.result(timeout=240) for f in futures]

    log = writes(emulator)
    assert log.count("POST /v1/agents") == 1
    assert log.count("POST /v1/environments") == 1
    assert len(log) == 2  # the second run only read and pinned
    assert results[0].agent_id == results[1].agent_id
    assert {r.version for r in results} == {1}
    loaded = [load_block(b) for b in blocks]
    assert loaded[0].agent_id == loaded[1].agent_id
    with get_client(sync_client=True) as prefect:
        lock = prefect.read_global_concurrency_limit_by_name(deploy_lock_name(name))
    assert lock.limit == 1


# --- optimistic lock, drift -----------------------------------------------------------------------


def test_concurrent_edit_during_update_is_stale(
    emulator: EmulatorServer,
    creds: AnthropicCredentials,
    sdk: anthropic.Anthropic,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block_name = unique("stale")
    first = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    from tasks.agents import update_agent as real_update

    # The only stand-in: it makes a real concurrent edit land between the flow's read and its
    # update (a race no test can time otherwise); the update itself is the real task and request.
    def update_after_someone_else(*args: Any, **kwargs: Any) -> Any:
        sdk.beta.agents.update(first.agent_id, version=1, system="edited by someone else")
        return real_update(*args, **kwargs)

    monkeypatch.setattr("flows.setup.update_agent", update_after_someone_else)
    with pytest.raises(StaleAgentVersionError, match="Rerun deploy_agent"):
        deploy_agent(spec_with(name=name, system="new"), block_name, credentials=creds)
    assert load_block(block_name).version == 1
    assert sdk.beta.agents.retrieve(first.agent_id).system == "edited by someone else"


def test_stale_precondition_from_the_api(creds: AnthropicCredentials, sdk: anthropic.Anthropic) -> None:
    from tasks.agents import update_agent

    agent = sdk.beta.agents.create(name="x", model="claude-opus-4-8")
    sdk.beta.agents.update(agent.id, version=1, system="v2")
    with creds.get_client() as client, pytest.raises(StaleAgentVersionError):
        update_agent.fn(client, agent.id, 1, {"system": "mine"})


def test_drift_is_reported_not_overwritten_then_forced(
    emulator: EmulatorServer,
    creds: AnthropicCredentials,
    sdk: anthropic.Anthropic,
    name: str,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    block_name = unique("drift")
    spec = spec_with(name=name)
    first = deploy_agent(spec, block_name, credentials=creds)
    sdk.beta.agents.update(first.agent_id, version=1, system="changed in the console")

    emulator.control.clear_requests()
    with pytest.raises(AgentDriftError, match="force=True"):
        deploy_agent(spec, block_name, credentials=creds)
    assert writes(emulator) == []
    assert load_block(block_name).version == 1
    report = artifact_markdown(f"deploy-{block_name}")
    assert "Drift" in report and "| `system` | changed |" in report and "Not overwritten" in report
    drift_events = [
        e
        for e in recorded_events(asserting_events_worker, block_name)
        if e.event == "managed-agents.agent.drift"
    ]
    assert drift_events and drift_events[-1].resource.id == f"managed-agents.agent.{first.agent_id}"
    assert drift_events[-1].payload["overwritten"] is False

    emulator.control.clear_requests()
    forced = deploy_agent(spec, block_name, credentials=creds, force=True)
    assert writes(emulator) == [f"POST /v1/agents/{first.agent_id}"]
    assert forced.version == 3
    assert sdk.beta.agents.retrieve(first.agent_id).system == spec.system
    emulator.control.clear_requests()
    deploy_agent(spec, block_name, credentials=creds)
    assert writes(emulator) == []


def test_same_spec_deployed_elsewhere_is_repinned_without_writes(
    emulator: EmulatorServer, creds: AnthropicCredentials, name: str
) -> None:
    dev, prod = unique("dev"), unique("prod")
    deploy_agent(spec_with(name=name), dev, credentials=creds)
    deploy_agent(spec_with(name=name), prod, credentials=creds)
    deploy_agent(spec_with(name=name, system="v2 prompt"), dev, credentials=creds)
    emulator.control.clear_requests()
    promoted = deploy_agent(spec_with(name=name, system="v2 prompt"), prod, credentials=creds)
    assert writes(emulator) == []
    assert promoted.version == 2
    assert "| Action | **pinned** |" in artifact_markdown(f"deploy-{prod}")


def test_events_for_created_updated_unchanged(
    creds: AnthropicCredentials,
    name: str,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    block_name = unique("events")
    block = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    deploy_agent(spec_with(name=name), block_name, credentials=creds)
    deploy_agent(spec_with(name=name, system="other"), block_name, credentials=creds)
    ours = recorded_events(asserting_events_worker, block_name)
    assert [e.event for e in ours] == [
        "managed-agents.agent.created",
        "managed-agents.agent.unchanged",
        "managed-agents.agent.updated",
    ]
    updated = ours[-1]
    assert updated.resource.id == f"managed-agents.agent.{block.agent_id}"
    assert updated.resource["prefect.resource.name"] == name
    assert updated.resource["managed-agents.version"] == "2"
    assert updated.payload["old_version"] == 1 and updated.payload["new_version"] == 2
    assert updated.payload["block"] == block_name
    assert "system" in updated.payload["changed_fields"]
    assert any(r.role == "flow-run" for r in updated.related)


# --- pinning and rollback -------------------------------------------------------------------------


def test_rollback_and_promotion_per_stage(
    emulator: EmulatorServer, creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str
) -> None:
    dev, prod = unique("dev"), unique("prod")
    deploy_agent(spec_with(name=name), dev, credentials=creds)
    deploy_agent(spec_with(name=name, system="second"), dev, credentials=creds)
    deploy_agent(spec_with(name=name, system="second"), prod, credentials=creds)
    assert load_block(prod).version == 2

    emulator.control.clear_requests()
    rolled = pin_agent_version(prod, 1)
    assert writes(emulator) == []
    assert rolled.version == 1
    assert load_block(prod).version == 1
    assert load_block(dev).version == 2  # stages move independently
    assert "pin v2 → v1 (rollback)" in artifact_markdown(f"pin-{prod}")

    promoted = pin_agent_version(prod, 2)
    assert load_block(prod).version == promoted.version == 2

    with pytest.raises(AgentVersionNotFoundError, match="no version 9"):
        pin_agent_version(prod, 9)
    assert load_block(prod).version == 2


# --- bad input --------------------------------------------------------------------------------------


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    (
        {
            "tools": [{"type": "agent_toolset_20260401"}]
            + [
                {
                    "type": "custom",
                    "name": f"tool_{i}",
                    "description": "d",
                    "input_schema": {"type": "object"},
                }
                for i in range(249)
            ]
        },
        "tools",
    ),
    (
        {
            "tools": [
                {
                    "type": "custom",
                    "name": "no spaces",
                    "description": "d",
                    "input_schema": {"type": "object"},
                }
            ]
        },
        "tools[0].name",
    ),
    (
        {"mcp_servers": [{"type": "url", "name": "linear", "url": "https://mcp.linear.app/sse"}]},
        "mcp_servers",
    ),
    ({"metadata": {"owner": "x" * 513}}, "metadata"),
    ({"model": None}, "model"),
    ({"temperature": 0.2}, "temperature"),
]


@pytest.mark.parametrize(("change", "field"), BAD_SPECS)
def test_invalid_spec_fails_before_any_request(
    emulator: EmulatorServer,
    creds: AnthropicCredentials,
    tmp_path: Path,
    change: dict[str, Any],
    field: str,
) -> None:
    data = AgentDeploymentSpec.from_yaml(EXAMPLE).model_dump(mode="json", exclude_unset=True)
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecValidationError) as info:
        deploy_agent(str(path), unique("bad"), credentials=creds)
    assert f"  - {field}" in str(info.value)
    assert api_requests(emulator) == []


@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_or_empty_api_key(emulator: EmulatorServer, name: str, key: str | None) -> None:
    creds = AnthropicCredentials(api_key=key, base_url=emulator.url)
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        deploy_agent(spec_with(name=name), unique("nokey"), credentials=creds)
    assert api_requests(emulator) == []


def test_unknown_block_names(emulator: EmulatorServer, name: str) -> None:
    with pytest.raises(BlockNotFoundError, match="deploy_agent"):
        pin_agent_version(unique("missing"), 1)
    with pytest.raises(BlockNotFoundError, match="AnthropicCredentials"):
        deploy_agent(spec_with(name=name), unique("x"), credentials=unique("no-such-credentials"))
    assert api_requests(emulator) == []


def test_archived_agent(creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str) -> None:
    block_name = unique("archived")
    block = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    sdk.beta.agents.archive(block.agent_id)
    with pytest.raises(AgentArchivedError, match="archived"):
        deploy_agent(spec_with(name=name, system="x"), block_name, credentials=creds)
    with pytest.raises(AgentArchivedError, match="archived"):
        pin_agent_version(block_name, 1)


def test_archived_environment(creds: AnthropicCredentials, sdk: anthropic.Anthropic, name: str) -> None:
    block_name = unique("archived-env")
    block = deploy_agent(spec_with(name=name), block_name, credentials=creds)
    sdk.beta.environments.archive(block.environment_id)
    with pytest.raises(EnvironmentArchivedError, match=r"environment\.name"):
        deploy_agent(spec_with(name=name), block_name, credentials=creds)
    with pytest.raises(EnvironmentArchivedError):
        pin_agent_version(block_name, 1)


def test_unreachable_base_url_fails_fast(name: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=url, max_retries=0, timeout=5)
    started = time.monotonic()
    with pytest.raises(ApiUnreachableError) as info:
        deploy_agent(spec_with(name=name), unique("down"), credentials=creds)
    assert time.monotonic() - started < 30
    assert url in str(info.value)
    assert TEST_API_KEY not in str(info.value)


# --- secrets ----------------------------------------------------------------------------------------


def test_api_key_never_leaks(
    emulator: EmulatorServer,
    creds: AnthropicCredentials,
    sdk: anthropic.Anthropic,
    name: str,
    caplog: pytest.LogCaptureFixture,
    asserting_events_worker: EventsWorker,  # noqa: F811
) -> None:
    caplog.set_level(logging.DEBUG)
    block_name = unique("secret")
    seen: list[str] = []
    states = [deploy_agent(spec_with(name=name), block_name, credentials=creds, return_state=True)]
    sdk.beta.agents.update(states[0].result().agent_id, version=1, system="outside edit")
    states.append(deploy_agent(spec_with(name=name), block_name, credentials=creds, return_state=True))
    states.append(
        deploy_agent(spec_with(name=name), block_name, credentials=creds, force=True, return_state=True)
    )
    down = AnthropicCredentials(
        api_key=TEST_API_KEY, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0
    )
    states.append(deploy_agent(spec_with(name=name), unique("down"), credentials=down, return_state=True))
    states.append(pin_agent_version(block_name, 1, return_state=True))
    for state in states:
        seen.append(str(state.message))
        try:
            state.result()
        except Exception as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
    assert sum(s.is_failed() for s in states) == 2  # drift and unreachable

    APILogHandler().flush()
    with get_client(sync_client=True) as prefect:
        for state in states:
            run_id = state.state_details.flow_run_id
            assert run_id is not None
            run = prefect.read_flow_run(run_id)
            seen.append(repr(run.parameters))
            seen += [
                log.message
                for log in prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            ]
            seen += [str(a.data) + str(a.description) for a in prefect.read_artifacts()]
    block = load_block(block_name)
    seen += [repr(block), str(block), repr(block.credentials), block.model_dump_json()]
    seen += [e.model_dump_json() for e in recorded_events(asserting_events_worker)]
    seen += [r.getMessage() + repr(r.args) for r in caplog.records]
    seen.append(caplog.text)

    assert any("Deploy report" in s for s in seen)  # the net caught real material
    assert any("managed-agents.agent.drift" in s for s in seen)
    leaks = [s[:200] for s in seen if TEST_API_KEY in s]
    assert leaks == []
