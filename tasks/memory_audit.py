"""Memory-store tasks: snapshot and diff around a session, seed from files, export, redact.

``snapshot_memory_stores`` before the run and ``memory_changes`` after it turn the stores' own
version history into what the session created, modified and deleted (paths, version ids,
sha256), which the session report shows. ``seed_memories`` / ``export_memories`` move memories between a
store and a folder; ``redact_memory_version`` scrubs a version's content through the API.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, RUN_ID
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.credentials import AnthropicCredentials
from managed_agents_core.memory_audit import (
    MemoryChange,
    change_from_version,
    changes_since,
    export_target,
    read_seed_folder,
    sha256_text,
    snapshot_stores,
)
from tasks.retry import TRANSIENT_RETRY_OPTIONS


class SeededMemory(BaseModel):
    """What seeding did with one file."""

    path: str = Field(description="The memory path.")
    memory_id: str = Field(description="The memory's id.")
    action: str = Field(description="created, updated or unchanged.")
    sha256: str = Field(description="sha256 of the content.")


@task(
    name="snapshot-memory-stores",
    cache_policy=RUN_ID + INPUTS,
    persist_result=True,
    result_serializer="json",
    **TRANSIENT_RETRY_OPTIONS,
)
async def snapshot_memory_stores(
    credentials: AnthropicCredentials, store_ids: list[str]
) -> dict[str, str | None]:
    """Record each store's newest version id (``None`` for a store never written).

    Cached on the flow run: a retried or resumed run diffs against its first snapshot, so what
    the session wrote before the retry is still listed.

    Args:
        credentials: API credentials.
        store_ids: The memory stores (``memstore_...``).
    """
    async with credentials.get_async_client() as client:
        return await snapshot_stores(client, store_ids)


@task(name="memory-changes", **TRANSIENT_RETRY_OPTIONS)
async def memory_changes(
    credentials: AnthropicCredentials, snapshot: dict[str, str | None]
) -> list[MemoryChange]:
    """Every version written since ``snapshot``, oldest first, store by store."""
    async with credentials.get_async_client() as client:
        return await changes_since(client, snapshot)


@task(name="seed-memories", **TRANSIENT_RETRY_OPTIONS)
async def seed_memories(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[SeededMemory]:
    """Write every file under ``folder`` as a memory at ``/<relative path>`` (idempotent).

    An existing memory is updated only when its content differs (with a sha256 precondition, so
    a concurrent edit fails loudly instead of being overwritten).

    Args:
        credentials: API credentials.
        store_id: The memory store.
        folder: A local folder of UTF-8 text files.
    """
    root = Path(folder)
    existing: dict[str, tuple[str, str]] = {}
    seeded: list[SeededMemory] = []
    async with credentials.get_async_client() as client:
        page = await client.beta.memory_stores.memories.list(store_id, limit=100)
        async for item in page:
            if getattr(item, "type", "") == "memory":
                existing[str(item.path)] = (str(item.id), str(item.content_sha256))  # type: ignore[union-attr]
        for path, content in await asyncio.to_thread(read_seed_folder, root):
            digest = sha256_text(content)
            if path not in existing:
                memory = await client.beta.memory_stores.memories.create(store_id, path=path, content=content)
                seeded.append(SeededMemory(path=path, memory_id=memory.id, action="created", sha256=digest))
                continue
            memory_id, current = existing[path]
            if current == digest:
                seeded.append(SeededMemory(path=path, memory_id=memory_id, action="unchanged", sha256=digest))
                continue
            await client.beta.memory_stores.memories.update(
                memory_id,
                memory_store_id=store_id,
                content=content,
                precondition={"type": "content_sha256", "content_sha256": current},
            )
            seeded.append(SeededMemory(path=path, memory_id=memory_id, action="updated", sha256=digest))
    get_run_logger().info(
        "Seeded %d memories into %s (%d unchanged)",
        len(seeded),
        store_id,
        sum(s.action == "unchanged" for s in seeded),
    )
    return seeded


@task(name="export-memories", **TRANSIENT_RETRY_OPTIONS)
async def export_memories(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[str]:
    """Write every memory of the store to ``folder/<path>`` (atomically; paths stay inside).

    Returns:
        The written file paths.
    """
    root = Path(folder)
    written: list[str] = []
    async with credentials.get_async_client() as client:
        page = await client.beta.memory_stores.memories.list(store_id, limit=100)
        async for item in page:
            if getattr(item, "type", "") != "memory":
                continue
            memory = await client.beta.memory_stores.memories.retrieve(
                str(item.id),  # type: ignore[union-attr]
                memory_store_id=store_id,
                view="full",
            )
            target = export_target(root, memory.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(memory.content or "")
            os.replace(tmp, target)
            written.append(str(target))
    get_run_logger().info("Exported %d memories of %s to %s", len(written), store_id, folder)
    return written


@task(name="redact-memory-version", **TRANSIENT_RETRY_OPTIONS)
async def redact_memory_version(
    credentials: AnthropicCredentials, store_id: str, version_id: str
) -> MemoryChange:
    """Redact one version (its content, hash and path are removed; actor and times stay).

    Idempotent. The API refuses (400) to redact the version that is a live memory's current
    content: update or delete the memory first, then redact the old version.

    Returns:
        The redacted version as a :class:`MemoryChange`.
    """
    async with credentials.get_async_client() as client:
        version = await client.beta.memory_stores.memory_versions.redact(version_id, memory_store_id=store_id)
    get_run_logger().info("Redacted memory version %s of %s", version_id, store_id)
    return change_from_version(version)
