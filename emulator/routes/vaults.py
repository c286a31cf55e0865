"""Vaults and their credentials (§12).

Secrets are write-only: a credential's ``token``, ``access_token``, ``refresh_token``,
``client_secret`` and ``secret_value`` are validated and then dropped, never stored (nor in the
state file) and never returned; responses echo only the non-secret fields. A credential's key
(``mcp_server_url`` or ``secret_name``) is unique among its vault's active credentials (409),
immutable, and a vault holds at most 20 active credentials. Archiving a credential purges its
secret (here: there is none to purge); archiving a vault archives its credentials.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ApiError, not_found
from ..ids import new_id, now_iso
from ..metadata import check_metadata, patch_metadata
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep

router = APIRouter(prefix="/v1")

MAX_CREDENTIALS = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VaultCreate(_Strict):
    """Body of ``POST /v1/vaults``."""

    display_name: str = Field(min_length=1, max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)


class VaultUpdate(_Strict):
    """Body of ``POST /v1/vaults/{id}``."""

    display_name: str | None = Field(default=None, min_length=1, max_length=255)
    metadata: dict[str, str | None] | None = None


class TokenEndpointAuth(_Strict):
    """``{"type": "none"}``, or a client secret sent by basic auth or in the body."""

    type: Literal["none", "client_secret_basic", "client_secret_post"]
    client_secret: str | None = None


class OAuthRefresh(_Strict):
    """How the service refreshes an MCP OAuth token."""

    client_id: str
    refresh_token: str
    token_endpoint: str
    token_endpoint_auth: TokenEndpointAuth
    scope: str | None = None
    resource: str | None = None


class McpOAuth(_Strict):
    """``mcp_oauth`` auth."""

    type: Literal["mcp_oauth"]
    mcp_server_url: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    expires_at: str | None = None
    refresh: OAuthRefresh | None = None


class StaticBearer(_Strict):
    """``static_bearer`` auth."""

    type: Literal["static_bearer"]
    mcp_server_url: str = Field(min_length=1)
    token: str = Field(min_length=1)


class Networking(_Strict):
    """Where an environment-variable secret may be substituted."""

    type: Literal["unrestricted", "limited"]
    allowed_hosts: list[str] | None = None


class InjectionLocation(_Strict):
    """Where in a request the secret is substituted (omitted fields: false)."""

    header: bool = False
    body: bool = False


class EnvironmentVariable(_Strict):
    """``environment_variable`` auth."""

    type: Literal["environment_variable"]
    secret_name: str = Field(min_length=1)
    secret_value: str = Field(min_length=1)
    networking: Networking
    injection_location: InjectionLocation | None = None


Auth = Annotated[McpOAuth | StaticBearer | EnvironmentVariable, Field(discriminator="type")]


class CredentialCreate(_Strict):
    """Body of ``POST /v1/vaults/{id}/credentials``."""

    auth: Auth
    display_name: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)


class CredentialUpdate(_Strict):
    """Body of ``POST /v1/vaults/{id}/credentials/{credential_id}``."""

    display_name: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str | None] | None = None


def get_vault(emulator: Emulator, vault_id: str) -> dict[str, Any]:
    """The vault, or a 404."""
    vault = emulator.store.vaults.get(vault_id)
    if vault is None:
        raise not_found("vault", vault_id)
    return vault


def check_vaults_usable(emulator: Emulator, vault_ids: list[str]) -> None:
    """A session may attach only vaults that exist and are not archived."""
    for vault_id in vault_ids:
        if get_vault(emulator, vault_id)["archived_at"] is not None:
            raise ApiError(400, f"vault {vault_id!r} is archived.", error_code="vault_archived")


def _public_auth(auth: McpOAuth | StaticBearer | EnvironmentVariable) -> dict[str, Any]:
    """The auth's non-secret fields, as responses show them."""
    if isinstance(auth, StaticBearer):
        return {"type": auth.type, "mcp_server_url": auth.mcp_server_url}
    if isinstance(auth, EnvironmentVariable):
        if auth.networking.type == "limited" and not auth.networking.allowed_hosts:
            raise ApiError(400, "networking.allowed_hosts is required when networking.type is 'limited'.")
        location = auth.injection_location or InjectionLocation(header=True, body=True)
        if not (location.header or location.body):
            raise ApiError(400, "injection_location must enable the header, the body, or both.")
        networking: dict[str, Any] = {"type": auth.networking.type}
        if auth.networking.type == "limited":
            networking["allowed_hosts"] = list(auth.networking.allowed_hosts or [])
        return {
            "type": auth.type,
            "secret_name": auth.secret_name,
            "networking": networking,
            "injection_location": {"header": location.header, "body": location.body},
        }
    shown: dict[str, Any] = {"type": auth.type, "mcp_server_url": auth.mcp_server_url}
    if auth.expires_at is not None:
        shown["expires_at"] = auth.expires_at
    if auth.refresh is not None:
        shown["refresh"] = {
            "client_id": auth.refresh.client_id,
            "token_endpoint": auth.refresh.token_endpoint,
            "token_endpoint_auth": {"type": auth.refresh.token_endpoint_auth.type},
            "scope": auth.refresh.scope,
            "resource": auth.refresh.resource,
        }
    return shown


def _key(auth: dict[str, Any]) -> str:
    return str(auth.get("mcp_server_url") or auth.get("secret_name"))


def _credentials(emulator: Emulator, vault_id: str) -> list[dict[str, Any]]:
    return [c for c in emulator.store.vault_credentials.values() if c["vault_id"] == vault_id]


def _get_credential(emulator: Emulator, vault_id: str, credential_id: str) -> dict[str, Any]:
    credential = emulator.store.vault_credentials.get(credential_id)
    if credential is None or credential["vault_id"] != vault_id:
        raise not_found("credential", credential_id)
    return credential


def _patched(
    emulator: Emulator,
    table: dict[str, dict[str, Any]],
    record: dict[str, Any],
    changes: dict[str, Any],
    metadata: dict[str, str | None] | None,
) -> dict[str, Any]:
    """Apply an update's changes and metadata patch; save (and stamp) only when something changed."""
    updated = {**record, **changes}
    if metadata is not None:
        updated["metadata"] = patch_metadata(record["metadata"], metadata)
    if updated != record:
        updated["updated_at"] = now_iso()
        table[record["id"]] = updated
        emulator.save()
    return updated


def _archive(record: dict[str, Any], stamp: str) -> None:
    if record["archived_at"] is None:
        record.update(archived_at=stamp, updated_at=stamp)


@router.post("/vaults")
async def create_vault(body: VaultCreate, emulator: EmulatorDep) -> dict[str, Any]:
    """Create a vault."""
    stamp = now_iso()
    vault_id = new_id("vlt")
    vault: dict[str, Any] = {
        "type": "vault",
        "id": vault_id,
        "display_name": body.display_name,
        "metadata": check_metadata(body.metadata),
        "created_at": stamp,
        "updated_at": stamp,
        "archived_at": None,
    }
    emulator.store.vaults[vault_id] = vault
    emulator.save()
    return vault


@router.get("/vaults/{vault_id}")
async def retrieve_vault(vault_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return a vault."""
    return get_vault(emulator, vault_id)


@router.post("/vaults/{vault_id}")
async def update_vault(vault_id: str, body: VaultUpdate, emulator: EmulatorDep) -> dict[str, Any]:
    """Change the display name or metadata (patch)."""
    vault = get_vault(emulator, vault_id)
    changes: dict[str, Any] = {}
    if body.display_name is not None:
        changes["display_name"] = body.display_name
    return _patched(emulator, emulator.store.vaults, vault, changes, body.metadata)


@router.get("/vaults")
async def list_vaults(
    emulator: EmulatorDep,
    include_archived: bool = False,
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List vaults, newest first."""
    vaults = [v for v in emulator.store.vaults.values() if include_archived or v["archived_at"] is None]
    return paginate(vaults[::-1], limit=limit, page=page, order="desc")


@router.post("/vaults/{vault_id}/archive")
async def archive_vault(vault_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive a vault and its credentials (permanent)."""
    vault = get_vault(emulator, vault_id)
    stamp = now_iso()
    _archive(vault, stamp)
    for credential in _credentials(emulator, vault_id):
        _archive(credential, stamp)
    emulator.save()
    return vault


@router.delete("/vaults/{vault_id}")
async def delete_vault(vault_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete a vault and its credentials."""
    get_vault(emulator, vault_id)
    for credential in _credentials(emulator, vault_id):
        del emulator.store.vault_credentials[credential["id"]]
    del emulator.store.vaults[vault_id]
    emulator.save()
    return {"id": vault_id, "type": "vault_deleted"}


@router.post("/vaults/{vault_id}/credentials")
async def create_credential(vault_id: str, body: CredentialCreate, emulator: EmulatorDep) -> dict[str, Any]:
    """Add a credential; its secret is checked, then dropped."""
    vault = get_vault(emulator, vault_id)
    if vault["archived_at"] is not None:
        raise ApiError(400, f"vault {vault_id!r} is archived.", error_code="vault_archived")
    auth = _public_auth(body.auth)
    active = [c for c in _credentials(emulator, vault_id) if c["archived_at"] is None]
    if any(_key(c["auth"]) == _key(auth) for c in active):
        raise ApiError(409, f"vault {vault_id!r} already has an active credential for {_key(auth)!r}.")
    if len(active) >= MAX_CREDENTIALS:
        raise ApiError(400, f"a vault holds at most {MAX_CREDENTIALS} active credentials.")
    stamp = now_iso()
    credential_id = new_id("vcrd")
    credential: dict[str, Any] = {
        "type": "vault_credential",
        "id": credential_id,
        "vault_id": vault_id,
        "display_name": body.display_name,
        "metadata": check_metadata(body.metadata),
        "auth": auth,
        "created_at": stamp,
        "updated_at": stamp,
        "archived_at": None,
    }
    emulator.store.vault_credentials[credential_id] = credential
    emulator.save()
    return credential


@router.get("/vaults/{vault_id}/credentials/{credential_id}")
async def retrieve_credential(vault_id: str, credential_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return a credential (no secret)."""
    return _get_credential(emulator, vault_id, credential_id)


@router.post("/vaults/{vault_id}/credentials/{credential_id}")
async def update_credential(
    vault_id: str, credential_id: str, body: CredentialUpdate, emulator: EmulatorDep
) -> dict[str, Any]:
    """Change the display name or metadata (the key is immutable: archive and create instead)."""
    credential = _get_credential(emulator, vault_id, credential_id)
    changes = {"display_name": body.display_name} if "display_name" in body.model_fields_set else {}
    return _patched(emulator, emulator.store.vault_credentials, credential, changes, body.metadata)


@router.get("/vaults/{vault_id}/credentials")
async def list_credentials(
    vault_id: str,
    emulator: EmulatorDep,
    include_archived: bool = False,
    limit: int | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List a vault's credentials, newest first."""
    get_vault(emulator, vault_id)
    items = [c for c in _credentials(emulator, vault_id) if include_archived or c["archived_at"] is None]
    return paginate(items[::-1], limit=limit, page=page, order="desc")


@router.post("/vaults/{vault_id}/credentials/{credential_id}/archive")
async def archive_credential(vault_id: str, credential_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive a credential (its key may then be used again)."""
    credential = _get_credential(emulator, vault_id, credential_id)
    _archive(credential, now_iso())
    emulator.save()
    return credential


@router.delete("/vaults/{vault_id}/credentials/{credential_id}")
async def delete_credential(vault_id: str, credential_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete a credential."""
    _get_credential(emulator, vault_id, credential_id)
    del emulator.store.vault_credentials[credential_id]
    emulator.save()
    return {"id": credential_id, "type": "vault_credential_deleted"}


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes on the app."""
    app.include_router(router)
