"""Memory stores, memories and memory versions through the real SDK, validated strictly."""

from __future__ import annotations

import hashlib
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedMemoryStore, BetaManagedAgentsMemoryStore
from anthropic.types.beta.memory_stores import (
    BetaManagedAgentsDeletedMemory,
    BetaManagedAgentsMemory,
    BetaManagedAgentsMemoryListItem,
    BetaManagedAgentsMemoryVersion,
)

from emulator import EmulatorServer
from emulator.memory import list_store_memories, mount_slug, write_memory
from emulator.runtime import Emulator
from tests.contract.strict import body_of, strict


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _items(raw: Any, model: Any) -> tuple[list[Any], dict[str, Any]]:
    body = body_of(raw)
    assert set(body) == {"data", "next_page"}
    return [strict(model, item) for item in body["data"]], body


def _conflict_body(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    return body


def test_store_lifecycle(client: anthropic.Anthropic) -> None:
    raw = client.beta.memory_stores.with_raw_response.create(name="User Preferences", metadata={"user": "u1"})
    store = strict(BetaManagedAgentsMemoryStore, body_of(raw))
    assert store.id.startswith("memstore_") and store.description == "" and store.archived_at is None
    updated = strict(
        BetaManagedAgentsMemoryStore,
        body_of(
            client.beta.memory_stores.with_raw_response.update(
                store.id, description="prefs", metadata={"user": None, "team": "t"}
            )
        ),
    )
    assert updated.description == "prefs" and updated.metadata == {"team": "t"}
    other = client.beta.memory_stores.create(name="Other")
    listed, _ = _items(
        client.beta.memory_stores.with_raw_response.list(limit=1), BetaManagedAgentsMemoryStore
    )
    assert [s.id for s in listed] == [other.id]
    assert [s.id for s in client.beta.memory_stores.list(limit=1)] == [other.id, store.id]
    archived = strict(
        BetaManagedAgentsMemoryStore, body_of(client.beta.memory_stores.with_raw_response.archive(store.id))
    )
    assert archived.archived_at is not None
    assert [s.id for s in client.beta.memory_stores.list()] == [other.id]
    assert len(list(client.beta.memory_stores.list(include_archived=True))) == 2
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(store.id, name="renamed")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/a.md", content="x")
    deleted = strict(
        BetaManagedAgentsDeletedMemoryStore,
        body_of(client.beta.memory_stores.with_raw_response.delete(store.id)),
    )
    assert (deleted.id, deleted.type) == (store.id, "memory_store_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.retrieve(store.id)


def test_memory_create_retrieve_views(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    raw = client.beta.memory_stores.memories.with_raw_response.create(
        store.id, path="/prefs.md", content="tabs"
    )
    memory = strict(BetaManagedAgentsMemory, body_of(raw))
    assert memory.id.startswith("mem_") and memory.content is None  # basic view on create
    assert (memory.content_sha256, memory.content_size_bytes) == (_sha("tabs"), 4)
    full = strict(
        BetaManagedAgentsMemory,
        body_of(
            client.beta.memory_stores.memories.with_raw_response.retrieve(memory.id, memory_store_id=store.id)
        ),
    )
    assert full.content == "tabs" and full.memory_version_id == memory.memory_version_id
    basic = client.beta.memory_stores.memories.retrieve(memory.id, memory_store_id=store.id, view="basic")
    assert basic.content is None
    with pytest.raises(anthropic.ConflictError) as info:
        client.beta.memory_stores.memories.create(store.id, path="/prefs.md", content="spaces")
    error = _conflict_body(info.value)["error"]
    assert error["type"] == "memory_path_conflict_error"
    assert error["details"]["error_code"] == "memory_path_conflict_error"
    assert error["conflicting_memory_id"] == memory.id
    for bad in ("prefs.md", "/a//b", "/a/../b", "/a/", "/x\u2028y", "/" + "/".join(["s"] * 21)):
        with pytest.raises(anthropic.BadRequestError):
            client.beta.memory_stores.memories.create(store.id, path=bad, content="x")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.create(store.id, path="/big.md", content="x" * 102_401)


def test_memory_update_precondition_rename_and_patch(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    memory = client.beta.memory_stores.memories.create(store.id, path="/a.md", content="one")
    client.beta.memory_stores.memories.create(store.id, path="/taken.md", content="t")
    with pytest.raises(anthropic.ConflictError) as info:
        client.beta.memory_stores.memories.update(
            memory.id,
            memory_store_id=store.id,
            content="two",
            precondition={"type": "content_sha256", "content_sha256": _sha("stale")},
        )
    assert _conflict_body(info.value)["error"]["type"] == "memory_precondition_failed_error"
    raw = client.beta.memory_stores.memories.with_raw_response.update(
        memory.id,
        memory_store_id=store.id,
        content="two",
        precondition={"type": "content_sha256", "content_sha256": _sha("one")},
        view="full",
    )
    updated = strict(BetaManagedAgentsMemory, body_of(raw))
    assert updated.content == "two" and updated.memory_version_id != memory.memory_version_id
    with pytest.raises(anthropic.ConflictError) as info:
        client.beta.memory_stores.memories.update(memory.id, memory_store_id=store.id, path="/taken.md")
    assert _conflict_body(info.value)["error"]["type"] == "memory_path_conflict_error"
    renamed = client.beta.memory_stores.memories.update(
        memory.id, memory_store_id=store.id, path="/docs/a.md"
    )
    assert renamed.id == memory.id and renamed.path == "/docs/a.md"
    # The docs' PATCH form is accepted too.
    patched = client.patch(
        f"/v1/memory_stores/{store.id}/memories/{memory.id}",
        body={"content": "three"},
        cast_to=object,
        options={"headers": {"anthropic-beta": "agent-memory-2026-07-22"}},
    )
    assert isinstance(patched, dict)
    assert strict(BetaManagedAgentsMemory, patched).content_sha256 == _sha("three")


def test_list_prefix_depth_and_pagination(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    for path in (
        "/notes/todo.md",
        "/notes/deep/x.md",
        "/notes/deep/y.md",
        "/notes-archive/old.md",
        "/root.md",
    ):
        client.beta.memory_stores.memories.create(store.id, path=path, content=path)
    items, _ = _items(
        client.beta.memory_stores.memories.with_raw_response.list(store.id, path_prefix="/notes/", depth=1),
        BetaManagedAgentsMemoryListItem,
    )
    assert [(i.type, i.path) for i in items] == [
        ("memory_prefix", "/notes/deep/"),
        ("memory", "/notes/todo.md"),
    ]
    everything = [m.path for m in client.beta.memory_stores.memories.list(store.id, path_prefix="/notes/")]
    assert everything == ["/notes/deep/x.md", "/notes/deep/y.md", "/notes/todo.md"]
    top = [(i.type, i.path) for i in client.beta.memory_stores.memories.list(store.id, depth=1)]
    assert top == [("memory_prefix", "/notes-archive/"), ("memory_prefix", "/notes/"), ("memory", "/root.md")]
    paged = list(client.beta.memory_stores.memories.list(store.id, limit=2, view="full"))
    assert len(paged) == 5 and all(getattr(m, "content", None) == m.path for m in paged)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memories.list(store.id, path_prefix="/notes")


def test_delete_and_versions(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    memory = client.beta.memory_stores.memories.create(store.id, path="/a.md", content="one")
    client.beta.memory_stores.memories.update(memory.id, memory_store_id=store.id, content="two")
    with pytest.raises(anthropic.ConflictError):
        client.beta.memory_stores.memories.delete(
            memory.id, memory_store_id=store.id, expected_content_sha256=_sha("one")
        )
    raw = client.beta.memory_stores.memories.with_raw_response.delete(
        memory.id, memory_store_id=store.id, expected_content_sha256=_sha("two")
    )
    deleted = strict(BetaManagedAgentsDeletedMemory, body_of(raw))
    assert (deleted.id, deleted.type) == (memory.id, "memory_deleted")
    versions, _ = _items(
        client.beta.memory_stores.memory_versions.with_raw_response.list(store.id, memory_id=memory.id),
        BetaManagedAgentsMemoryVersion,
    )
    assert [v.operation for v in versions] == ["deleted", "modified", "created"]
    assert all(v.content is None for v in versions)  # basic view
    assert versions[0].content_sha256 is None and versions[1].content_sha256 == _sha("two")
    assert versions[2].created_by is not None and versions[2].created_by.type == "api_actor"
    only_created = list(client.beta.memory_stores.memory_versions.list(store.id, operation="created"))
    assert [v.id for v in only_created] == [versions[2].id]
    full = strict(
        BetaManagedAgentsMemoryVersion,
        body_of(
            client.beta.memory_stores.memory_versions.with_raw_response.retrieve(
                versions[1].id, memory_store_id=store.id
            )
        ),
    )
    assert full.content == "two" and full.path == "/a.md"
    redacted = strict(
        BetaManagedAgentsMemoryVersion,
        body_of(
            client.beta.memory_stores.memory_versions.with_raw_response.redact(
                versions[1].id, memory_store_id=store.id
            )
        ),
    )
    assert redacted.redacted_at is not None and redacted.redacted_by is not None
    assert (redacted.content, redacted.content_sha256, redacted.content_size_bytes, redacted.path) == (
        None,
    ) * 4
    assert redacted.created_by == versions[1].created_by


def test_redacting_live_head_is_refused(client: anthropic.Anthropic) -> None:
    store = client.beta.memory_stores.create(name="s")
    memory = client.beta.memory_stores.memories.create(store.id, path="/a.md", content="one")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.memory_versions.redact(memory.memory_version_id, memory_store_id=store.id)


def test_session_writes_via_domain_module(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    """The session engine writes memories with ``write_memory``; the API then shows them."""
    live = emulator.app.state.emulator
    assert isinstance(live, Emulator)
    store = client.beta.memory_stores.create(name="Team Notes!")
    assert mount_slug(store.name) == "team-notes"
    actor = {"type": "session_actor", "session_id": "sesn_011Cabc"}
    first = write_memory(live, store.id, "/log.md", "a", actor=actor)
    second = write_memory(live, store.id, "/log.md", "b", actor=actor)
    assert first["id"] == second["id"]
    assert [m["content"] for m in list_store_memories(live, store.id)] == ["b"]
    versions = list(client.beta.memory_stores.memory_versions.list(store.id, session_id="sesn_011Cabc"))
    assert [v.operation for v in versions] == ["modified", "created"]
    assert all(v.created_by is not None and v.created_by.type == "session_actor" for v in versions)
    assert list(client.beta.memory_stores.memory_versions.list(store.id, session_id="sesn_other")) == []


async def test_async_memory_roundtrip(async_client: anthropic.AsyncAnthropic) -> None:
    store = await async_client.beta.memory_stores.create(name="async")
    raw = await async_client.beta.memory_stores.memories.with_raw_response.create(
        store.id, path="/x.md", content="x"
    )
    memory = strict(BetaManagedAgentsMemory, body_of(raw))
    updated = await async_client.beta.memory_stores.memories.update(
        memory.id, memory_store_id=store.id, content="y"
    )
    assert updated.content_sha256 == _sha("y")
    paths = [m.path async for m in async_client.beta.memory_stores.memories.list(store.id)]
    assert paths == ["/x.md"]
    versions = [v.operation async for v in async_client.beta.memory_stores.memory_versions.list(store.id)]
    assert versions == ["modified", "created"]
    deleted = await async_client.beta.memory_stores.delete(store.id)
    assert deleted.type == "memory_store_deleted"
