"""``managed-agents``: deploy and pin agents, look at sessions, sweep orphans, serve the emulator,
run the quickstart.

With the pytest plugin (``managed_agents.testing``), this package is where the emulator and the
integration meet; neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

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


@app.callback()
def main() -> None:
    """Claude Managed Agents for Prefect: tools around the integration."""


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Interface to bind (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8765,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Accept only this key (default: any non-empty key)."),
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="Persist state to this JSON file and reload it on start.")
    ] = None,
    profile: Annotated[
        Literal["instant", "realistic"],
        typer.Option(
            help="Named set of realism knobs: instant (all off) or realistic (lags, races and stream "
            "faults of the distributed service). Explicit options below override it."
        ),
    ] = "instant",
    profile_scale: Annotated[
        float, typer.Option(help="Multiply every duration of the profile (rates and counts are kept).")
    ] = 1.0,
    ping_interval: Annotated[
        float | None, typer.Option(help="Seconds between SSE pings (default 15).")
    ] = None,
    event_delay: Annotated[
        float | None, typer.Option(help="Default pause between scripted events (default 0).")
    ] = None,
    output_listing_delay: Annotated[
        float | None, typer.Option(help="Seconds before a turn's output files become listable (default 0).")
    ] = None,
    output_indexing_window: Annotated[
        float | None,
        typer.Option(
            help="After a turn's idle, its output files become listable one by one over this many "
            "seconds (after --output-listing-delay) (default 0)."
        ),
    ] = None,
    history_lag: Annotated[
        float | None,
        typer.Option(help="events.list shows the history as it was this many seconds ago (default 0)."),
    ] = None,
    queued_events_position: Annotated[
        Literal["inline", "first", "last", "mixed"] | None,
        typer.Option(
            help="Where events.list puts queued user events: inline, first, last, or mixed (seeded "
            "draw per request) (default inline)."
        ),
    ] = None,
    post_idle_running: Annotated[
        float | None,
        typer.Option(
            help="Seconds after an idle during which retrieve still says running and archive/delete "
            "are refused (default 0)."
        ),
    ] = None,
    status_leads_idle: Annotated[
        float | None,
        typer.Option(
            help="Seconds by which the idle status precedes the session.status_idle event (default 0)."
        ),
    ] = None,
    close_stream_on_idle: Annotated[
        bool, typer.Option(help="Close SSE streams after an idle that ends the turn.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for fault injection (default 0).")] = None,
    drop_stream_after: Annotated[
        int | None, typer.Option(help="Drop every SSE connection after this many events.")
    ] = None,
    fail_rate: Annotated[
        float | None, typer.Option(help="Fraction of /v1 requests that fail (default 0).")
    ] = None,
    fail_statuses: Annotated[
        str | None,
        typer.Option(help="Comma-separated statuses injected failures pick from (default 429,500,529)."),
    ] = None,
    retry_after: Annotated[
        float | None, typer.Option(help="retry-after seconds on injected 429s (default 0).")
    ] = None,
    commit_then_drop: Annotated[
        list[str] | None,
        typer.Option(help="'METHOD /path' to commit then drop the response (repeatable)."),
    ] = None,
    slow_answer: Annotated[
        list[str] | None,
        typer.Option(help="'METHOD /path SECONDS': process, then hold the answer this long (repeatable)."),
    ] = None,
    slow_download: Annotated[
        int | None, typer.Option(help="Throttle downloads to this many bytes per second.")
    ] = None,
    cut_download_after: Annotated[
        int | None, typer.Option(help="Cut download bodies after this many bytes.")
    ] = None,
    close_stream_after_idle_rate: Annotated[
        float | None,
        typer.Option(
            help="Fraction of SSE connections closed cleanly right after a session.status_idle (default 0)."
        ),
    ] = None,
    silent_stream_rate: Annotated[
        float | None,
        typer.Option(
            help="Fraction of SSE connections that go silent (no events, no pings) but stay open (default 0)."
        ),
    ] = None,
    silent_stream_after: Annotated[
        int | None,
        typer.Option(help="Event frames a silent SSE connection delivers before going silent (default 1)."),
    ] = None,
    stream_open_429_rate: Annotated[
        float | None,
        typer.Option(help="Fraction of stream-opening requests answered 429 with retry-after (default 0)."),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="POST signed webhook deliveries (session.status_run_started, status_idled, "
            "status_terminated, ...) to this URL, e.g. http://127.0.0.1:8787/webhooks/anthropic."
        ),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            envvar="EMULATOR_WEBHOOK_SECRET",
            show_default=False,
            help="whsec_<base64> secret that signs deliveries (needed with --webhook-url); make one with "
            "python -c 'from emulator.webhooks import new_webhook_secret as n; print(n())'.",
        ),
    ] = None,
    webhook_delay: Annotated[
        float | None, typer.Option(help="Seconds before a webhook delivery's first attempt (default 0).")
    ] = None,
    webhook_jitter: Annotated[
        float | None,
        typer.Option(help="Extra random 0..S seconds per delivery: they arrive out of order (default 0)."),
    ] = None,
    webhook_retries: Annotated[
        int | None, typer.Option(help="Retries of a failed delivery, same event id (default 3).")
    ] = None,
) -> None:
    """Serve the local Managed Agents API emulator."""
    import uvicorn

    from emulator import EmulatorConfig, create_app

    def given(values: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in values.items() if value is not None}

    faults = given(
        {
            "seed": seed,
            "drop_stream_after_events": drop_stream_after,
            "fail_rate": fail_rate,
            "fail_statuses": None
            if fail_statuses is None
            else [int(s) for s in fail_statuses.split(",") if s.strip()],
            "retry_after_seconds": retry_after,
            "commit_then_drop": commit_then_drop,
            "slow_answers": slow_answer,
            "slow_download_bytes_per_second": slow_download,
            "cut_download_after_bytes": cut_download_after,
            "close_stream_after_idle_rate": close_stream_after_idle_rate,
            "silent_stream_rate": silent_stream_rate,
            "silent_stream_after_events": silent_stream_after,
            "stream_open_429_rate": stream_open_429_rate,
        }
    )
    settings = given(
        {
            "api_key": api_key,
            "state_file": state,
            "ping_interval": ping_interval,
            "event_delay": event_delay,
            "output_listing_delay": output_listing_delay,
            "output_indexing_window": output_indexing_window,
            "history_lag": history_lag,
            "queued_events_position": queued_events_position,
            "post_idle_running": post_idle_running,
            "status_leads_idle": status_leads_idle,
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
            "webhook_delay": webhook_delay,
            "webhook_jitter": webhook_jitter,
            "webhook_retries": webhook_retries,
        }
    )
    if webhook_url and not webhook_secret:
        typer.echo("error: --webhook-url needs --webhook-secret (or EMULATOR_WEBHOOK_SECRET).", err=True)
        raise typer.Exit(2)
    if close_stream_on_idle:
        settings["close_stream_on_idle"] = True
    config = EmulatorConfig.profile(profile, scale=profile_scale, faults=faults, **settings)
    typer.echo(f"Managed Agents API emulator on http://{host}:{port} (ANTHROPIC_BASE_URL), profile {profile}")
    if config.webhook_url:
        typer.echo(f"Webhook deliveries to {config.webhook_url}")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


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
