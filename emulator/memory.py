"""Memory stores, memories and their versions (§11), shared by the routes and the session engine.

Objects live in ``emulator.store.memory_stores``, ``.memories`` and ``.memory_versions`` as the
JSON the API returns (memories with ``content`` always filled; views strip it). Versions are kept
in insertion order, so "newest first" is the reverse of the dict.

Decisions where the reference says UNKNOWN:

* The named 409s put their name in **both** ``error.type`` and ``error.details.error_code``
  (``memory_path_conflict_error``, ``memory_precondition_failed_error``); a path conflict also
  carries ``error.conflicting_memory_id``.
* Creating or updating memories in an archived store, and updating an archived store, is a 400
  with ``error_code: memory_store_archived``.
* An update that changes neither content nor path writes no version and returns the memory as is.
* The version that is the current head of a live memory cannot be redacted (400); update or
  delete the memory first.
* The mount slug strips leading and trailing hyphens and falls back to ``memory`` when empty.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from .errors import ApiError, not_found
from .ids import new_id, now_iso
from .runtime import Emulator

MAX_CONTENT_BYTES = 102_400
MAX_PATH_BYTES = 1024
MAX_SEGMENTS = 20
_SLUG_RUN = re.compile(r"[^a-z0-9]+")


def mount_slug(name: str) -> str:
    """Return the directory name of a store under ``/mnt/memory/`` (``User Prefs`` -> ``user-prefs``)."""
    return _SLUG_RUN.sub("-", name.lower()).strip("-") or "memory"


def get_store(emulator: Emulator, store_id: str) -> dict[str, Any]:
    """Return a memory store.

    Raises:
        ApiError: 404 when unknown or deleted.
    """
    store = emulator.store.memory_stores.get(store_id)
    if store is None:
        raise not_found("memory_store", store_id)
    return store


def list_store_memories(emulator: Emulator, store_id: str) -> list[dict[str, Any]]:
    """Return every memory of a store (content included), sorted by path."""
    get_store(emulator, store_id)
    memories = [m for m in emulator.store.memories.values() if m["memory_store_id"] == store_id]
    return sorted(memories, key=lambda m: m["path"])


def get_memory(emulator: Emulator, store_id: str, memory_id: str) -> dict[str, Any]:
    """Return a memory of a store (404 when the store or memory is unknown)."""
    get_store(emulator, store_id)
    memory = emulator.store.memories.get(memory_id)
    if memory is None or memory["memory_store_id"] != store_id:
        raise not_found("memory", memory_id)
    return memory


def sha256_hex(content: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes (no normalisation)."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def check_path(path: str) -> str:
    """Validate a memory path (§11) and return it.

    Raises:
        ApiError: 400 describing the first broken rule.
    """
    if not path.startswith("/"):
        raise ApiError(400, f"memory path {path!r} must start with '/'.")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise ApiError(400, f"memory path is longer than {MAX_PATH_BYTES} bytes.")
    if not unicodedata.is_normalized("NFC", path):
        raise ApiError(400, f"memory path {path!r} must be in Unicode NFC form.")
    for ch in path:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ApiError(400, f"memory path {path!r} contains a control or format character.")
    segments = path[1:].split("/")
    if not 1 <= len(segments) <= MAX_SEGMENTS:
        raise ApiError(400, f"memory path must have 1 to {MAX_SEGMENTS} segments.")
    if any(s in ("", ".", "..") for s in segments):
        raise ApiError(400, f"memory path {path!r} has an empty, '.' or '..' segment.")
    return path


def check_content(content: str) -> str:
    """Reject content over 100 kB (UTF-8 bytes)."""
    if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise ApiError(400, f"memory content is larger than {MAX_CONTENT_BYTES} bytes.")
    return content


def check_writable(store: dict[str, Any]) -> None:
    """400 ``memory_store_archived`` when the store is archived."""
    if store.get("archived_at") is not None:
        raise ApiError(
            400,
            f"memory store {store['id']!r} is archived; its memories are read-only.",
            error_code="memory_store_archived",
        )


def memory_at_path(emulator: Emulator, store_id: str, path: str) -> dict[str, Any] | None:
    """Return the memory at ``path`` in the store, if any."""
    for memory in emulator.store.memories.values():
        if memory["memory_store_id"] == store_id and memory["path"] == path:
            return memory
    return None


def path_conflict(path: str, memory_id: str) -> ApiError:
    """The 409 for a path that another memory already holds."""
    return ApiError(
        409,
        f"a memory already exists at {path!r}.",
        error_type="memory_path_conflict_error",
        error_code="memory_path_conflict_error",
        extra={"conflicting_memory_id": memory_id},
    )


def precondition_failed(message: str) -> ApiError:
    """The 409 for a failed ``content_sha256`` precondition."""
    return ApiError(
        409,
        message,
        error_type="memory_precondition_failed_error",
        error_code="memory_precondition_failed_error",
    )


def _append_version(
    emulator: Emulator, memory: dict[str, Any], operation: str, actor: dict[str, Any], now: str
) -> dict[str, Any]:
    deleted = operation == "deleted"
    version = {
        "type": "memory_version",
        "id": new_id("memver"),
        "memory_id": memory["id"],
        "memory_store_id": memory["memory_store_id"],
        "operation": operation,
        "path": memory["path"],
        "content": None if deleted else memory["content"],
        "content_sha256": None if deleted else memory["content_sha256"],
        "content_size_bytes": None if deleted else memory["content_size_bytes"],
        "created_by": dict(actor),
        "redacted_at": None,
        "redacted_by": None,
        "created_at": now,
    }
    emulator.store.memory_versions[version["id"]] = version
    return version


def create_memory(
    emulator: Emulator, store_id: str, path: str, content: str, *, actor: dict[str, Any]
) -> dict[str, Any]:
    """Create a memory at a free path (409 ``memory_path_conflict_error`` when taken)."""
    store = get_store(emulator, store_id)
    check_writable(store)
    check_path(path)
    check_content(content)
    existing = memory_at_path(emulator, store_id, path)
    if existing is not None:
        raise path_conflict(path, existing["id"])
    now = now_iso()
    memory: dict[str, Any] = {
        "type": "memory",
        "id": new_id("mem"),
        "memory_store_id": store_id,
        "path": path,
        "content": content,
        "content_sha256": sha256_hex(content),
        "content_size_bytes": len(content.encode("utf-8")),
        "memory_version_id": "",
        "created_at": now,
        "updated_at": now,
    }
    memory["memory_version_id"] = _append_version(emulator, memory, "created", actor, now)["id"]
    emulator.store.memories[memory["id"]] = memory
    emulator.save()
    return memory


def modify_memory(
    emulator: Emulator,
    memory: dict[str, Any],
    *,
    content: str | None,
    path: str | None,
    actor: dict[str, Any],
) -> dict[str, Any]:
    """Change a memory's content and/or path (rename), appending a ``modified`` version."""
    store = get_store(emulator, memory["memory_store_id"])
    check_writable(store)
    new_path = memory["path"] if path is None else check_path(path)
    new_content = memory["content"] if content is None else check_content(content)
    if new_path == memory["path"] and new_content == memory["content"]:
        return memory
    if new_path != memory["path"]:
        occupant = memory_at_path(emulator, memory["memory_store_id"], new_path)
        if occupant is not None:
            raise path_conflict(new_path, occupant["id"])
    now = now_iso()
    memory.update(
        path=new_path,
        content=new_content,
        content_sha256=sha256_hex(new_content),
        content_size_bytes=len(new_content.encode("utf-8")),
        updated_at=now,
    )
    memory["memory_version_id"] = _append_version(emulator, memory, "modified", actor, now)["id"]
    emulator.save()
    return memory


def delete_memory(emulator: Emulator, memory: dict[str, Any], *, actor: dict[str, Any]) -> None:
    """Delete a memory, appending a ``deleted`` version (its versions stay)."""
    _append_version(emulator, memory, "deleted", actor, now_iso())
    del emulator.store.memories[memory["id"]]
    emulator.save()


def write_memory(
    emulator: Emulator, store_id: str, path: str, content: str, *, actor: dict[str, Any]
) -> dict[str, Any]:
    """Create or modify the memory at ``path`` (what an agent's file write does).

    Args:
        emulator: The emulator.
        store_id: The ``memstore_...`` id.
        path: The memory path inside the store (``/notes/todo.md``).
        content: The new UTF-8 content.
        actor: Who writes, e.g. ``{"type": "session_actor", "session_id": "sesn_..."}``.

    Returns:
        The memory (content included).

    Raises:
        ApiError: 404 for an unknown store, 400 for an archived store, a bad path or content
            over 100 kB.
    """
    existing = memory_at_path(emulator, store_id, path)
    if existing is None:
        return create_memory(emulator, store_id, path, content, actor=actor)
    return modify_memory(emulator, existing, content=content, path=None, actor=actor)


def delete_store(emulator: Emulator, store_id: str) -> None:
    """Delete a store with all its memories and versions."""
    get_store(emulator, store_id)
    del emulator.store.memory_stores[store_id]
    for table in (emulator.store.memories, emulator.store.memory_versions):
        for key in [k for k, v in table.items() if v["memory_store_id"] == store_id]:
            del table[key]
    emulator.save()
