"""``python -m emulator`` / ``managed-agents emulator``: serve the emulator from the command line.

The command lives here, beside what it serves, so that a process that only serves the
emulator (the tests' :class:`~emulator.server.EmulatorProcess`) imports neither Prefect nor the
integration; the ``managed-agents`` CLI registers the same function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer


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
