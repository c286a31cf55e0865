"""resolve_memory_stores: by id or name, create when missing, archived and ambiguous stores.

Real SDK over real HTTP against the emulator; the task runs on a real Prefect server.
"""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import pytest

from emulator import EmulatorServer
from managed_agents_core.exceptions import (
    AmbiguousMemoryStoreError,
    MemoryStoreArchivedError,
    MemoryStoreConfigError,
    MemoryStoreNotFoundError,
)
from managed_agents_core.inputs import MemoryStoreAttachment
from tasks.memory import resolve_memory_stores
from tests.integration.outputs_support import credentials_for, run_turn
from tests.integration.session_helpers import create_remote_agent

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _name(prefix: str = "notes") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _store_requests(emulator: EmulatorServer, method: str) -> list[dict[str, Any]]:
    return [
        r for r in emulator.control.requests() if r["method"] == method and r["path"] == "/v1/memory_stores"
    ]


async def test_by_id_and_by_name_with_access_and_instructions(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    by_id = client.beta.memory_stores.create(name=_name())
    named = client.beta.memory_stores.create(name=_name("Team Notes"))
    client.beta.memory_stores.create(name=named.name.upper())  # differs only in case: not a match
    resources = await resolve_memory_stores(
        credentials_for(emulator.url),
        [
            by_id.id,
            MemoryStoreAttachment(
                store=named.name, access="read_only", instructions="Consult before answering."
            ),
        ],
    )
    assert resources == [
        {"type": "memory_store", "memory_store_id": by_id.id, "access": "read_write"},
        {
            "type": "memory_store",
            "memory_store_id": named.id,
            "access": "read_only",
            "instructions": "Consult before answering.",
        },
    ]


async def test_name_found_beyond_the_first_page(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    target = client.beta.memory_stores.create(name=_name("needle"))
    for i in range(105):
        client.beta.memory_stores.create(name=f"hay-{i}")
    [resource] = await resolve_memory_stores(credentials_for(emulator.url), [target.name])
    assert resource["memory_store_id"] == target.id
    assert len(_store_requests(emulator, "GET")) >= 2  # it paged


async def test_ambiguous_name_asks_for_the_id(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    name = _name()
    one = client.beta.memory_stores.create(name=name)
    two = client.beta.memory_stores.create(name=name)
    with pytest.raises(AmbiguousMemoryStoreError) as caught:
        await resolve_memory_stores(credentials_for(emulator.url), [name])
    assert one.id in str(caught.value) and two.id in str(caught.value)
    assert "by its id" in str(caught.value)


async def test_missing_store_and_create_if_missing(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    name = _name("fresh")
    creds = credentials_for(emulator.url)
    with pytest.raises(MemoryStoreNotFoundError, match="create_if_missing"):
        await resolve_memory_stores(creds, [name])
    with pytest.raises(MemoryStoreNotFoundError):
        await resolve_memory_stores(creds, ["memstore_doesnotexist"])

    wanted = MemoryStoreAttachment(store=name, create_if_missing=True, description="Made by the flow.")
    [created] = await resolve_memory_stores(creds, [wanted])
    store = client.beta.memory_stores.retrieve(created["memory_store_id"])
    assert store.name == name and store.description == "Made by the flow."
    assert len(_store_requests(emulator, "POST")) == 1

    emulator.control.clear_requests()
    [again] = await resolve_memory_stores(creds, [wanted])
    assert again == created
    assert _store_requests(emulator, "POST") == []


async def test_create_committed_then_dropped_makes_one_store(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    name = _name("dropped")
    emulator.control.set_faults(commit_then_drop=["POST /v1/memory_stores"], commit_then_drop_times=1)
    [resource] = await resolve_memory_stores(
        credentials_for(emulator.url), [MemoryStoreAttachment(store=name, create_if_missing=True)]
    )
    same_name = [s for s in client.beta.memory_stores.list(limit=100) if s.name == name]
    assert [s.id for s in same_name] == [resource["memory_store_id"]]
    [post] = _store_requests(emulator, "POST")
    assert post["injected"]  # the create was committed and its answer dropped


async def test_archived_stores(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    creds = credentials_for(emulator.url)
    old = client.beta.memory_stores.create(name=_name("old"))
    client.beta.memory_stores.archive(old.id)
    with pytest.raises(MemoryStoreArchivedError, match="archived"):
        await resolve_memory_stores(creds, [old.id])
    with pytest.raises(MemoryStoreArchivedError, match=old.id):
        await resolve_memory_stores(creds, [old.name])
    # An archived store never counts as a match when an active one has the name.
    active = client.beta.memory_stores.create(name=old.name)
    [resource] = await resolve_memory_stores(creds, [old.name])
    assert resource["memory_store_id"] == active.id


async def test_limits_are_checked_before_any_request(emulator: EmulatorServer) -> None:
    creds = credentials_for(emulator.url)
    with pytest.raises(MemoryStoreConfigError, match="at most 8"):
        await resolve_memory_stores(creds, [f"store-{i}" for i in range(9)])
    with pytest.raises(MemoryStoreConfigError, match="4096"):
        await resolve_memory_stores(creds, [{"store": "x", "instructions": "y" * 5000}])
    assert [r for r in emulator.control.requests() if r["path"].startswith("/v1/memory_stores")] == []


async def test_name_and_id_of_the_same_store(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    store = client.beta.memory_stores.create(name=_name())
    with pytest.raises(MemoryStoreConfigError, match="already attached"):
        await resolve_memory_stores(credentials_for(emulator.url), [store.id, store.name])


async def test_resolved_stores_attach_to_a_session(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    writable = client.beta.memory_stores.create(name=_name("rw"))
    readable = client.beta.memory_stores.create(name=_name("ro"))
    resources = await resolve_memory_stores(
        credentials_for(emulator.url),
        [
            writable.name,
            MemoryStoreAttachment(store=readable.id, access="read_only", instructions="Reference only."),
        ],
    )
    agent = create_remote_agent(client)
    session_id = run_turn(client, agent, resources=resources, report=True, memory=True)
    attached = {
        r.memory_store_id: r
        for r in client.beta.sessions.resources.list(session_id)
        if r.type == "memory_store"
    }
    assert attached[writable.id].access == "read_write"
    assert attached[readable.id].access == "read_only"
    assert attached[readable.id].instructions == "Reference only."
    # The scripted agent wrote its report into the read_write store only.
    assert [m for m in client.beta.memory_stores.memories.list(writable.id) if m.type == "memory"]
    assert not [m for m in client.beta.memory_stores.memories.list(readable.id) if m.type == "memory"]
