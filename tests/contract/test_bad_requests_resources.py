"""Error paths of the resource endpoints: status, SDK error class, envelope and request id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types.beta.beta_environment_archived_error import BetaEnvironmentArchivedError
from anthropic.types.beta.beta_invalid_metadata_error import BetaInvalidMetadataError

from emulator import EmulatorConfig, EmulatorServer
from tests.conftest import TEST_API_KEY


def _envelope(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert exc.request_id is not None and exc.request_id.startswith("req_")
    assert body["request_id"] == exc.request_id
    return body


def _sent(emulator: EmulatorServer, method: str, path: str) -> int:
    return sum(1 for r in emulator.control.requests() if r["method"] == method and r["path"] == path)


def test_unknown_ids_are_404(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    agent = client.beta.agents.create(name="a", model="claude-opus-4-8")
    calls: list[Callable[[], object]] = [
        lambda: client.beta.agents.retrieve("agent_nope"),
        lambda: client.beta.agents.retrieve(agent.id, version=2),
        lambda: client.beta.agents.update("agent_nope", name="x"),
        lambda: client.beta.agents.archive("agent_nope"),
        lambda: client.beta.agents.versions.list("agent_nope"),
        lambda: client.beta.environments.retrieve("env_nope"),
        lambda: client.beta.environments.delete("env_nope"),
        lambda: client.beta.files.retrieve_metadata("file_nope"),
        lambda: client.beta.files.delete("file_nope"),
        lambda: client.beta.memory_stores.retrieve("memstore_nope"),
        lambda: client.beta.memory_stores.memories.retrieve("mem_nope", memory_store_id=store.id),
        lambda: client.beta.memory_stores.memories.list("memstore_nope"),
        lambda: client.beta.memory_stores.memory_versions.retrieve("memver_nope", memory_store_id=store.id),
    ]
    for call in calls:
        with pytest.raises(anthropic.NotFoundError) as info:
            call()
        assert _envelope(info.value)["error"]["type"] == "not_found_error"


def test_bad_bodies_are_400(client: anthropic.Anthropic) -> None:
    # Deliberately malformed payloads, typed Any so the SDK's TypedDicts do not reject them first.
    custom: Any = {"type": "custom", "description": "d", "input_schema": {"type": "object"}}
    mcp: Any = [{"type": "url", "name": "linear", "url": "https://x"}]
    bad_tool: Any = {"type": "nope"}
    bad_model: Any = {"id": "m", "effort": "extreme"}
    bad_config: Any = {"type": "moon"}
    bad_name: Any = 123
    calls: list[Any] = [
        lambda: client.beta.agents.create(name="", model="claude-opus-4-8"),
        lambda: client.beta.agents.create(name="x" * 257, model="claude-opus-4-8"),
        lambda: client.beta.agents.create(name=bad_name, model="claude-opus-4-8"),
        lambda: client.post("/v1/agents", body={"name": "no model"}, cast_to=object, options=_ma()),
        lambda: client.beta.agents.create(name="t", model="m", tools=[{**custom, "name": "bad name!"}]),  # type: ignore[list-item]
        lambda: client.beta.agents.create(name="t", model="m", tools=[{**custom, "name": "x" * 129}]),  # type: ignore[list-item]
        lambda: client.beta.agents.create(
            name="t",
            model="m",
            tools=[{**custom, "name": f"t{i}"} for i in range(257)],  # type: ignore[misc]
        ),
        lambda: client.beta.agents.create(name="t", model="m", mcp_servers=mcp),
        lambda: client.beta.agents.create(
            name="t",
            model="m",
            mcp_servers=[{"type": "url", "name": f"s{i}", "url": "https://x"} for i in range(21)],
            tools=[{"type": "mcp_toolset", "mcp_server_name": f"s{i}"} for i in range(21)],
        ),
        lambda: client.beta.agents.create(
            name="t", model="m", tools=[{"type": "mcp_toolset", "mcp_server_name": "ghost"}]
        ),
        lambda: client.beta.agents.create(name="t", model="m", tools=[bad_tool]),
        lambda: client.beta.agents.create(name="t", model=bad_model),
        lambda: client.beta.environments.create(name="e", config=bad_config),
        lambda: client.beta.environments.create(name=""),
        lambda: client.beta.memory_stores.create(name=""),
        lambda: client.beta.memory_stores.create(name="bad\x07name"),
        lambda: client.beta.agents.list(limit=0),
        lambda: client.beta.agents.list(limit=101),
        lambda: client.beta.agents.list(page="garbage"),
        lambda: client.beta.agents.list(created_at_gte="yesterday"),
    ]
    for index, call in enumerate(calls):
        with pytest.raises(anthropic.BadRequestError) as info:
            call()
        assert _envelope(info.value)["error"]["type"] == "invalid_request_error", index


def _ma() -> Any:
    return {"headers": {"anthropic-beta": "managed-agents-2026-04-01"}}


def test_metadata_limits(client: anthropic.Anthropic) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    calls: list[Any] = [
        lambda: client.beta.agents.create(name="a", model="m", metadata=too_many),
        lambda: client.beta.agents.create(name="a", model="m", metadata={"k" * 65: "v"}),
        lambda: client.beta.agents.create(name="a", model="m", metadata={"k": "v" * 513}),
        lambda: client.beta.environments.create(name="e", metadata=too_many),
        lambda: client.beta.memory_stores.create(name="s", metadata=too_many),
    ]
    for call in calls:
        with pytest.raises(BetaInvalidMetadataError) as info:
            call()
        assert info.value.error_code == "invalid_metadata"
        _envelope(info.value)
    agent = client.beta.agents.create(name="a", model="m", metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(BetaInvalidMetadataError):
        client.beta.agents.update(agent.id, metadata={"one-more": "v"})


def test_archived_objects(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(name="a", model="m")
    client.beta.agents.archive(agent.id)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.beta.agents.update(agent.id, name="b")
    _envelope(info.value)
    env = client.beta.environments.create(name="e")
    client.beta.environments.archive(env.id)
    with pytest.raises(BetaEnvironmentArchivedError) as env_info:
        client.beta.environments.update(env.id, description="x")
    assert env_info.value.error_code == "environment_archived"
    store = client.beta.memory_stores.create(name="s")
    memory = client.beta.memory_stores.memories.create(store.id, path="/a.md", content="a")
    client.beta.memory_stores.archive(store.id)
    with pytest.raises(anthropic.BadRequestError) as store_info:
        client.beta.memory_stores.memories.update(memory.id, memory_store_id=store.id, content="b")
    assert _envelope(store_info.value)["error"]["details"]["error_code"] == "memory_store_archived"
    # Reading and deleting still work on an archived store.
    assert client.beta.memory_stores.memories.retrieve(memory.id, memory_store_id=store.id).content == "a"
    client.beta.memory_stores.memories.delete(memory.id, memory_store_id=store.id)


def test_stale_version_is_409_sent_once(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(name="a", model="m")
    client.beta.agents.update(agent.id, version=1, system="v2")
    emulator.control.clear_requests()
    with pytest.raises(anthropic.ConflictError) as info:
        client.beta.agents.update(agent.id, version=1, system="v3")
    assert info.value.response.headers["x-should-retry"] == "false"
    _envelope(info.value)
    assert _sent(emulator, "POST", f"/v1/agents/{agent.id}") == 1
    assert client.beta.agents.retrieve(agent.id).version == 2


def test_memory_conflicts_are_not_retried(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    client.beta.memory_stores.memories.create(store.id, path="/a.md", content="a")
    emulator.control.clear_requests()
    with pytest.raises(anthropic.ConflictError):
        client.beta.memory_stores.memories.create(store.id, path="/a.md", content="b")
    assert _sent(emulator, "POST", f"/v1/memory_stores/{store.id}/memories") == 1


def test_beta_headers(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.beta.agents.list(extra_headers={"anthropic-beta": "some-other-beta"})
    assert "managed-agents-2026-04-01" in _envelope(info.value)["error"]["message"]
    # Memory stores accept either of their two betas.
    store = client.beta.memory_stores.create(
        name="s", extra_headers={"anthropic-beta": "managed-agents-2026-04-01"}
    )
    assert store.name == "s"
    auth = {"authorization": f"Bearer {TEST_API_KEY}"}
    for path in ("/v1/environments", "/v1/memory_stores"):
        resp = httpx.get(f"{emulator.url}{path}", headers=auth)
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    # Files need no beta at all.
    assert httpx.get(f"{emulator.url}/v1/files", headers=auth).status_code == 200


def test_missing_key_is_401(emulator: EmulatorServer) -> None:
    resp = httpx.get(f"{emulator.url}/v1/agents", headers={"anthropic-beta": "managed-agents-2026-04-01"})
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert resp.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(api_key=TEST_API_KEY)])
def test_wrong_key_is_401(emulator: EmulatorServer) -> None:
    with (
        anthropic.Anthropic(api_key="sk-ant-wrong", base_url=emulator.url, max_retries=0) as wrong,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        wrong.beta.memory_stores.list()
    _envelope(info.value)


async def test_async_errors(async_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await async_client.beta.agents.retrieve("agent_nope")
    _envelope(info.value)
    agent = await async_client.beta.agents.create(name="a", model="m")
    await async_client.beta.agents.update(agent.id, version=1, system="x")
    with pytest.raises(anthropic.ConflictError):
        await async_client.beta.agents.update(agent.id, version=1, system="y")
