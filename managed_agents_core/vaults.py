"""Vaults a session gets: resolved from the spec at deploy time, chosen among at run time.

A vault holds the credentials of an agent's MCP servers (matched by exact server URL) and its
environment-variable secrets; ``sessions.create(vault_ids=...)`` attaches vaults to a session.
The rule this integration keeps:

* The spec names the vaults (an MCP server's ``vault``, or ``vaults:`` for secrets no server
  uses), by id (``vlt_...``) or exact display name. ``deploy_agent`` resolves them to ids
  before anything is created (unknown, archived or ambiguous: a typed error) and saves them on
  the block.
* The block's ``vault_ids`` are every new session's vaults *and* the only ones a run may ask
  for: a flow-run parameter can narrow them (or ask for none), never name another vault of the
  workspace. A follow-up keeps the session's vaults (the API cannot change them).

Vault ids are not secret; credentials are never read here beyond their non-secret keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import anthropic
from anthropic.types.beta import BetaManagedAgentsVault
from anthropic.types.beta.vaults import (
    BetaManagedAgentsMCPOAuthAuthResponse,
    BetaManagedAgentsStaticBearerAuthResponse,
)

from .exceptions import AmbiguousVaultError, VaultArchivedError, VaultNotAllowedError, VaultNotFoundError

VAULT_ID_PREFIX = "vlt_"


def chosen_vaults(asked: Sequence[str] | None, allowed: Sequence[str]) -> tuple[str, ...]:
    """The vaults a new session gets: ``asked`` when every one is among the block's, else the block's.

    Args:
        asked: The run's ``vault_ids`` parameter (None: the block's; empty: none).
        allowed: The block's ``vault_ids``.

    Raises:
        VaultNotAllowedError: ``asked`` names a vault the block does not list.
    """
    if asked is None:
        return tuple(dict.fromkeys(allowed))
    outside = [v for v in asked if v not in allowed]
    if outside:
        listed = ", ".join(allowed) if allowed else "none"
        raise VaultNotAllowedError(
            f"vault_ids may only name the block's vaults ({listed}); {', '.join(outside)} is not one. "
            "Name the vault in the agent's spec (an MCP server's vault, or vaults:) and run "
            "deploy_agent, or leave vault_ids empty to use the block's."
        )
    return tuple(dict.fromkeys(asked))


def resolve_vault(client: anthropic.Anthropic, ref: str) -> BetaManagedAgentsVault:
    """Find the live vault ``ref`` names: by id (``vlt_...``) or by exact display name.

    Raises:
        VaultNotFoundError: No vault has that id or display name.
        VaultArchivedError: The vault is archived (sessions cannot use it).
        AmbiguousVaultError: Several live vaults have that display name.
    """
    if ref.startswith(VAULT_ID_PREFIX):
        try:
            vault = client.beta.vaults.retrieve(ref)
        except anthropic.NotFoundError:
            raise VaultNotFoundError(f"Vault {ref!r} does not exist; check the id in the spec.") from None
        if vault.archived_at is not None:
            raise VaultArchivedError(
                f"Vault {ref!r} ({vault.display_name!r}) is archived; sessions cannot use it. Point the "
                "spec at a live vault."
            )
        return vault
    named = [v for v in client.beta.vaults.list(limit=100, include_archived=True) if v.display_name == ref]
    live = [v for v in named if v.archived_at is None]
    if len(live) > 1:
        ids = ", ".join(sorted(v.id for v in live))
        raise AmbiguousVaultError(
            f"{len(live)} vaults are named {ref!r} ({ids}); name one by its id instead."
        )
    if live:
        return live[0]
    if named:
        raise VaultArchivedError(
            f"Vault {ref!r} ({named[0].id}) is archived; sessions cannot use it. Create a new vault "
            "or name another."
        )
    raise VaultNotFoundError(
        f"No vault is named {ref!r}; create it (client.beta.vaults.create) or fix the spec."
    )


def servers_without_credential(
    client: anthropic.Anthropic, vault_id: str, server_urls: Sequence[str]
) -> list[str]:
    """The MCP server URLs no active credential of the vault is for (matched by exact URL, as the
    service matches them); reads only the credentials' non-secret keys."""
    covered = {
        credential.auth.mcp_server_url
        for credential in client.beta.vaults.credentials.list(vault_id, limit=100)
        if credential.archived_at is None
        and isinstance(
            credential.auth, BetaManagedAgentsMCPOAuthAuthResponse | BetaManagedAgentsStaticBearerAuthResponse
        )
    }
    return [url for url in server_urls if url not in covered]
