"""Environments: create, retrieve, update, list, archive, delete (§5).

Decisions where the reference says UNKNOWN: a create without ``config`` gets a cloud config with
unrestricted networking; ``null`` for ``networking``/``packages`` (or a package list) on update
keeps the stored value like omission does; only ``scope: "organization"`` is accepted (API
organisations reject ``account``); lists are newest first with the usual 20/100 page sizes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from ..agents import get_environment
from ..errors import ApiError
from ..ids import new_id, now_iso
from ..metadata import check_metadata, patch_metadata
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep

router = APIRouter(prefix="/v1")

PACKAGE_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnrestrictedIn(_Strict):
    """``{"type": "unrestricted"}``."""

    type: Literal["unrestricted"]


class LimitedIn(_Strict):
    """Limited networking; omitted fields default on create and are kept on update."""

    type: Literal["limited"]
    allowed_hosts: list[str] | None = None
    allow_mcp_servers: bool | None = None
    allow_package_managers: bool | None = None


class PackagesIn(_Strict):
    """Packages to install, per package manager."""

    type: Literal["packages"] | None = None
    apt: list[str] | None = None
    cargo: list[str] | None = None
    gem: list[str] | None = None
    go: list[str] | None = None
    npm: list[str] | None = None
    pip: list[str] | None = None


class CloudIn(_Strict):
    """``{"type": "cloud", networking?, packages?}``."""

    type: Literal["cloud"]
    networking: Annotated[UnrestrictedIn | LimitedIn, Field(discriminator="type")] | None = None
    packages: PackagesIn | None = None


class SelfHostedIn(_Strict):
    """``{"type": "self_hosted"}``."""

    type: Literal["self_hosted"]


ConfigIn = Annotated[CloudIn | SelfHostedIn, Field(discriminator="type")]


class EnvironmentCreate(_Strict):
    """Body of ``POST /v1/environments``."""

    name: str = Field(min_length=1, max_length=256)
    config: ConfigIn | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    scope: Literal["organization", "account"] | None = None


class EnvironmentUpdate(_Strict):
    """Body of ``POST /v1/environments/{id}``."""

    name: str | None = Field(default=None, min_length=1, max_length=256)
    config: ConfigIn | None = None
    description: str | None = None
    metadata: dict[str, str | None] | None = None
    scope: Literal["organization", "account"] | None = None


def _resolve_config(config: CloudIn | SelfHostedIn | None, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Fill the cloud defaults; on update (``stored`` given) omitted parts keep stored values."""
    if isinstance(config, SelfHostedIn):
        return {"type": "self_hosted"}
    config = config or CloudIn(type="cloud")
    old_net = (stored or {}).get("networking")
    if config.networking is None:
        networking = old_net or {"type": "unrestricted"}
    elif isinstance(config.networking, UnrestrictedIn):
        networking = {"type": "unrestricted"}
    else:
        base = old_net if old_net and old_net["type"] == "limited" else {}
        net = config.networking
        networking = {
            "type": "limited",
            "allowed_hosts": _pick(net.allowed_hosts, base.get("allowed_hosts"), []),
            "allow_mcp_servers": _pick(net.allow_mcp_servers, base.get("allow_mcp_servers"), False),
            "allow_package_managers": _pick(
                net.allow_package_managers, base.get("allow_package_managers"), False
            ),
        }
    old_pkgs = (stored or {}).get("packages") or {}
    packages: dict[str, Any] = {"type": "packages"}
    for manager in PACKAGE_MANAGERS:
        sent = getattr(config.packages, manager) if config.packages else None
        packages[manager] = list(_pick(sent, old_pkgs.get(manager), []))
    has_packages = any(packages[m] for m in PACKAGE_MANAGERS)
    if networking["type"] == "limited" and has_packages and not networking["allow_package_managers"]:
        raise ApiError(
            400, "packages under limited networking require networking.allow_package_managers: true."
        )
    return {"type": "cloud", "networking": networking, "packages": packages}


def _pick(sent: Any, stored: Any, default: Any) -> Any:
    if sent is not None:
        return sent
    return default if stored is None else stored


def _check_scope(scope: str | None) -> str:
    if scope == "account":
        raise ApiError(400, "scope 'account' is not supported for API organizations.")
    return "organization"


def _check_unique_name(emulator: Emulator, name: str, own_id: str | None = None) -> None:
    for env in emulator.store.environments.values():
        if env["name"] == name and env["archived_at"] is None and env["id"] != own_id:
            raise ApiError(409, f"an environment named {name!r} already exists ({env['id']}).")


@router.post("/environments")
async def create_environment(body: EnvironmentCreate, emulator: EmulatorDep) -> dict[str, Any]:
    """Create an environment (names are unique among non-archived environments)."""
    _check_unique_name(emulator, body.name)
    now = now_iso()
    env: dict[str, Any] = {
        "type": "environment",
        "id": new_id("env"),
        "name": body.name,
        "description": body.description,
        "config": _resolve_config(body.config, None),
        "metadata": check_metadata(body.metadata),
        "scope": _check_scope(body.scope),
        "created_at": now,
        "updated_at": now,
        "archived_at": None,
    }
    emulator.store.environments[env["id"]] = env
    emulator.save()
    return env


@router.get("/environments/{environment_id}")
async def retrieve_environment(environment_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return one environment."""
    return get_environment(emulator, environment_id)


@router.post("/environments/{environment_id}")
async def update_environment(
    environment_id: str, body: EnvironmentUpdate, emulator: EmulatorDep
) -> dict[str, Any]:
    """Update name, description, config, metadata (patch) or scope."""
    env = get_environment(emulator, environment_id)
    if env["archived_at"] is not None:
        raise ApiError(
            400,
            f"environment {environment_id!r} is archived and cannot be updated.",
            error_code="environment_archived",
        )
    sent = body.model_fields_set
    updated = dict(env)
    if "name" in sent:
        if body.name is None:
            raise ApiError(400, "name cannot be cleared.")
        _check_unique_name(emulator, body.name, own_id=environment_id)
        updated["name"] = body.name
    if "description" in sent:
        updated["description"] = body.description
    if "config" in sent and body.config is not None:
        if body.config.type != env["config"]["type"]:
            raise ApiError(
                400,
                f"config.type cannot change from {env['config']['type']!r} to {body.config.type!r}.",
                error_code="invalid_config_type_change",
            )
        updated["config"] = _resolve_config(body.config, env["config"])
    if "metadata" in sent and body.metadata is not None:
        updated["metadata"] = patch_metadata(env["metadata"], body.metadata, empty_deletes=True)
    if "scope" in sent and body.scope is not None:
        updated["scope"] = _check_scope(body.scope)
    if updated != env:
        updated["updated_at"] = now_iso()
        emulator.store.environments[environment_id] = updated
        emulator.save()
    return updated


@router.get("/environments")
async def list_environments(
    emulator: EmulatorDep, include_archived: bool = False, limit: int | None = None, page: str | None = None
) -> dict[str, Any]:
    """List environments, newest first."""
    items = [e for e in emulator.store.environments.values() if include_archived or e["archived_at"] is None]
    items.reverse()
    return paginate(items, limit=limit, page=page, order="desc")


@router.post("/environments/{environment_id}/archive")
async def archive_environment(environment_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive the environment (permanent; existing sessions keep running)."""
    env = get_environment(emulator, environment_id)
    if env["archived_at"] is None:
        now = now_iso()
        env.update(archived_at=now, updated_at=now)
        emulator.save()
    return env


@router.delete("/environments/{environment_id}")
async def delete_environment(environment_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete the environment."""
    get_environment(emulator, environment_id)
    del emulator.store.environments[environment_id]
    emulator.save()
    return {"id": environment_id, "type": "environment_deleted"}


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes (and any services it needs) on the app."""
    app.include_router(router)
