"""Memory stores as an auditable output: what a session changed, from the stores' own versions.

Every write to a memory store creates an immutable version (``created`` / ``modified`` /
``deleted``, with actor, path and sha256). A snapshot is the newest version id of each store;
after the run, the versions newer than the snapshot (``memory_versions.list`` is newest first)
are exactly what changed, in the service's own words. No Prefect here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import anthropic
from pydantic import BaseModel, Field

from .exceptions import UnsafeOutputPathError

VERSIONS_PAGE_SIZE = 100


class MemoryChange(BaseModel):
    """One memory version written since the snapshot."""

    store_id: str = Field(description="The memory store.")
    version_id: str = Field(description="The version (memver_...).")
    memory_id: str = Field(description="The memory the version belongs to.")
    operation: str = Field(description="created, modified or deleted.")
    path: str | None = Field(default=None, description="The memory's path (None once redacted).")
    sha256: str | None = Field(
        default=None, description="sha256 of the content (None for deletes, redactions)."
    )
    size_bytes: int | None = Field(default=None, description="Content size in bytes.")
    actor: str = Field(default="", description="Who wrote it, e.g. session_actor:sesn_...")
    created_at: str = Field(default="", description="When the version was written (ISO 8601).")


def _actor(created_by: Any) -> str:
    if created_by is None:
        return ""
    kind = str(getattr(created_by, "type", ""))
    for attr in ("session_id", "api_key_id", "user_id", "service_account_id"):
        value = getattr(created_by, attr, None)
        if value:
            return f"{kind}:{value}"
    return kind


def change_from_version(version: Any) -> MemoryChange:
    """Build a :class:`MemoryChange` from the SDK's ``BetaManagedAgentsMemoryVersion``."""
    created = getattr(version, "created_at", None)
    return MemoryChange(
        store_id=str(version.memory_store_id),
        version_id=str(version.id),
        memory_id=str(version.memory_id),
        operation=str(version.operation),
        path=getattr(version, "path", None),
        sha256=getattr(version, "content_sha256", None),
        size_bytes=getattr(version, "content_size_bytes", None),
        actor=_actor(getattr(version, "created_by", None)),
        created_at=created.isoformat() if created is not None else "",
    )


async def newest_version_id(client: anthropic.AsyncAnthropic, store_id: str) -> str | None:
    """The store's newest version id (the snapshot marker), or None for a store never written."""
    page = await client.beta.memory_stores.memory_versions.list(store_id, limit=1)
    return str(page.data[0].id) if page.data else None


async def versions_since(
    client: anthropic.AsyncAnthropic, store_id: str, marker: str | None
) -> list[MemoryChange]:
    """Versions written after ``marker`` (oldest first), paging newest-first until the marker."""
    newer: list[MemoryChange] = []
    page = await client.beta.memory_stores.memory_versions.list(store_id, limit=VERSIONS_PAGE_SIZE)
    async for version in page:
        if marker is not None and str(version.id) == marker:
            break
        newer.append(change_from_version(version))
    newer.reverse()
    return newer


async def snapshot_stores(
    client: anthropic.AsyncAnthropic, store_ids: Iterable[str]
) -> dict[str, str | None]:
    """Each store's newest version id (``None`` for a store never written): the audit's marker."""
    return {store_id: await newest_version_id(client, store_id) for store_id in store_ids}


async def changes_since(
    client: anthropic.AsyncAnthropic, snapshot: dict[str, str | None]
) -> list[MemoryChange]:
    """Every version written since ``snapshot``, oldest first, store by store."""
    changes: list[MemoryChange] = []
    for store_id, marker in snapshot.items():
        changes += await versions_since(client, store_id, marker)
    return changes


def summarize(changes: Iterable[MemoryChange]) -> dict[str, list[MemoryChange]]:
    """Net effect per memory: ``created``, ``modified`` or ``deleted`` (last version of each).

    A memory created and deleted in the same window is listed as deleted.
    """
    first: dict[str, MemoryChange] = {}
    last: dict[str, MemoryChange] = {}
    for change in changes:
        first.setdefault(change.memory_id, change)
        last[change.memory_id] = change
    result: dict[str, list[MemoryChange]] = {"created": [], "modified": [], "deleted": []}
    for memory_id, change in last.items():
        if change.operation == "deleted":
            result["deleted"].append(change)
        elif first[memory_id].operation == "created":
            result["created"].append(change)
        else:
            result["modified"].append(change)
    return result


def memory_path_for(root: Path, file: Path) -> str:
    """The memory path of a seed file: ``/`` + its path relative to the seed folder (POSIX)."""
    return "/" + file.relative_to(root).as_posix()


def read_seed_folder(folder: Path) -> list[tuple[str, str]]:
    """Every file under ``folder`` as ``(memory path, UTF-8 text)``, sorted by path."""
    return [
        (memory_path_for(folder, file), file.read_text(encoding="utf-8"))
        for file in sorted(p for p in folder.rglob("*") if p.is_file())
    ]


def export_target(folder: Path, memory_path: str) -> Path:
    """Where an exported memory is written; never outside ``folder``.

    Raises:
        UnsafeOutputPathError: The path would escape the folder.
    """
    parts = PurePosixPath(memory_path).parts
    relative = [p for p in parts if p != "/"]
    if not relative or any(p in ("..", ".") or "\\" in p for p in relative):
        raise UnsafeOutputPathError(f"Memory path {memory_path!r} cannot be exported safely.")
    target = folder.joinpath(*relative)
    if not target.resolve().is_relative_to(folder.resolve()):
        raise UnsafeOutputPathError(f"Memory path {memory_path!r} escapes {folder}.")
    return target


def sha256_text(text: str) -> str:
    """Lowercase hex sha256 of the UTF-8 bytes (the API's ``content_sha256``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
