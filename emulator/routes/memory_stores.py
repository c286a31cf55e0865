"""Memory stores, memories and memory versions (§11). Domain rules live in :mod:`emulator.memory`.

Writes through the API are attributed to ``{"type": "api_actor", "api_key_id": ...}``, where the
id is derived from a hash of the caller's key (the key itself is never stored). Store lists are
newest first; memory lists are ordered by path.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ApiError, not_found
from ..ids import new_id, now_iso
from ..listing import created_between
from ..memory import (
    check_writable,
    create_memory,
    delete_memory,
    delete_store,
    get_memory,
    get_store,
    list_store_memories,
    modify_memory,
    precondition_failed,
)
from ..metadata import check_metadata, patch_metadata
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep

router = APIRouter(prefix="/v1")

View = Literal["basic", "full"]
FULL_VIEW_PAGE = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreCreate(_Strict):
    """Body of ``POST /v1/memory_stores``."""

    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=1024)
    metadata: dict[str, str] = Field(default_factory=dict)


class StoreUpdate(_Strict):
    """Body of ``POST /v1/memory_stores/{id}``."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1024)
    metadata: dict[str, str | None] | None = None


class MemoryCreate(_Strict):
    """Body of ``POST .../memories``."""

    path: str
    content: str | None


class PreconditionIn(_Strict):
    """``{"type": "content_sha256", "content_sha256"}``."""

    type: Literal["content_sha256"]
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class MemoryUpdate(_Strict):
    """Body of ``POST``/``PATCH .../memories/{id}``."""

    content: str | None = None
    path: str | None = None
    precondition: PreconditionIn | None = None


def api_actor(request: Request) -> dict[str, Any]:
    """The actor recorded for writes made with the request's API key."""
    key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    return {"type": "api_actor", "api_key_id": "apikey_" + hashlib.sha256(key.encode()).hexdigest()[:24]}


def _no_control_chars(name: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ApiError(400, "name must not contain control characters.")
    return name


def _memory_view(memory: dict[str, Any], view: str) -> dict[str, Any]:
    return memory if view == "full" else {**memory, "content": None}


def _version_view(version: dict[str, Any], view: str) -> dict[str, Any]:
    return version if view == "full" else {**version, "content": None}


def _page_size(limit: int | None, view: str) -> int | None:
    """With ``view=full`` a page holds at most 20 items (out-of-range limits still fail)."""
    if view != "full" or limit is None or not 1 <= limit <= 100:
        return limit
    return min(limit, FULL_VIEW_PAGE)


@router.post("/memory_stores")
async def create_store(body: StoreCreate, emulator: EmulatorDep) -> dict[str, Any]:
    """Create a memory store."""
    now = now_iso()
    store: dict[str, Any] = {
        "type": "memory_store",
        "id": new_id("memstore"),
        "name": _no_control_chars(body.name),
        "description": body.description,
        "metadata": check_metadata(body.metadata),
        "created_at": now,
        "updated_at": now,
        "archived_at": None,
    }
    emulator.store.memory_stores[store["id"]] = store
    emulator.save()
    return store


@router.get("/memory_stores/{store_id}")
async def retrieve_store(store_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return a memory store."""
    return get_store(emulator, store_id)


@router.post("/memory_stores/{store_id}")
async def update_store(store_id: str, body: StoreUpdate, emulator: EmulatorDep) -> dict[str, Any]:
    """Update name, description or metadata (patch)."""
    store = get_store(emulator, store_id)
    if store["archived_at"] is not None:
        raise ApiError(
            400,
            f"memory store {store_id!r} is archived and cannot be updated.",
            error_code="memory_store_archived",
        )
    sent = body.model_fields_set
    updated = dict(store)
    if "name" in sent:
        if body.name is None:
            raise ApiError(400, "name cannot be cleared.")
        updated["name"] = _no_control_chars(body.name)
    if "description" in sent:
        updated["description"] = body.description or ""
    if "metadata" in sent and body.metadata is not None:
        updated["metadata"] = patch_metadata(store["metadata"], body.metadata)
    if updated != store:
        updated["updated_at"] = now_iso()
        emulator.store.memory_stores[store_id] = updated
        emulator.save()
    return updated


@router.get("/memory_stores")
async def list_stores(
    emulator: EmulatorDep,
    created_at_gte: Annotated[str | None, Query(alias="created_at[gte]")] = None,
    created_at_lte: Annotated[str | None, Query(alias="created_at[lte]")] = None,
    include_archived: bool = False,
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List memory stores, newest first."""
    stores = [
        s for s in emulator.store.memory_stores.values() if include_archived or s["archived_at"] is None
    ]
    items = created_between(stores, created_at_gte, created_at_lte)
    items.reverse()
    return paginate(items, limit=limit, page=page, order="desc")


@router.post("/memory_stores/{store_id}/archive")
async def archive_store(store_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive a store (permanent): no new sessions, no memory writes."""
    store = get_store(emulator, store_id)
    if store["archived_at"] is None:
        now = now_iso()
        store.update(archived_at=now, updated_at=now)
        emulator.save()
    return store


@router.delete("/memory_stores/{store_id}")
async def remove_store(store_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete a store with its memories and versions."""
    delete_store(emulator, store_id)
    return {"id": store_id, "type": "memory_store_deleted"}


@router.post("/memory_stores/{store_id}/memories")
async def create_memory_route(
    store_id: str, body: MemoryCreate, request: Request, emulator: EmulatorDep, view: View = "basic"
) -> dict[str, Any]:
    """Create a memory at a new path."""
    if body.content is None:
        raise ApiError(400, 'content is required (send "" for an empty memory).')
    memory = create_memory(emulator, store_id, body.path, body.content, actor=api_actor(request))
    return _memory_view(memory, view)


@router.get("/memory_stores/{store_id}/memories/{memory_id}")
async def retrieve_memory(
    store_id: str, memory_id: str, emulator: EmulatorDep, view: View = "full"
) -> dict[str, Any]:
    """Return a memory (content included by default)."""
    return _memory_view(get_memory(emulator, store_id, memory_id), view)


@router.api_route("/memory_stores/{store_id}/memories/{memory_id}", methods=["POST", "PATCH"])
async def update_memory(
    store_id: str,
    memory_id: str,
    body: MemoryUpdate,
    request: Request,
    emulator: EmulatorDep,
    view: View = "basic",
) -> dict[str, Any]:
    """Change content and/or path, optionally only if the content hash still matches."""
    memory = get_memory(emulator, store_id, memory_id)
    check_writable(get_store(emulator, store_id))
    if body.precondition is not None and body.precondition.content_sha256 != memory["content_sha256"]:
        raise precondition_failed(
            f"memory {memory_id!r} has content_sha256 {memory['content_sha256']}, "
            f"not {body.precondition.content_sha256}."
        )
    updated = modify_memory(emulator, memory, content=body.content, path=body.path, actor=api_actor(request))
    return _memory_view(updated, view)


@router.get("/memory_stores/{store_id}/memories")
async def list_memories(
    store_id: str,
    emulator: EmulatorDep,
    path_prefix: str | None = None,
    depth: Annotated[int, Query(ge=0)] = 0,
    view: View = "basic",
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List memories below ``path_prefix``; with ``depth`` N deeper paths roll up into prefixes."""
    prefix = "/" if path_prefix is None else path_prefix
    if not prefix.startswith("/") or not prefix.endswith("/"):
        raise ApiError(400, "path_prefix must start and end with '/'.")
    items: list[dict[str, Any]] = []
    rolled: set[str] = set()
    for memory in list_store_memories(emulator, store_id):
        if not memory["path"].startswith(prefix):
            continue
        rest = memory["path"][len(prefix) :].split("/")
        if depth and len(rest) > depth:
            folder = prefix + "/".join(rest[:depth]) + "/"
            if folder not in rolled:
                rolled.add(folder)
                items.append({"type": "memory_prefix", "path": folder})
            continue
        items.append(_memory_view(memory, view))
    items.sort(key=lambda item: item["path"])
    return paginate(items, limit=_page_size(limit, view), page=page, order=f"path:{view}")


@router.delete("/memory_stores/{store_id}/memories/{memory_id}")
async def remove_memory(
    store_id: str,
    memory_id: str,
    request: Request,
    emulator: EmulatorDep,
    expected_content_sha256: str | None = None,
) -> dict[str, Any]:
    """Delete a memory, optionally only if its content hash matches."""
    memory = get_memory(emulator, store_id, memory_id)
    if expected_content_sha256 is not None and expected_content_sha256 != memory["content_sha256"]:
        raise precondition_failed(
            f"memory {memory_id!r} has content_sha256 {memory['content_sha256']}, not {expected_content_sha256}."
        )
    delete_memory(emulator, memory, actor=api_actor(request))
    return {"id": memory_id, "type": "memory_deleted"}


def _get_version(emulator: Emulator, store_id: str, version_id: str) -> dict[str, Any]:
    get_store(emulator, store_id)
    version = emulator.store.memory_versions.get(version_id)
    if version is None or version["memory_store_id"] != store_id:
        raise not_found("memory_version", version_id)
    return version


@router.get("/memory_stores/{store_id}/memory_versions")
async def list_versions(
    store_id: str,
    emulator: EmulatorDep,
    memory_id: str | None = None,
    operation: Literal["created", "modified", "deleted"] | None = None,
    session_id: str | None = None,
    api_key_id: str | None = None,
    service_account_id: str | None = None,
    created_at_gte: Annotated[str | None, Query(alias="created_at[gte]")] = None,
    created_at_lte: Annotated[str | None, Query(alias="created_at[lte]")] = None,
    view: View = "basic",
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List a store's memory versions, newest first, with the documented filters."""
    get_store(emulator, store_id)
    wanted_actor = {
        "session_id": session_id,
        "api_key_id": api_key_id,
        "service_account_id": service_account_id,
    }
    versions = []
    for version in reversed(emulator.store.memory_versions.values()):
        if version["memory_store_id"] != store_id:
            continue
        if memory_id is not None and version["memory_id"] != memory_id:
            continue
        if operation is not None and version["operation"] != operation:
            continue
        actor = version.get("created_by") or {}
        if any(value is not None and actor.get(key) != value for key, value in wanted_actor.items()):
            continue
        versions.append(version)
    items = [_version_view(v, view) for v in created_between(versions, created_at_gte, created_at_lte)]
    return paginate(items, limit=_page_size(limit, view), page=page, order=f"desc:{view}")


@router.get("/memory_stores/{store_id}/memory_versions/{version_id}")
async def retrieve_version(
    store_id: str, version_id: str, emulator: EmulatorDep, view: View = "full"
) -> dict[str, Any]:
    """Return one memory version."""
    return _version_view(_get_version(emulator, store_id, version_id), view)


@router.post("/memory_stores/{store_id}/memory_versions/{version_id}/redact")
async def redact_version(
    store_id: str, version_id: str, request: Request, emulator: EmulatorDep
) -> dict[str, Any]:
    """Null a version's content, hash, size and path; keep its actor and timestamps."""
    version = _get_version(emulator, store_id, version_id)
    if version["redacted_at"] is not None:
        return version
    live = emulator.store.memories.get(version["memory_id"])
    if live is not None and live["memory_version_id"] == version_id:
        raise ApiError(
            400,
            f"version {version_id!r} is the current content of memory {live['id']!r}; "
            "update or delete the memory before redacting it.",
        )
    version.update(
        content=None,
        content_sha256=None,
        content_size_bytes=None,
        path=None,
        redacted_at=now_iso(),
        redacted_by=api_actor(request),
    )
    emulator.save()
    return version


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes (and any services it needs) on the app."""
    app.include_router(router)
