"""Session resources as stored objects (``store.session_resources[session_id]``).

Stored dicts are the API bodies plus private ``_``-prefixed keys (the GitHub token), which
:func:`public_resource` strips before answering.
"""

from __future__ import annotations

from typing import Any

from . import blobs, memory
from .errors import ApiError, not_found
from .ids import new_id, now_iso
from .runtime import Emulator
from .session_models import FileResourceParams, GitHubRepositoryParams, MemoryStoreParams

MAX_MEMORY_STORES = 8


def public_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Return the API body of a stored resource (private keys removed)."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def mount_file(emulator: Emulator, session_id: str, params: FileResourceParams) -> dict[str, Any]:
    """Make the session copy of an uploaded file and return the new file resource.

    The copy has a new ``file_id``; the default mount path names the id the client uploaded.

    Raises:
        ApiError: 404 for an unknown file, 400 for a relative mount path.
    """
    if params.file_id not in emulator.store.files:
        raise not_found("file", params.file_id)
    mount_path = params.mount_path or f"/mnt/session/uploads/{params.file_id}"
    _check_absolute(mount_path)
    copy = blobs.copy_for_session(emulator, params.file_id, session_id)
    stamp = now_iso()
    return {
        "type": "file",
        "id": new_id("sesrsc"),
        "file_id": copy["id"],
        "mount_path": mount_path,
        "created_at": stamp,
        "updated_at": stamp,
    }


def mount_repository(params: GitHubRepositoryParams) -> dict[str, Any]:
    """Return the GitHub repository resource (the token kept privately)."""
    name = params.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repository"
    mount_path = params.mount_path or f"/workspace/{name}"
    _check_absolute(mount_path)
    stamp = now_iso()
    resource: dict[str, Any] = {
        "type": "github_repository",
        "id": new_id("sesrsc"),
        "url": params.url,
        "mount_path": mount_path,
        "checkout": params.checkout.model_dump() if params.checkout else None,
        "created_at": stamp,
        "updated_at": stamp,
        "_authorization_token": params.authorization_token,
    }
    return resource


def mount_memory_store(emulator: Emulator, params: MemoryStoreParams) -> dict[str, Any]:
    """Return the memory-store resource, snapshotting the store's name and description.

    Raises:
        ApiError: 404 for an unknown store, 400 for an archived one.
    """
    store = memory.get_store(emulator, params.memory_store_id)
    if store.get("archived_at") is not None:
        raise ApiError(
            400, f"Memory store {params.memory_store_id!r} is archived; new sessions cannot attach it."
        )
    return {
        "type": "memory_store",
        "memory_store_id": params.memory_store_id,
        "access": params.access or "read_write",
        "name": store["name"],
        "description": store.get("description") or "",
        "instructions": params.instructions,
        "mount_path": f"/mnt/memory/{memory.mount_slug(store['name'])}",
    }


def _check_absolute(path: str) -> None:
    if not path.startswith("/"):
        raise ApiError(400, f"mount_path must be absolute, got {path!r}.")
