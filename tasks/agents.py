"""Setup tasks: find, create and update environments and agents, and read agent versions.

Reads retry on transient errors (``TRANSIENT_RETRY_OPTIONS``). Writes never retry at the task
level, and ``create`` calls also switch the SDK's own retries off: a create whose answer was lost
is looked up (by name and spec fingerprint) instead of being sent again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
from anthropic.types.beta import BetaEnvironment, BetaManagedAgentsAgent
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from managed_agents_core.exceptions import (
    AgentArchivedError,
    AgentVersionNotFoundError,
    EnvironmentArchivedError,
    RemoteObjectError,
    SpecValidationError,
    StaleAgentVersionError,
)
from managed_agents_core.keys import FINGERPRINT_KEY
from managed_agents_core.retry_policy import unreachable_error
from managed_agents_core.send_once import send_once_sync
from managed_agents_core.spec import AgentDeploymentSpec, McpServer
from managed_agents_core.vaults import resolve_vault, servers_without_credential

from .retry import TRANSIENT_RETRY_OPTIONS

_READ: dict[str, Any] = {**TRANSIENT_RETRY_OPTIONS, "cache_policy": NO_CACHE}
_WRITE: dict[str, Any] = {"retries": 0, "cache_policy": NO_CACHE}


@contextmanager
def api_errors(client: anthropic.Anthropic) -> Iterator[None]:
    """Turn connection failures into :class:`~managed_agents_core.exceptions.ApiUnreachableError` (URL only, no key).

    Args:
        client: The client making the calls inside the block.
    """
    try:
        yield
    except anthropic.APIConnectionError as exc:
        raise unreachable_error(exc, attempts=client.max_retries + 1) from None


def _is_archived_error(exc: anthropic.APIStatusError) -> bool:
    return exc.status_code == 400 and "archived" in str(exc).lower()


@task(name="find-environments", **_READ)
def find_environments(client: anthropic.Anthropic, name: str) -> list[BetaEnvironment]:
    """Return every environment named ``name``, archived ones included, oldest first.

    Args:
        client: SDK client.
        name: Environment name (names are unique among non-archived environments).
    """
    with api_errors(client):
        found = [e for e in client.beta.environments.list(include_archived=True) if e.name == name]
    return sorted(found, key=lambda e: e.created_at)


@task(name="resolve-vaults", **_READ)
def resolve_vaults(client: anthropic.Anthropic, spec: AgentDeploymentSpec) -> list[str]:
    """Return the ids of the vaults the spec names (its MCP servers' and ``vaults``), in order.

    An MCP server whose vault holds no active credential for its URL is logged as a warning (the
    service matches credentials to servers by exact URL; the credential may be added later).

    Args:
        client: SDK client.
        spec: The agent spec.

    Raises:
        VaultNotFoundError / VaultArchivedError / AmbiguousVaultError: A named vault cannot be used.
    """
    with api_errors(client):
        resolved = {ref: resolve_vault(client, ref) for ref in spec.vault_refs()}
        servers_by_vault: dict[str, list[McpServer]] = {}
        for server in spec.mcp_servers:
            if server.vault is not None:
                servers_by_vault.setdefault(server.vault, []).append(server)
        for ref, servers in servers_by_vault.items():  # one credentials listing per vault
            vault = resolved[ref]
            uncovered = servers_without_credential(client, vault.id, [s.url for s in servers])
            for server in (s for s in servers if s.url in uncovered):
                get_run_logger().warning(
                    "Vault %s (%r) holds no active credential for MCP server %r (%s): its sessions cannot "
                    "authenticate to it until one is added (credentials match servers by exact URL).",
                    vault.id,
                    vault.display_name,
                    server.name,
                    server.url,
                )
    return list(dict.fromkeys(vault.id for vault in resolved.values()))


@task(name="retrieve-environment", **_READ)
def retrieve_environment(client: anthropic.Anthropic, environment_id: str) -> BetaEnvironment | None:
    """Return the environment, or None when it no longer exists.

    Args:
        client: SDK client.
        environment_id: ``env_...``.
    """
    with api_errors(client):
        try:
            return client.beta.environments.retrieve(environment_id)
        except anthropic.NotFoundError:
            return None


@task(name="create-environment", **_WRITE)
def create_environment(client: anthropic.Anthropic, params: dict[str, Any]) -> BetaEnvironment:
    """Create an environment; if another run created it first (409), return that one.

    Args:
        client: SDK client.
        params: ``environments.create`` keyword arguments.
    """
    once = client.with_options(max_retries=0)

    def named() -> BetaEnvironment | None:
        return next((env for env in client.beta.environments.list() if env.name == params["name"]), None)

    with api_errors(client):
        try:
            return send_once_sync(lambda: once.beta.environments.create(**params), named)
        except anthropic.ConflictError:
            # A concurrent run created it first: use that one, never create twice.
            found = named()
            if found is None:
                raise
            return found


@task(name="update-environment", **_WRITE)
def update_environment(
    client: anthropic.Anthropic, environment_id: str, params: dict[str, Any]
) -> BetaEnvironment:
    """Update an environment's description, config and metadata in place.

    Args:
        client: SDK client.
        environment_id: ``env_...``.
        params: ``environments.update`` keyword arguments.

    Raises:
        EnvironmentArchivedError: The environment was archived meanwhile.
    """
    with api_errors(client):
        try:
            return client.beta.environments.update(environment_id, **params)
        except anthropic.BadRequestError as exc:
            if exc.error_code == "environment_archived" or _is_archived_error(exc):
                raise EnvironmentArchivedError(
                    f"Environment {environment_id} is archived and cannot be updated. Give the spec's "
                    "environment a new name so deploy_agent creates a fresh one."
                ) from None
            raise


@task(name="find-managed-agent", **_READ)
def find_managed_agent(client: anthropic.Anthropic, name: str) -> BetaManagedAgentsAgent | None:
    """Return the oldest non-archived agent named ``name`` that ``deploy_agent`` manages.

    An agent is managed when its metadata holds the spec fingerprint key; agents with the same
    name that were created by hand are never adopted.

    Args:
        client: SDK client.
        name: Agent name.
    """
    with api_errors(client):
        found = [
            a for a in client.beta.agents.list() if a.name == name and FINGERPRINT_KEY in (a.metadata or {})
        ]
    return min(found, key=lambda a: a.created_at) if found else None


@task(name="retrieve-agent", **_READ)
def retrieve_agent(
    client: anthropic.Anthropic, agent_id: str, version: int | None = None
) -> BetaManagedAgentsAgent:
    """Return the agent's latest version, or one version's snapshot.

    Args:
        client: SDK client.
        agent_id: ``agent_...``.
        version: A version number; the latest when None.

    Raises:
        AgentVersionNotFoundError: The version does not exist.
        RemoteObjectError: The agent does not exist.
    """
    with api_errors(client):
        try:
            if version is None:
                return client.beta.agents.retrieve(agent_id)
            return client.beta.agents.retrieve(agent_id, version=version)
        except anthropic.NotFoundError:
            if version is not None:
                raise AgentVersionNotFoundError(
                    f"Agent {agent_id} has no version {version}; list its versions and pick an existing one."
                ) from None
            raise RemoteObjectError(
                f"Agent {agent_id} does not exist. Delete or redeploy the block that points at it."
            ) from None


@task(name="list-agent-versions", **_READ)
def list_agent_versions(client: anthropic.Anthropic, agent_id: str) -> list[BetaManagedAgentsAgent]:
    """Return every version snapshot of an agent, oldest first.

    Args:
        client: SDK client.
        agent_id: ``agent_...``.
    """
    with api_errors(client):
        versions = list(client.beta.agents.versions.list(agent_id, limit=100))
    return sorted(versions, key=lambda a: a.version)


@task(name="create-agent", **_WRITE)
def create_agent(client: anthropic.Anthropic, params: dict[str, Any]) -> BetaManagedAgentsAgent:
    """Create an agent (version 1). Never retried blindly.

    Sent once (:func:`~managed_agents_core.send_once.send_once_sync`): after a failure that may
    have landed, the agent is looked up by name and spec fingerprint before sending again, so a
    create that did happen is found instead of repeated.

    Args:
        client: SDK client.
        params: ``agents.create`` keyword arguments, metadata included.

    Raises:
        SpecValidationError: The API rejected the spec (400).
    """
    once = client.with_options(max_retries=0)
    fingerprint = params["metadata"][FINGERPRINT_KEY]

    def made() -> BetaManagedAgentsAgent | None:
        return next(
            (
                agent
                for agent in client.beta.agents.list()
                if agent.name == params["name"] and agent.metadata.get(FINGERPRINT_KEY) == fingerprint
            ),
            None,
        )

    with api_errors(client):
        try:
            return send_once_sync(lambda: once.beta.agents.create(**params), made)
        except anthropic.BadRequestError as exc:
            raise SpecValidationError(
                f"The API rejected the agent spec: {exc.message}. Fix the spec and rerun deploy_agent."
            ) from None


@task(name="update-agent", **_WRITE)
def update_agent(
    client: anthropic.Anthropic, agent_id: str, version: int, params: dict[str, Any]
) -> BetaManagedAgentsAgent:
    """Write a new agent version, only if the agent is still at ``version`` (optimistic lock).

    Args:
        client: SDK client.
        agent_id: ``agent_...``.
        version: The version this update is based on.
        params: ``agents.update`` keyword arguments.

    Raises:
        StaleAgentVersionError: The agent moved past ``version`` meanwhile (409).
        AgentArchivedError: The agent is archived.
        SpecValidationError: The API rejected the spec (other 400).
    """
    with api_errors(client):
        try:
            return client.beta.agents.update(agent_id, version=version, **params)
        except anthropic.ConflictError:
            raise StaleAgentVersionError(
                f"Agent {agent_id} was updated by someone else after version {version} was read. "
                "Rerun deploy_agent: it re-reads the agent and reports the change."
            ) from None
        except anthropic.BadRequestError as exc:
            if _is_archived_error(exc):
                raise AgentArchivedError(
                    f"Agent {agent_id} is archived and cannot be updated. Delete the block that points "
                    "at it, then rerun deploy_agent to create a new agent."
                ) from None
            raise SpecValidationError(
                f"The API rejected the agent update: {exc.message}. Fix the spec and rerun deploy_agent."
            ) from None
