"""Vaults and credentials through the real SDK, validated strictly against its models."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsDeletedVault, BetaManagedAgentsVault
from anthropic.types.beta.vaults import BetaManagedAgentsCredential, BetaManagedAgentsDeletedCredential

from emulator import EmulatorServer
from tests.contract.session_support import make_session
from tests.contract.strict import body_of, strict

SECRETS = ("bearer-SECRET-1", "oauth-SECRET-2", "refresh-SECRET-3", "client-SECRET-4", "env-SECRET-5")


def _credential(raw: Any) -> BetaManagedAgentsCredential:
    return strict(BetaManagedAgentsCredential, body_of(raw))


def test_vault_lifecycle(client: anthropic.Anthropic) -> None:
    vault = strict(
        BetaManagedAgentsVault,
        body_of(client.beta.vaults.with_raw_response.create(display_name="CRM", metadata={"team": "sales"})),
    )
    assert vault.id.startswith("vlt_") and vault.archived_at is None
    renamed = strict(
        BetaManagedAgentsVault,
        body_of(client.beta.vaults.with_raw_response.update(vault.id, display_name="CRM prod")),
    )
    assert renamed.display_name == "CRM prod" and renamed.metadata == {"team": "sales"}
    other = client.beta.vaults.create(display_name="Other")
    assert [v.id for v in client.beta.vaults.list()] == [other.id, vault.id]
    archived = strict(BetaManagedAgentsVault, body_of(client.beta.vaults.with_raw_response.archive(vault.id)))
    assert archived.archived_at is not None
    assert [v.id for v in client.beta.vaults.list()] == [other.id]
    assert len(list(client.beta.vaults.list(include_archived=True))) == 2
    deleted = strict(
        BetaManagedAgentsDeletedVault, body_of(client.beta.vaults.with_raw_response.delete(other.id))
    )
    assert (deleted.id, deleted.type) == (other.id, "vault_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.vaults.retrieve(other.id)


def test_credentials_keep_no_secret_and_keys_are_unique_among_active_ones(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    vault = client.beta.vaults.create(display_name="Tools")
    bearer = _credential(
        client.beta.vaults.credentials.with_raw_response.create(
            vault.id,
            auth={
                "type": "static_bearer",
                "mcp_server_url": "https://mcp.example.com/sse",
                "token": SECRETS[0],
            },
            display_name="Example MCP",
        )
    )
    oauth = _credential(
        client.beta.vaults.credentials.with_raw_response.create(
            vault.id,
            auth={
                "type": "mcp_oauth",
                "mcp_server_url": "https://crm.example.com/mcp",
                "access_token": SECRETS[1],
                "refresh": {
                    "client_id": "app-1",
                    "refresh_token": SECRETS[2],
                    "token_endpoint": "https://crm.example.com/oauth/token",
                    "token_endpoint_auth": {"type": "client_secret_post", "client_secret": SECRETS[3]},
                },
            },
        )
    )
    env = _credential(
        client.beta.vaults.credentials.with_raw_response.create(
            vault.id,
            auth={
                "type": "environment_variable",
                "secret_name": "WAREHOUSE_TOKEN",
                "secret_value": SECRETS[4],
                "networking": {"type": "limited", "allowed_hosts": ["warehouse.example.com"]},
                "injection_location": {"header": True},
            },
        )
    )
    assert bearer.id.startswith("vcrd_") and bearer.vault_id == vault.id
    assert oauth.auth.type == "mcp_oauth" and oauth.auth.refresh is not None
    assert oauth.auth.refresh.token_endpoint_auth.type == "client_secret_post"
    assert env.auth.type == "environment_variable"
    assert (env.auth.injection_location.header, env.auth.injection_location.body) == (True, False)

    # Secrets are write-only: not in any answer, not in the emulator's state.
    listed = body_of(client.beta.vaults.credentials.with_raw_response.list(vault.id))
    state = json.dumps(emulator.app.state.emulator.store.to_json())
    for secret in SECRETS:
        assert secret not in json.dumps(listed) and secret not in state
    assert [c["id"] for c in listed["data"]] == [env.id, oauth.id, bearer.id]

    with pytest.raises(anthropic.ConflictError):  # the same server URL twice among active ones
        client.beta.vaults.credentials.create(
            vault.id,
            auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/sse", "token": "t"},
        )
    archived = _credential(
        client.beta.vaults.credentials.with_raw_response.archive(bearer.id, vault_id=vault.id)
    )
    assert archived.archived_at is not None
    again = client.beta.vaults.credentials.create(
        vault.id,
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/sse", "token": "t2"},
    )
    assert again.id != bearer.id
    with pytest.raises(anthropic.BadRequestError):  # both injection locations off
        client.beta.vaults.credentials.create(
            vault.id,
            auth={
                "type": "environment_variable",
                "secret_name": "OTHER",
                "secret_value": "v",
                "networking": {"type": "unrestricted"},
                "injection_location": {"header": False, "body": False},
            },
        )
    deleted = strict(
        BetaManagedAgentsDeletedCredential,
        body_of(client.beta.vaults.credentials.with_raw_response.delete(again.id, vault_id=vault.id)),
    )
    assert deleted.type == "vault_credential_deleted"


def test_sessions_attach_only_vaults_that_exist_and_are_not_archived(client: anthropic.Anthropic) -> None:
    vault = client.beta.vaults.create(display_name="Live")
    session = make_session(client, vault_ids=[vault.id])
    assert session["vault_ids"] == [vault.id]
    session_target = {"agent": session["agent"]["id"], "environment_id": session["environment_id"]}
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(**session_target, vault_ids=["vlt_011CNoSuchVault000000000"])
    client.beta.vaults.archive(vault.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(**session_target, vault_ids=[vault.id])
