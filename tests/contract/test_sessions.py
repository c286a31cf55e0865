"""Sessions through the real SDK: create/retrieve/update/list/archive/delete, strictly validated."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedSession, BetaManagedAgentsSession

from emulator import EmulatorServer
from tests.contract.session_support import (
    history,
    make_agent,
    make_environment,
    make_session,
    message,
    run_turn,
    scenario,
    send,
    types_of,
)
from tests.contract.strict import body_of, strict


def _raw(call: Any) -> dict[str, Any]:
    body: dict[str, Any] = body_of(call)
    return body


def test_create_with_agent_id_string_pins_latest_version(client: anthropic.Anthropic) -> None:
    agent = make_agent(client)
    updated = client.beta.agents.update(agent.id, version=agent.version, system="v2 prompt")
    session = make_session(client, agent=agent.id, title="nightly", metadata={"flow_run_id": "abc"})
    assert session["status"] == "idle"
    assert session["agent"]["id"] == agent.id
    assert session["agent"]["version"] == updated.version == 2
    assert session["agent"]["system"] == "v2 prompt"
    assert session["title"] == "nightly"
    assert session["metadata"] == {"flow_run_id": "abc"}
    assert session["usage"]["input_tokens"] == 0
    assert session["id"].startswith("sesn_")
    assert session["resources"] == [] and session["vault_ids"] == [] and session["outcome_evaluations"] == []


def test_create_with_pinned_version_and_overrides(client: anthropic.Anthropic) -> None:
    agent = make_agent(client)
    client.beta.agents.update(agent.id, version=agent.version, system="v2 prompt")
    pinned = make_session(client, agent={"type": "agent", "id": agent.id, "version": 1})
    assert pinned["agent"]["version"] == 1
    assert pinned["agent"]["system"] == "You are a test agent."
    overridden = make_session(
        client,
        agent={
            "type": "agent_with_overrides",
            "id": agent.id,
            "version": 1,
            "system": None,
            "model": "claude-sonnet-4-6",
            "tools": [
                {
                    "type": "agent_toolset_20260401",
                    "default_config": {"permission_policy": {"type": "always_ask"}},
                }
            ],
        },
    )
    assert overridden["agent"]["system"] is None
    assert overridden["agent"]["model"]["id"] == "claude-sonnet-4-6"
    toolset = overridden["agent"]["tools"][0]
    assert toolset["default_config"]["permission_policy"] == {"type": "always_ask"}
    # The agent itself is unchanged.
    assert client.beta.agents.retrieve(agent.id).version == 2


def test_create_mounts_resources(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    upload = client.beta.files.upload(file=("data.csv", b"a,b\n1,2\n", "text/csv"))
    store = client.beta.memory_stores.create(name="User Preferences")
    session = make_session(
        client,
        resources=[
            {"type": "file", "file_id": upload.id},
            {"type": "file", "file_id": upload.id, "mount_path": "/workspace/data.csv"},
            {
                "type": "github_repository",
                "url": "https://github.com/acme/widgets",
                "authorization_token": "ghp_SECRET_TOKEN",
                "checkout": {"type": "branch", "name": "main"},
            },
            {"type": "memory_store", "memory_store_id": store.id, "instructions": "Keep it short."},
        ],
    )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in session["resources"]:
        by_type.setdefault(resource["type"], []).append(resource)
    default_mount, explicit_mount = by_type["file"]
    assert default_mount["mount_path"] == f"/mnt/session/uploads/{upload.id}"
    assert explicit_mount["mount_path"] == "/workspace/data.csv"
    copies = {default_mount["file_id"], explicit_mount["file_id"]}
    assert upload.id not in copies and len(copies) == 2
    for copy_id in copies:
        meta = client.beta.files.retrieve_metadata(copy_id)
        assert meta.scope is not None and meta.scope.id == session["id"]
        assert meta.size_bytes == upload.size_bytes
    (repo,) = by_type["github_repository"]
    assert repo["mount_path"] == "/workspace/widgets"
    assert repo["checkout"] == {"type": "branch", "name": "main"}
    (mem,) = by_type["memory_store"]
    assert mem == {
        "type": "memory_store",
        "memory_store_id": store.id,
        "access": "read_write",
        "name": "User Preferences",
        "description": "",
        "instructions": "Keep it short.",
        "mount_path": "/mnt/memory/user-preferences",
    }
    raw = client.beta.sessions.with_raw_response.retrieve(session["id"])
    assert "ghp_SECRET_TOKEN" not in raw.http_response.text
    strict(BetaManagedAgentsSession, body_of(raw))


def test_memory_store_limit_and_access(client: anthropic.Anthropic) -> None:
    stores = [client.beta.memory_stores.create(name=f"store {i}") for i in range(9)]
    resources = [{"type": "memory_store", "memory_store_id": s.id} for s in stores]
    with pytest.raises(anthropic.BadRequestError, match="at most 8"):
        make_session(client, resources=resources)
    session = make_session(client, resources=[{**resources[0], "access": "read_only"}])
    assert session["resources"][0]["access"] == "read_only"
    with pytest.raises(anthropic.BadRequestError):
        make_session(client, resources=[{**resources[0], "instructions": "x" * 4097}])


def test_archived_references_are_refused(client: anthropic.Anthropic) -> None:
    agent = make_agent(client)
    env = make_environment(client)
    store = client.beta.memory_stores.create(name="old notes")
    client.beta.memory_stores.archive(store.id)
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        make_session(
            client, agent=agent.id, resources=[{"type": "memory_store", "memory_store_id": store.id}]
        )
    client.beta.environments.archive(env.id)
    with pytest.raises(anthropic.BadRequestError, match="archived") as env_error:
        make_session(client, agent=agent.id, environment_id=env.id)
    assert env_error.value.body["error"]["details"]["error_code"] == "environment_archived"  # type: ignore[index]
    client.beta.agents.archive(agent.id)
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        make_session(client, agent=agent.id)


def test_initial_events_run_as_if_sent(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client, initial_events=[scenario(reply="from initial events")])
    deadline = time.monotonic() + 10
    while (
        client.beta.sessions.retrieve(session["id"]).status != "idle"
        or len(history(client, session["id"])) < 3
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = history(client, session["id"])
    assert types_of(events)[:2] == ["session.status_running", "user.message"]
    assert events[1]["processed_at"] is not None
    assert events[-1]["type"] == "session.status_idle"
    messages = [e for e in events if e["type"] == "agent.message"]
    assert messages[0]["content"][0]["text"] == "from initial events"


def test_update_title_metadata_and_agent_emit_session_updated(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session = make_session(client, metadata={"keep": "1", "drop": "2"})
    raw = client.beta.sessions.with_raw_response.update(
        session["id"],
        title="renamed",
        metadata={"drop": None, "new": "3"},
        agent={"tools": [{"type": "agent_toolset_20260401"}]},
    )
    body = _raw(raw)
    strict(BetaManagedAgentsSession, body)
    assert body["title"] == "renamed"
    assert body["metadata"] == {"keep": "1", "new": "3"}
    assert [t["type"] for t in body["agent"]["tools"]] == ["agent_toolset_20260401"]
    (updated,) = [e for e in history(client, session["id"]) if e["type"] == "session.updated"]
    assert updated["title"] == "renamed"
    assert updated["metadata"] == {"keep": "1", "new": "3"}
    assert updated["agent"]["tools"] == body["agent"]["tools"]
    # Omitted fields are preserved.
    again = client.beta.sessions.update(session["id"], title="again")
    assert again.metadata == {"keep": "1", "new": "3"}


def test_update_rules(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    plain = make_session(client)
    with pytest.raises(anthropic.BadRequestError, match="vault_ids"):
        client.beta.sessions.update(plain["id"], vault_ids=["vlt_1"])
    with pytest.raises(anthropic.BadRequestError) as create_only:
        client.beta.sessions.update(
            plain["id"], budget={"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
        )
    assert create_only.value.body["error"]["details"]["error_code"] == "budget_create_only"  # type: ignore[index]

    budgeted = make_session(
        client, budget={"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
    )
    assert budgeted["budget"] == {"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
    run_turn(client, emulator.url, budgeted["id"], scenario(cost=5))
    with pytest.raises(anthropic.BadRequestError) as not_raised:
        client.beta.sessions.update(
            budgeted["id"], budget={"type": "limit", "max_list_cost": {"amount": "5", "currency": "USD"}}
        )
    assert not_raised.value.body["error"]["details"]["error_code"] == "budget_not_raised"  # type: ignore[index]
    raised = client.beta.sessions.update(
        budgeted["id"], budget={"type": "limit", "max_list_cost": {"amount": "500", "currency": "USD"}}
    )
    assert raised.budget is not None and raised.budget.max_list_cost.amount == "500"
    removed = client.beta.sessions.update(budgeted["id"], budget=None)
    assert removed.budget is None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(
            budgeted["id"], budget={"type": "limit", "max_list_cost": {"amount": "900", "currency": "USD"}}
        )


def test_agent_update_refused_while_running(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    send(client, session["id"], scenario(delay=0.2))
    with pytest.raises(anthropic.BadRequestError, match="running"):
        client.beta.sessions.update(session["id"], agent={"tools": []})
    # Title and metadata may change at any time.
    assert client.beta.sessions.update(session["id"], title="while running").title == "while running"
    send(client, session["id"], {"type": "user.interrupt"})


def test_list_filters_order_and_pages(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    agent = make_agent(client)
    env = make_environment(client)
    store = client.beta.memory_stores.create(name="filter store")
    created = []
    for i in range(5):
        resources = [{"type": "memory_store", "memory_store_id": store.id}] if i == 4 else []
        created.append(
            make_session(client, agent=agent.id, environment_id=env.id, title=f"s{i}", resources=resources)
        )
        time.sleep(0.005)
    client.beta.agents.update(agent.id, version=1, system="v2")
    v2 = make_session(client, agent=agent.id, environment_id=env.id)
    other = make_session(client)
    ids = [s["id"] for s in created]

    first = _raw(client.beta.sessions.with_raw_response.list(agent_id=agent.id, limit=2))
    assert [s["id"] for s in first["data"]] == [v2["id"], ids[4]]
    assert first["prev_page"] is None and first["next_page"]
    for item in first["data"]:
        strict(BetaManagedAgentsSession, item)
    second = _raw(
        client.beta.sessions.with_raw_response.list(agent_id=agent.id, limit=2, page=first["next_page"])
    )
    assert [s["id"] for s in second["data"]] == [ids[3], ids[2]]
    assert second["prev_page"]
    back = _raw(
        client.beta.sessions.with_raw_response.list(agent_id=agent.id, limit=2, page=second["prev_page"])
    )
    assert [s["id"] for s in back["data"]] == [s["id"] for s in first["data"]]

    everything = [s.id for s in client.beta.sessions.list(agent_id=agent.id, order="asc", limit=2)]
    assert everything == [*ids, v2["id"]]
    assert other["id"] not in everything
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id, agent_version=2)] == [v2["id"]]
    assert [s.id for s in client.beta.sessions.list(memory_store_id=store.id)] == [ids[4]]
    after = created[2]["created_at"]
    newer = [s.id for s in client.beta.sessions.list(agent_id=agent.id, created_at_gt=after, order="asc")]
    assert newer == [ids[3], ids[4], v2["id"]]
    upto = [s.id for s in client.beta.sessions.list(agent_id=agent.id, created_at_lte=after, order="asc")]
    assert upto == ids[:3]

    client.beta.sessions.archive(ids[0])
    assert ids[0] not in [s.id for s in client.beta.sessions.list(agent_id=agent.id)]
    assert ids[0] in [s.id for s in client.beta.sessions.list(agent_id=agent.id, include_archived=True)]

    send(client, ids[1], scenario(delay=0.3))
    running = [s.id for s in client.beta.sessions.list(statuses=["running"])]
    assert running == [ids[1]]
    send(client, ids[1], {"type": "user.interrupt"})


def test_archive_and_delete(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    run_turn(client, emulator.url, session["id"], message("hello"))
    archived = _raw(client.beta.sessions.with_raw_response.archive(session["id"]))
    strict(BetaManagedAgentsSession, archived)
    assert archived["archived_at"] is not None
    # Archived sessions stay readable.
    assert client.beta.sessions.retrieve(session["id"]).archived_at is not None
    assert types_of(history(client, session["id"]))[-1] == "session.status_idle"

    deleted = _raw(client.beta.sessions.with_raw_response.delete(session["id"]))
    strict(BetaManagedAgentsDeletedSession, deleted)
    assert deleted == {"id": session["id"], "type": "session_deleted"}
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(session["id"])
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.list(session["id"])


async def test_async_client_session_lifecycle(async_client: anthropic.AsyncAnthropic) -> None:
    agent = await async_client.beta.agents.create(name="async", model="claude-opus-4-8")
    env = await async_client.beta.environments.create(
        name="async-env", config={"type": "cloud", "networking": {"type": "unrestricted"}}
    )
    raw = await async_client.beta.sessions.with_raw_response.create(agent=agent.id, environment_id=env.id)
    body = body_of(raw)
    strict(BetaManagedAgentsSession, body)
    listed = [s.id async for s in async_client.beta.sessions.list()]
    assert listed == [body["id"]]
    deleted = await async_client.beta.sessions.delete(body["id"])
    assert deleted.type == "session_deleted"
