"""Setup flows: ``deploy_agent`` (idempotent create-or-update from a spec) and ``pin_agent_version``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import anthropic
from anthropic.types.beta import BetaEnvironment, BetaManagedAgentsAgent
from prefect import flow, get_client
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_run_logger
from prefect.tasks import Task

from blocks.agent import (
    ManagedAgent,
    is_saved_block,
    load_agent_block,
    refuse_inline_block,
    require_agent_block,
)
from blocks.credentials import AnthropicCredentials
from managed_agents_core.diff import FieldChange, diff_agent_configs, render_changes_markdown
from managed_agents_core.drift import edited_outside, fingerprint_of
from managed_agents_core.exceptions import (
    AgentArchivedError,
    AgentDriftError,
    BlockNotFoundError,
    ConfigurationError,
    EnvironmentArchivedError,
    EnvironmentTypeChangeError,
    SpecValidationError,
)
from managed_agents_core.keys import BLOCK_KEY, FINGERPRINT_KEY
from managed_agents_core.roots import check_inside_roots, input_roots
from managed_agents_core.spec import (
    BLOCK_NAME,
    RESERVED_METADATA_KEYS,
    AgentDeploymentSpec,
    CallableAgent,
    EnvironmentSpec,
)
from tasks.agents import (
    create_agent,
    create_environment,
    find_environments,
    find_managed_agent,
    list_agent_versions,
    resolve_vaults,
    retrieve_agent,
    retrieve_environment,
    update_agent,
    update_environment,
)
from tasks.events import emit_managed_agents_event

P = ParamSpec("P")
R = TypeVar("R")
LOCK_TIMEOUT_SECONDS = 600.0

Action = Literal["created", "updated", "unchanged", "pinned", "drift"]


@dataclass
class AgentOutcome:
    """What ``deploy_agent`` did to the agent."""

    action: Action
    agent: BetaManagedAgentsAgent
    old_version: int | None
    changes: list[FieldChange] = field(default_factory=list)
    drift: list[FieldChange] = field(default_factory=list)
    drift_version: int | None = None
    base_version: int | None = None
    """The version ``changes`` are measured from (the one an update was based on)."""


# --- inputs ---------------------------------------------------------------------------------------


def _as_spec(spec: AgentDeploymentSpec | dict[str, Any] | str | Path) -> AgentDeploymentSpec:
    if isinstance(spec, AgentDeploymentSpec):
        # Re-validate: a spec object can be built with model_construct or mutated since.
        return AgentDeploymentSpec.parse(spec.model_dump(exclude_unset=True), source="spec object")
    if isinstance(spec, dict):
        return AgentDeploymentSpec.parse(spec, source="spec parameter")
    # A spec file is read only from inside the input roots ('~' is not expanded).
    path = check_inside_roots(spec, input_roots(), kind="input", what="spec file")
    return AgentDeploymentSpec.from_yaml(path)


def _check_block_name(block_name: str) -> None:
    if not BLOCK_NAME.match(block_name):
        raise ConfigurationError(
            f"Block name {block_name!r} is not valid: use lowercase letters, digits and dashes "
            "(for example 'report-writer-prod')."
        )


def _resolve_credentials(
    credentials: AnthropicCredentials | str | None, existing: ManagedAgent | None
) -> AnthropicCredentials:
    if isinstance(credentials, AnthropicCredentials):
        refuse_inline_block(credentials, "credentials")
        return credentials
    if isinstance(credentials, str):
        try:
            loaded = AnthropicCredentials.load(credentials, _sync=True)  # type: ignore[call-arg]  # async_dispatch kwarg
        except ValueError as exc:
            if "Unable to find block document" in str(exc):
                raise BlockNotFoundError(
                    f"No AnthropicCredentials block named {credentials!r}. Create it in the Prefect UI "
                    "or pass credentials=None to use ANTHROPIC_API_KEY."
                ) from None
            raise
        assert isinstance(loaded, AnthropicCredentials)  # _sync=True: never a coroutine
        return loaded
    return existing.credentials if existing is not None else AnthropicCredentials()


def credentials_block_name(block_name: str) -> str:
    """The name under which ``deploy_agent`` saves the credentials it was given inline."""
    return f"{block_name}-credentials"


def _save_credentials_block(creds: AnthropicCredentials, block_name: str) -> bool:
    """Save inline credentials as their own block, so the agent block references them.

    The Prefect UI shows (and edits) a nested block only when it is a reference to a saved
    block; credentials saved inside the agent block show as "None" and cannot be fixed there.
    Credentials loaded from a saved block are left as they are.

    Returns:
        True when a credentials block was saved now.
    """
    if is_saved_block(creds):
        return False
    creds.save(credentials_block_name(block_name), overwrite=True)
    return True


def _reads(task: Task[P, R], credentials: AnthropicCredentials) -> Task[P, R]:
    """max_retries=0 on the credentials means "fail fast": no task-level retries either."""
    return task.with_options(retries=0) if credentials.max_retries == 0 else task


# --- callable agents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callee:
    """One callable agent of a coordinator, checked before anything is deployed.

    Attributes:
        entry: The spec's entry.
        spec_path: The callee's spec file (inside the input roots), when it is deployed from one.
        block_name: The callee's block (to deploy to, or deployed before); None for ``self``.
    """

    entry: CallableAgent
    spec_path: Path | None = None
    block_name: str | None = None


@dataclass(frozen=True)
class CalleePin:
    """What a coordinator calls: a callee resolved to its agent and pinned version."""

    callee: Callee
    agent_id: str | None = None
    agent_name: str | None = None
    version: int | None = None

    def roster_entry(self) -> dict[str, Any]:
        """The ``multiagent.agents`` entry of ``agents.create``."""
        if self.agent_id is None:
            return {"type": "self"}
        return {"type": "agent", "id": self.agent_id, "version": self.version}


def default_callee_block(agent_name: str) -> str:
    """The block a callee deployed from a spec is saved to when the entry names none: the agent
    name in lowercase letters, digits and dashes (also the stem of the deploy lock's name).

    Args:
        agent_name: The callee's agent name.
    """
    return re.sub(r"[^a-z0-9]+", "-", agent_name.lower()).strip("-") or "agent"


def check_callees(spec: AgentDeploymentSpec, block_name: str) -> list[Callee]:
    """Read and check every callable agent of ``spec``; nothing is sent to the API.

    Args:
        spec: The coordinator's spec.
        block_name: The coordinator's block.

    Raises:
        PathOutsideRootsError: A callee's spec file is outside the input roots.
        SpecValidationError: A callee's spec is invalid or has callable agents of its own, or a
            callee would be deployed to the coordinator's own block.
        BlockNotFoundError: A callee named by block alone has no block.
    """
    callees: list[Callee] = []
    for entry in spec.multiagent.agents if spec.multiagent else []:
        if entry.type == "self":
            callees.append(Callee(entry))
            continue
        if entry.spec is None:
            assert entry.block is not None  # the model requires spec or block
            require_agent_block(entry.block)
            callees.append(Callee(entry, block_name=entry.block))
            continue
        path = check_inside_roots(entry.spec, input_roots(), kind="input", what="callable agent's spec file")
        callee_spec = AgentDeploymentSpec.from_yaml(path)
        if callee_spec.multiagent is not None:
            raise SpecValidationError(
                f"Callable agent {entry.label()} has callable agents of its own; the API allows one level "
                "of delegation. Remove its multiagent section or call its callees from this spec."
            )
        target = entry.block or default_callee_block(callee_spec.name)
        if target == block_name:
            raise SpecValidationError(
                f"Callable agent {entry.label()} would be deployed to block {block_name!r}, the "
                "coordinator's own; give the entry another block, or use {type: self}."
            )
        callees.append(Callee(entry, spec_path=path, block_name=target))
    return callees


def _pin_callee(callee: Callee, credentials: AnthropicCredentials | str | None, force: bool) -> CalleePin:
    """Deploy a callee from its spec (a ``deploy-agent`` subflow), or check the block's pinned version."""
    if callee.block_name is None:
        return CalleePin(callee)
    if callee.spec_path is not None:
        block = deploy_agent(str(callee.spec_path), callee.block_name, credentials=credentials, force=force)
    else:
        block = require_agent_block(callee.block_name)
        with block.credentials.get_client() as client:
            agent = _reads(retrieve_agent, block.credentials)(client, block.agent_id, block.version)
            latest = _reads(retrieve_agent, block.credentials)(client, block.agent_id)
        if latest.archived_at is not None:
            raise AgentArchivedError(
                f"Callable agent {callee.entry.label()} ({agent.id}) is archived, so no coordinator can "
                "call it. Deploy it again to a new block and name that one."
            )
    return CalleePin(callee, block.agent_id, block.agent_name, block.version)


# --- concurrency ----------------------------------------------------------------------------------


def deploy_lock_name(agent_name: str) -> str:
    """Return the global concurrency limit that serialises deployments of one agent name.

    Args:
        agent_name: The agent's name.
    """
    slug = default_callee_block(agent_name)
    if len(slug) > 60:  # keep names short and still distinct
        slug = f"{slug[:50]}-{hashlib.sha256(agent_name.encode()).hexdigest()[:8]}"
    return f"managed-agents-deploy-{slug}"


@contextmanager
def deploy_lock(agent_name: str) -> Iterator[None]:
    """Hold the agent name's deploy lock (a Prefect global concurrency limit of 1).

    The limit is created when missing (with ``strict=False`` a missing limit would silently not
    lock); a concurrent creation by another run is fine.

    Args:
        agent_name: The agent's name.
    """
    name = deploy_lock_name(agent_name)
    with get_client(sync_client=True) as prefect:
        try:
            prefect.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                prefect.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    with concurrency(name, occupy=1, strict=True, timeout_seconds=LOCK_TIMEOUT_SECONDS):
        yield


# --- environment ----------------------------------------------------------------------------------


def _environment_patch(env: BetaEnvironment, desired: dict[str, Any]) -> dict[str, Any]:
    """Return the ``environments.update`` arguments that make ``env`` equal ``desired`` (empty: equal)."""
    patch: dict[str, Any] = {}
    if env.config.model_dump(mode="json", exclude_none=True) != desired["config"]:
        patch["config"] = desired["config"]
    if (env.description or None) != desired.get("description"):
        patch["description"] = desired.get("description")
    wanted = desired.get("metadata", {})
    if dict(env.metadata) != wanted:
        patch["metadata"] = {**dict.fromkeys(env.metadata, ""), **wanted}
    return patch


def ensure_environment(
    client: anthropic.Anthropic,
    spec: EnvironmentSpec,
    existing: ManagedAgent | None,
    credentials: AnthropicCredentials,
) -> tuple[BetaEnvironment, str]:
    """Find the spec's environment by name (creating or updating it); return it and what was done.

    Args:
        client: SDK client.
        spec: The environment section of the spec.
        existing: The block being redeployed, if any.
        credentials: For the retry settings.

    Raises:
        EnvironmentArchivedError: The block's environment, or the only one with the name, is archived.
        EnvironmentTypeChangeError: The existing environment has another ``config.type``.
    """
    logger = get_run_logger()
    desired = spec.environment_params()
    if existing is not None:
        pinned = _reads(retrieve_environment, credentials)(client, existing.environment_id)
        if pinned is not None and pinned.archived_at is not None:
            raise EnvironmentArchivedError(
                f"Environment {pinned.name!r} ({pinned.id}) of block is archived, and archiving is "
                "permanent. Give environment.name in the spec a new name so deploy_agent creates a "
                "fresh environment."
            )
    matches = _reads(find_environments, credentials)(client, spec.name)
    active = [e for e in matches if e.archived_at is None]
    if not active:
        if matches:
            raise EnvironmentArchivedError(
                f"Environment {spec.name!r} ({matches[-1].id}) is archived, and archiving is permanent. "
                "Give environment.name in the spec a new name so deploy_agent creates a fresh one."
            )
        env = create_environment(client, desired)
        logger.info("Created environment %r (%s).", env.name, env.id)
        return env, "created"
    env = active[0]
    if env.config.type != desired["config"]["type"]:
        raise EnvironmentTypeChangeError(
            f"Environment {env.name!r} ({env.id}) is a {env.config.type!r} environment and the spec asks "
            f"for {desired['config']['type']!r}; the type cannot change. Give environment.name a new name."
        )
    patch = _environment_patch(env, desired)
    if not patch:
        return env, "unchanged"
    env = update_environment(client, env.id, patch)
    logger.info("Updated environment %r (%s): %s.", env.name, env.id, ", ".join(sorted(patch)))
    return env, "updated"


# --- agent ----------------------------------------------------------------------------------------


def _snapshot(agent: BetaManagedAgentsAgent) -> dict[str, Any]:
    return agent.model_dump(mode="json")


def _update_params(
    spec: AgentDeploymentSpec, fingerprint: str, block_name: str, current: BetaManagedAgentsAgent
) -> dict[str, Any]:
    params = spec.update_params()
    stamps = {FINGERPRINT_KEY: fingerprint, BLOCK_KEY: block_name}
    stale = {k: None for k in current.metadata if k not in spec.metadata and k not in RESERVED_METADATA_KEYS}
    params["metadata"] = {**stale, **spec.metadata, **stamps}
    return params


def ensure_agent(
    client: anthropic.Anthropic,
    spec: AgentDeploymentSpec,
    block_name: str,
    existing: ManagedAgent | None,
    credentials: AnthropicCredentials,
    force: bool,
) -> AgentOutcome:
    """Create, update, re-pin or keep the agent; the caller holds the deploy lock.

    Args:
        client: SDK client.
        spec: The desired spec.
        block_name: The block being deployed.
        existing: That block, if it exists.
        credentials: For the retry settings.
        force: Overwrite an agent that was changed outside ``deploy_agent``.

    Raises:
        AgentArchivedError: The block's agent is archived.
        AgentDriftError: The agent changed outside ``deploy_agent`` and ``force`` is False.
        StaleAgentVersionError: A concurrent edit won the optimistic lock.
    """
    fingerprint = spec.fingerprint()
    if existing is not None:
        current = _reads(retrieve_agent, credentials)(client, existing.agent_id)
        pinned_version: int | None = existing.version
    else:
        found = _reads(find_managed_agent, credentials)(client, spec.name)
        if found is None:
            params = {**spec.agent_params()}
            params["metadata"] = {**spec.metadata, FINGERPRINT_KEY: fingerprint, BLOCK_KEY: block_name}
            created = create_agent(client, params)
            return AgentOutcome("created", created, None, diff_agent_configs({}, _snapshot(created)))
        current, pinned_version = found, None
    if current.archived_at is not None:
        raise AgentArchivedError(
            f"Agent {current.name!r} ({current.id}) is archived, and archiving is permanent. Delete block "
            f"{block_name!r} and rerun deploy_agent to create a new agent, or deploy to another block."
        )
    latest = current.version
    # The pinned version is the baseline; nothing moved since the pin when it is the latest.
    if pinned_version is not None and latest == pinned_version:
        if fingerprint_of(_snapshot(current)) == fingerprint:
            return AgentOutcome("unchanged", current, pinned_version)
        return _update(client, spec, fingerprint, block_name, current, pinned_version)
    versions = [_snapshot(v) for v in _reads(list_agent_versions, credentials)(client, current.id)]
    outside = edited_outside(versions)
    if not outside and fingerprint_of(versions[-1]) == fingerprint:
        # Someone (another run, another stage's block) already deployed this very spec.
        return AgentOutcome("pinned", current, pinned_version)
    if pinned_version is None and not outside:
        return _update(client, spec, fingerprint, block_name, current, None)
    baseline = next((v for v in versions if v["version"] == pinned_version), None)
    drift = diff_agent_configs(baseline or {}, versions[-1])
    if not force:
        return AgentOutcome("drift", current, pinned_version, drift=drift, drift_version=latest)
    outcome = _update(client, spec, fingerprint, block_name, current, pinned_version)
    outcome.drift, outcome.drift_version = drift, latest
    return outcome


def _update(
    client: anthropic.Anthropic,
    spec: AgentDeploymentSpec,
    fingerprint: str,
    block_name: str,
    current: BetaManagedAgentsAgent,
    pinned_version: int | None,
) -> AgentOutcome:
    params = _update_params(spec, fingerprint, block_name, current)
    updated = update_agent(client, current.id, current.version, params)
    changes = diff_agent_configs(_snapshot(current), _snapshot(updated))
    return AgentOutcome("updated", updated, pinned_version, changes, base_version=current.version)


# --- reporting ------------------------------------------------------------------------------------


def _report(
    block_name: str,
    outcome: AgentOutcome,
    env: BetaEnvironment,
    env_action: str,
    fingerprint: str,
    vault_ids: list[str],
    pins: list[CalleePin],
) -> str:
    agent = outcome.agent
    old = f"v{outcome.old_version}" if outcome.old_version is not None else "(none)"
    new = old if outcome.action == "drift" else f"v{agent.version}"
    lines = [
        f"# Deploy report: `{block_name}`",
        "",
        "| | |",
        "|---|---|",
        f"| Action | **{outcome.action}** |",
        f"| Agent | `{agent.id}` ({agent.name}) |",
        f"| Environment | `{env.id}` ({env.name}, {env_action}) |",
        f"| Pin | {old} → {new} |",
        f"| Spec fingerprint | `{fingerprint[:16]}…` |",
        f"| Vaults | {', '.join(f'`{v}`' for v in vault_ids) or '(none)'} |",
        "",
    ]
    if pins:
        lines += [
            "## Callable agents",
            "",
            "| callee | agent | pinned | block |",
            "|---|---|---|---|",
            *(
                f"| {pin.callee.entry.label()} | "
                + (
                    f"`{pin.agent_id}` ({pin.agent_name}) | v{pin.version} | `{pin.callee.block_name}` |"
                    if pin.agent_id
                    else "this agent | - | - |"
                )
                for pin in pins
            ),
            "",
        ]
    if outcome.drift_version is not None:
        lines += [
            f"## Drift: changed outside deploy_agent (pinned {old}, latest v{outcome.drift_version})",
            "",
            render_changes_markdown(outcome.drift),
            "Overwritten because `force=True`."
            if outcome.action != "drift"
            else "Not overwritten. Review the change, then rerun with `force=True` to replace it with the spec.",
            "",
        ]
    if outcome.action in ("created", "updated"):
        base = "(new agent)" if outcome.base_version is None else f"v{outcome.base_version}"
        lines += [f"## Changes {base} → v{agent.version}", "", render_changes_markdown(outcome.changes)]
    return "\n".join(lines)


def _artifact_key(prefix: str, block_name: str) -> str:
    return f"{prefix}-{block_name}".lower()


def _emit(kind: str, agent: BetaManagedAgentsAgent, version: int, payload: dict[str, Any]) -> None:
    emit_managed_agents_event(
        f"agent.{kind}",
        agent.id,
        name=agent.name,
        payload=payload,
        labels={"managed-agents.version": str(version)},
    )


# --- flows ----------------------------------------------------------------------------------------


@flow(name="deploy-agent")
def deploy_agent(
    spec: AgentDeploymentSpec | dict[str, Any] | str | Path,
    block_name: str,
    credentials: AnthropicCredentials | str | None = None,
    force: bool = False,
) -> ManagedAgent:
    """Make sure the spec's environment and agent exist, then save the ``ManagedAgent`` block.

    The vaults the spec names (an MCP server's ``vault``, or ``vaults:``) are checked first and
    saved on the block as its sessions' vaults. A coordinator's callable agents (``multiagent:``)
    are checked before anything is deployed; those named by spec are then deployed first (a
    ``deploy-agent`` subflow each, to their own block), and the coordinator calls every callee at
    the version its block pins, so a callee's new version updates the coordinator too.

    Idempotent: the same spec again makes no write call. A changed spec updates the agent with
    ``version=<current>`` (a concurrent edit fails loudly) and moves the block's pin. An agent that
    was changed outside this flow since the pin is reported (artifact and event) and left alone
    unless ``force`` is set. Runs for the same agent name are serialised by a Prefect global
    concurrency limit, so two at once never create two agents.

    Args:
        spec: The spec, or the path of a YAML spec file (keys mirror ``agents.create`` plus an
            ``environment:`` section) inside the input roots (``MANAGED_AGENTS_INPUT_ROOTS``,
            default the working directory; ``~`` is not expanded). Custom tools in a spec are
            names of registered tools (``@custom_tool``), never import paths outside
            ``MANAGED_AGENTS_TOOL_MODULES``.
        block_name: Name of the ``ManagedAgent`` block to save (lowercase letters, digits, dashes);
            use one per stage, e.g. ``report-writer-dev`` and ``report-writer-prod``.
        credentials: An ``AnthropicCredentials`` block, the name of a saved one, or None to use the
            block's existing credentials (or ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL). A deployment
            run takes only the name of a saved block. Credentials that are not a saved block are
            saved as ``<block_name>-credentials``, which the agent block references (the UI
            shows and edits them there).
        force: Overwrite an agent that was changed outside this flow since the block's pin.

    Returns:
        The saved block, pinned to the deployed version.

    Raises:
        SpecValidationError: The spec breaks an API rule (nothing is sent), or a callable
            agent's spec does (nothing is deployed).
        UnknownCustomToolError: The spec names a custom tool that is not registered.
        PathOutsideRootsError: The spec file is outside the input roots.
        InlineBlockError: A deployment run was given inline credentials.
        CredentialsDestinationError: The credentials would send the environment's key elsewhere.
        MissingCredentialsError: No API key is configured.
        BlockNotFoundError: ``credentials``, or a callable agent's ``block``, names a block that
            does not exist.
        AgentDriftError: The agent was changed outside this flow and ``force`` is False.
        StaleAgentVersionError: Someone updated the agent during this run; rerun.
        AgentArchivedError / EnvironmentArchivedError: The block's agent or environment is
            archived, or a callable agent named by block is.
        VaultNotFoundError / VaultArchivedError / AmbiguousVaultError: A vault the spec names
            cannot be used (checked before anything is created).
        ApiUnreachableError: The API could not be reached at the configured base URL.
    """
    logger = get_run_logger()
    desired = _as_spec(spec)
    _check_block_name(block_name)
    pins: list[CalleePin] = []
    if desired.multiagent is not None:
        callees = check_callees(desired, block_name)  # every callee read and checked first
        pins = [_pin_callee(callee, credentials, force) for callee in callees]
        desired = desired.with_roster([pin.roster_entry() for pin in pins])
    fingerprint = desired.fingerprint()
    with deploy_lock(desired.name):
        existing = load_agent_block(block_name)
        creds = _resolve_credentials(credentials, existing)
        with creds.get_client() as client:
            # Checked first: an unusable vault fails the deploy before anything is created.
            vault_ids = _reads(resolve_vaults, creds)(client, desired) if desired.vault_refs() else []
            env, env_action = ensure_environment(client, desired.environment, existing, creds)
            outcome = ensure_agent(client, desired, block_name, existing, creds, force)
        agent = outcome.agent
        if outcome.action != "drift":
            creds_saved_now = _save_credentials_block(creds, block_name)
            values = {
                "credentials": creds,
                "agent_id": agent.id,
                "version": agent.version,
                "environment_id": env.id,
                "agent_name": agent.name,
                "spec_fingerprint": fingerprint,
                "vault_ids": vault_ids,
            }
            if existing is None:
                block = ManagedAgent(**values)
                block.save(block_name)
            else:
                block = existing.model_copy(update=values)
                if creds_saved_now or block.model_dump() != existing.model_dump():
                    block.save(block_name, overwrite=True)
    create_markdown_artifact(
        markdown=_report(block_name, outcome, env, env_action, fingerprint, vault_ids, pins),
        key=_artifact_key("deploy", block_name),
        description=f"deploy_agent {outcome.action}: {agent.name}",
    )
    payload: dict[str, Any] = {
        "block": block_name,
        "old_version": outcome.old_version,
        "new_version": agent.version,
        "environment_id": env.id,
        "spec_fingerprint": fingerprint,
        "vault_ids": vault_ids,
        "callable_agents": [pin.roster_entry() for pin in pins],
        "changed_fields": [c.path for c in outcome.changes],
    }
    if outcome.drift_version is not None:
        drift_payload = {
            **payload,
            "new_version": outcome.drift_version,
            "changed_fields": [c.path for c in outcome.drift],
            "overwritten": outcome.action != "drift",
        }
        _emit("drift", agent, outcome.drift_version, drift_payload)
    if outcome.action == "drift":
        raise AgentDriftError(
            f"Agent {agent.name!r} ({agent.id}) was changed outside deploy_agent: block {block_name!r} "
            f"pins v{outcome.old_version}, the agent is at v{outcome.drift_version}. The deploy report "
            f"artifact '{_artifact_key('deploy', block_name)}' lists the changes; rerun with force=True "
            "to replace them with the spec."
        )
    _emit(outcome.action, agent, agent.version, payload)
    logger.info(
        "Agent %r (%s) %s; block %r pins v%s (was %s).",
        agent.name,
        agent.id,
        outcome.action,
        block_name,
        agent.version,
        f"v{outcome.old_version}" if outcome.old_version is not None else "unset",
    )
    return block


@flow(name="pin-agent-version")
def pin_agent_version(block_name: str, version: int) -> ManagedAgent:
    """Move a ``ManagedAgent`` block's pin to an existing version (rollback or promotion).

    Args:
        block_name: Name of the ``ManagedAgent`` block.
        version: The agent version to pin (must exist).

    Returns:
        The saved block.

    Raises:
        BlockNotFoundError: No such block.
        AgentVersionNotFoundError: The agent has no such version.
        AgentArchivedError / EnvironmentArchivedError: The agent or environment is archived.
    """
    logger = get_run_logger()
    _check_block_name(block_name)
    if version < 1:
        raise ConfigurationError(f"version must be 1 or more, got {version}.")
    block = require_agent_block(block_name)
    creds = block.credentials
    with creds.get_client() as client:
        latest = _reads(retrieve_agent, creds)(client, block.agent_id)
        if latest.archived_at is not None:
            raise AgentArchivedError(
                f"Agent {latest.name!r} ({latest.id}) is archived, so no session can use any of its "
                f"versions. Delete block {block_name!r} and run deploy_agent to create a new agent."
            )
        env = _reads(retrieve_environment, creds)(client, block.environment_id)
        if env is None or env.archived_at is not None:
            raise EnvironmentArchivedError(
                f"Environment {block.environment_id} of block {block_name!r} is archived or gone. "
                "Rerun deploy_agent with a new environment name to give the block a usable one."
            )
        target = _reads(retrieve_agent, creds)(client, block.agent_id, version)
        old_snapshot = _reads(retrieve_agent, creds)(client, block.agent_id, block.version)
    old_version = block.version
    changes = diff_agent_configs(_snapshot(old_snapshot), _snapshot(target))
    if old_version != version:
        block = block.model_copy(
            update={"version": version, "spec_fingerprint": fingerprint_of(_snapshot(target))}
        )
        block.save(block_name, overwrite=True)
    direction = "rollback" if version < old_version else "promotion" if version > old_version else "no move"
    create_markdown_artifact(
        markdown="\n".join(
            [
                f"# Pin report: `{block_name}`",
                "",
                f"Agent `{target.id}` ({target.name}): pin v{old_version} → v{version} ({direction}), "
                f"latest is v{latest.version}.",
                "",
                f"## Changes v{old_version} → v{version}",
                "",
                render_changes_markdown(changes),
            ]
        ),
        key=_artifact_key("pin", block_name),
        description=f"pin_agent_version: v{old_version} → v{version}",
    )
    _emit(
        "pinned",
        target,
        version,
        {"block": block_name, "old_version": old_version, "new_version": version, "direction": direction},
    )
    logger.info("Block %r now pins agent %s at v%s (was v%s).", block_name, target.id, version, old_version)
    return block
