"""``managed-agents deploy | pin | sweep``: the setup and housekeeping flows from a shell.

Each command runs the flow of the same job (``deploy_agent``, ``pin_agent_version``,
``sweep_sessions``), so the run, its report artifact and its events show in Prefect as they do
from Python or a deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from managed_agents.output import JsonOption, print_json, print_table, typed_errors

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent
    from blocks.credentials import AnthropicCredentials

BlockOption = Annotated[str, typer.Option("--block", "-b", help="Name of the ManagedAgent block.")]
CredentialsOption = Annotated[
    str | None,
    typer.Option(
        "--credentials",
        help="Name of a saved AnthropicCredentials block (default: the block's own, else "
        "ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL).",
    ),
]


def _pinned(name: str, block: ManagedAgent, as_json: bool, verb: str) -> None:
    """Say which agent version the block ``name`` pins now."""
    if as_json:
        print_json(
            {
                "block": name,
                "agent_id": block.agent_id,
                "agent_name": block.agent_name,
                "version": block.version,
                "environment_id": block.environment_id,
                "vault_ids": block.vault_ids,
            }
        )
    else:
        vaults = f"; vaults {', '.join(block.vault_ids)}" if block.vault_ids else ""
        typer.echo(
            f"Block {name!r} {verb} agent {block.agent_name} ({block.agent_id}) at v{block.version}{vaults}"
        )


@typed_errors
def deploy(
    spec: Annotated[Path, typer.Argument(help="The agent spec (YAML), inside the input roots.")],
    block: BlockOption,
    credentials: CredentialsOption = None,
    force: Annotated[
        bool, typer.Option(help="Overwrite an agent that was changed outside deploy_agent since the pin.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the spec's environment and agent, then save the block pinned to it.

    The same spec again changes nothing remotely; a changed one moves the pin to the new version.
    """
    from flows.setup import deploy_agent

    _pinned(block, deploy_agent(str(spec), block, credentials=credentials, force=force), as_json, "pins")


@typed_errors
def pin(
    block: Annotated[str, typer.Argument(help="Name of the ManagedAgent block.")],
    version: Annotated[int, typer.Argument(min=1, help="The agent version to pin (must exist).")],
    as_json: JsonOption = False,
) -> None:
    """Move the block's pin to an existing version of its agent (rollback or promotion)."""
    from flows.setup import pin_agent_version

    _pinned(block, pin_agent_version(block, version), as_json, "now pins")


@typed_errors
def sweep(
    agent: Annotated[
        str | None,
        typer.Option("--agent", "-a", help="Only this ManagedAgent block's agent, with its credentials."),
    ] = None,
    credentials: CredentialsOption = None,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds a session's flow run must have been over.")
    ] = 900.0,
    within_hours: Annotated[
        float | None, typer.Option(min=0, help="Only sessions created this recently (hours).")
    ] = 168.0,
    dry_run: Annotated[
        bool, typer.Option(help="Say which sessions would be archived; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Archive sessions still running or idle whose Prefect flow run is over (crashed or killed)."""
    from blocks.agent import require_agent_block
    from flows.sweep import sweep_sessions

    agent_id = None
    creds: AnthropicCredentials | str | None = credentials
    if agent is not None:
        block = require_agent_block(agent)
        agent_id = block.agent_id
        creds = credentials or block.credentials
    report = sweep_sessions(
        credentials=creds,
        grace_period_seconds=grace,
        created_within_hours=within_hours,
        agent_id=agent_id,
        dry_run=dry_run,
    )
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    verb = "to archive" if report.dry_run else "archived"
    print_table(
        f"Scanned {report.scanned} session(s), {report.with_owner} started by a flow run; "
        f"{len(report.orphans)} orphan(s) {verb}",
        ("session", "status", "flow run", "run state", "outcome"),
        [(o.session_id, o.status, o.flow_run_id, o.flow_run_state, o.outcome) for o in report.orphans],
    )
