"""``managed-agents``: deploy and pin agents, look at sessions, sweep orphans, serve the emulator,
run the quickstart.

With the pytest plugin (``managed_agents.testing``), this package is where the emulator and the
integration meet; neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emulator.cli import emulator as serve_emulator
from managed_agents import agent_commands, session_commands, webhooks

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Claude Managed Agents for Prefect: deploy and pin agents, look at sessions, sweep orphaned "
    "sessions, serve the local emulator, run the quickstart. Errors are one line on stderr; exit "
    "codes: 1 API error, 2 bad input, 3 not found or not in a state for it, 4 API unreachable.",
)
app.command()(agent_commands.deploy)
app.command()(agent_commands.pin)
app.command()(agent_commands.sweep)
app.add_typer(session_commands.app, name="sessions")
app.add_typer(webhooks.app, name="webhooks")
app.command(name="emulator")(serve_emulator)


@app.callback()
def main() -> None:
    """Claude Managed Agents for Prefect: tools around the integration."""


QUICKSTART_STATE = Path(".managed-agents/quickstart-emulator.json")
"""The quickstart emulator's state, so the agent its blocks name outlives the command."""

QUICKSTART_PROMPT = (
    "Read the sales figures you were given and write a short report: totals per region and "
    "quarter, and the region that grew fastest."
)


@app.command()
def quickstart(
    live: Annotated[
        bool,
        typer.Option(help="Run against the real API with ANTHROPIC_API_KEY instead of the local emulator."),
    ] = False,
    output_dir: Annotated[Path, typer.Option(help="Where the session's output files are written.")] = Path(
        "outputs"
    ),
    block_name: Annotated[
        str, typer.Option(help="Name of the ManagedAgent block to save.")
    ] = "quickstart-agent",
    port: Annotated[int, typer.Option(help="Emulator port (a free one when taken).")] = 8765,
    state: Annotated[
        Path, typer.Option(help="Where the emulator keeps its agents, sessions and files between runs.")
    ] = QUICKSTART_STATE,
) -> None:
    """Deploy the example agent and run one session end to end, then say where to look.

    Without ``--live`` this needs no API key: it starts the emulator on a loopback port (its state
    kept in ``--state``), runs ``deploy_agent`` with the example spec and ``run_agent_session`` on
    a bundled sample file with a memory store, and downloads the outputs into ``./outputs``. The
    saved blocks (the agent, and its credentials as their own block) keep working with the same
    emulator started again: the command to do so is printed at the end.
    """
    import os
    import socket
    from contextlib import ExitStack

    from flows.setup import credentials_block_name

    # Without PREFECT_API_URL, Prefect starts a temporary local server; give it time on slow machines.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    with ExitStack() as stack:
        if live:
            if not os.environ.get("ANTHROPIC_API_KEY", "").strip():
                typer.echo("--live needs ANTHROPIC_API_KEY in the environment.", err=True)
                raise typer.Exit(2)
            base_url: str | None = os.environ.get("ANTHROPIC_BASE_URL") or None
            api_key: str | None = None
        else:
            from emulator import EmulatorConfig, EmulatorServer

            with socket.socket() as probe:
                taken = probe.connect_ex(("127.0.0.1", port)) == 0
            state.parent.mkdir(parents=True, exist_ok=True)
            config = EmulatorConfig(state_file=state.resolve())
            server = stack.enter_context(EmulatorServer(config, port=0 if taken else port))
            base_url, api_key = server.url, "quickstart-emulator-key"
            typer.echo(f"Emulator: {server.url} (no API key, no spend; state in {state})")
        _run_quickstart(base_url, api_key, output_dir, block_name, state.parent)
        if not live:
            typer.echo(
                f"The blocks {block_name!r} and {credentials_block_name(block_name)!r} point at this "
                "emulator, which stops now. To use them again, start it with the same state:\n"
                f"  uv run managed-agents emulator --port {server.port} --state {state}"
            )


def _run_quickstart(
    base_url: str | None, api_key: str | None, output_dir: Path, block_name: str, state_dir: Path
) -> None:
    import shutil

    from pydantic import SecretStr

    import flows
    from blocks import AnthropicCredentials
    from flows.session import run_agent_session
    from flows.setup import deploy_agent
    from managed_agents_core.inputs import InputFile, MemoryStoreAttachment
    from managed_agents_core.spec import AgentDeploymentSpec

    # The bundled spec and sample are ours, read from the package wherever the command runs; the
    # sample is copied next to the state so that it is inside the input roots (the working folder).
    specs = Path(flows.__file__).parent / "specs"
    sample = state_dir / "sample-sales.csv"
    sample.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(specs / "sample-sales.csv", sample)
    spec = AgentDeploymentSpec.from_yaml(specs / "example-agent.yaml")
    credentials = AnthropicCredentials(api_key=SecretStr(api_key) if api_key else None, base_url=base_url)
    agent = deploy_agent(spec, block_name, credentials=credentials)
    typer.echo(f"Agent: {agent.agent_id} pinned at version {agent.version} (block {block_name!r})")
    result = run_agent_session(
        agent=block_name,
        prompt=QUICKSTART_PROMPT,
        files=[InputFile(path=str(sample))],
        memory_stores=[MemoryStoreAttachment(store="quickstart-notes", create_if_missing=True)],
        output_dir=str(output_dir),
    )
    typer.echo(f"Session: {result.session_id} ({result.status}, stop reason {result.stop_reason})")
    typer.echo(f"Agent said: {result.final_message}")
    for out in result.output_files:
        typer.echo(f"Output: {out.path} ({out.size_bytes} bytes, sha256 {out.sha256[:12]}...)")
    cost = "n/a" if result.usage.cost_usd is None else f"${result.usage.cost_usd}"
    typer.echo(
        f"Usage: {result.usage.input_tokens} input / {result.usage.output_tokens} output tokens, cost {cost}"
    )
    typer.echo(f"Console: {result.console_url}")
    typer.echo(prefect_ui_hint())


def prefect_ui_hint() -> str:
    """Where to see the run: the UI of the server ``PREFECT_API_URL`` names, or how to start one."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        ui = settings.ui_url or settings.api.url.removesuffix("/api")
        return f"See the run, its logs and its session report in the Prefect UI: {ui}/runs"
    return (
        "This run used a temporary Prefect server, gone now. To keep runs and see them in the UI:\n"
        "  uv run prefect server start                        # UI at http://127.0.0.1:4200\n"
        "  export PREFECT_API_URL=http://127.0.0.1:4200/api   # then run the quickstart again\n"
        "(A server on another port also needs PREFECT_UI_API_URL=http://127.0.0.1:<port>/api.)"
    )


if __name__ == "__main__":
    app()
