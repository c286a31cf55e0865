"""Session resources: list, add (files only), retrieve, update (token rotation), delete (§8).

Decisions where the reference says UNKNOWN:

* Memory-store resources carry no ``id`` (the SDK type has none), so they are listed but cannot
  be retrieved, updated or deleted one by one.
* Adding to an archived or terminated session is 409, like sending events.
* Deleting a file resource keeps the session copy of the file in the Files API.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from ..engine import get_engine
from ..errors import ApiError, not_found
from ..ids import now_iso
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep
from ..session_models import FileResourceParams
from ..session_resources import mount_file, public_resource
from .sessions import get_session

router = APIRouter(prefix="/v1")


class AddResourceBody(BaseModel):
    """``POST /v1/sessions/{id}/resources``: only ``type: "file"`` is accepted."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["file"]
    file_id: str
    mount_path: str | None = None


class UpdateResourceBody(BaseModel):
    """``POST /v1/sessions/{id}/resources/{rid}``: rotate a GitHub token."""

    model_config = ConfigDict(extra="forbid")

    authorization_token: str = Field(min_length=1)


def _resources(emulator: Emulator, session_id: str) -> list[dict[str, Any]]:
    get_session(emulator, session_id)
    return emulator.store.session_resources.setdefault(session_id, [])


def _find(emulator: Emulator, session_id: str, resource_id: str) -> dict[str, Any]:
    for resource in _resources(emulator, session_id):
        if resource.get("id") == resource_id:
            return resource
    raise not_found("session resource", resource_id)


@router.get("/sessions/{session_id}/resources")
async def list_resources(
    session_id: str, emulator: EmulatorDep, limit: int | None = None, page: str | None = None
) -> dict[str, Any]:
    """List a session's resources (all of them unless ``limit`` is given)."""
    items = [public_resource(r) for r in _resources(emulator, session_id)]
    return paginate(items, limit=limit, page=page, default_limit=1000, max_limit=1000)


@router.post("/sessions/{session_id}/resources")
async def add_resource(session_id: str, body: AddResourceBody, emulator: EmulatorDep) -> dict[str, Any]:
    """Mount one more file (a new session copy) into the session."""
    session = get_session(emulator, session_id)
    if session.get("archived_at") is not None or session["status"] == "terminated":
        raise ApiError(409, f"Session {session_id!r} is archived or terminated; no resources can be added.")
    params = FileResourceParams(type="file", file_id=body.file_id, mount_path=body.mount_path)
    resource = mount_file(emulator, session_id, params)
    _resources(emulator, session_id).append(resource)
    get_engine(emulator).mark_dirty()
    return public_resource(resource)


@router.get("/sessions/{session_id}/resources/{resource_id}")
async def retrieve_resource(session_id: str, resource_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return one resource."""
    return public_resource(_find(emulator, session_id, resource_id))


@router.post("/sessions/{session_id}/resources/{resource_id}")
async def update_resource(
    session_id: str, resource_id: str, body: UpdateResourceBody, emulator: EmulatorDep
) -> dict[str, Any]:
    """Rotate the token of a GitHub repository resource (never echoed)."""
    resource = _find(emulator, session_id, resource_id)
    if resource["type"] != "github_repository":
        raise ApiError(400, "Only github_repository resources can be updated (authorization_token rotation).")
    resource["_authorization_token"] = body.authorization_token
    resource["updated_at"] = now_iso()
    get_engine(emulator).mark_dirty()
    return public_resource(resource)


@router.delete("/sessions/{session_id}/resources/{resource_id}")
async def delete_resource(session_id: str, resource_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Detach a resource from the session."""
    resource = _find(emulator, session_id, resource_id)
    _resources(emulator, session_id).remove(resource)
    get_engine(emulator).mark_dirty()
    return {"id": resource_id, "type": "session_resource_deleted"}


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register the session resource routes."""
    app.include_router(router)
