"""``managed-agents``: serve the emulator, run the quickstart.

This is the one place that starts both the emulator and the integration; neither imports the
other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


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
    ping_interval: Annotated[float, typer.Option(help="Seconds between SSE pings.")] = 15.0,
    event_delay: Annotated[float, typer.Option(help="Default pause between scripted events.")] = 0.0,
    output_listing_delay: Annotated[
        float, typer.Option(help="Seconds before a turn's output files become listable.")
    ] = 0.0,
    close_stream_on_idle: Annotated[
        bool, typer.Option(help="Close SSE streams after an idle that ends the turn.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for fault injection.")] = 0,
    drop_stream_after: Annotated[
        int | None, typer.Option(help="Drop every SSE connection after this many events.")
    ] = None,
    fail_rate: Annotated[float, typer.Option(help="Fraction of /v1 requests that fail.")] = 0.0,
    fail_statuses: Annotated[
        str, typer.Option(help="Comma-separated statuses injected failures pick from.")
    ] = "429,500,529",
    retry_after: Annotated[float, typer.Option(help="retry-after seconds on injected 429s.")] = 0.0,
    commit_then_drop: Annotated[
        list[str] | None,
        typer.Option(help="'METHOD /path' to commit then drop the response (repeatable)."),
    ] = None,
    slow_download: Annotated[
        int | None, typer.Option(help="Throttle downloads to this many bytes per second.")
    ] = None,
    cut_download_after: Annotated[
        int | None, typer.Option(help="Cut download bodies after this many bytes.")
    ] = None,
) -> None:
    """Serve the local Managed Agents API emulator."""
    import uvicorn

    from emulator import EmulatorConfig, FaultConfig, create_app

    config = EmulatorConfig(
        api_key=api_key,
        state_file=state,
        ping_interval=ping_interval,
        event_delay=event_delay,
        output_listing_delay=output_listing_delay,
        close_stream_on_idle=close_stream_on_idle,
        faults=FaultConfig(
            seed=seed,
            drop_stream_after_events=drop_stream_after,
            fail_rate=fail_rate,
            fail_statuses=[int(s) for s in fail_statuses.split(",") if s.strip()],
            retry_after_seconds=retry_after,
            commit_then_drop=commit_then_drop or [],
            slow_download_bytes_per_second=slow_download,
            cut_download_after_bytes=cut_download_after,
        ),
    )
    typer.echo(f"Managed Agents API emulator on http://{host}:{port} (ANTHROPIC_BASE_URL)")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
