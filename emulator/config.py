"""Emulator settings: the CLI options, the control API and tests all set these.

Named profiles (:meth:`EmulatorConfig.profile`, CLI ``--profile``) set the realism knobs
together. ``instant`` is every default (no lag, no race, no stream fault). ``realistic``
behaves like the distributed real service; why each value was chosen is in
``emulator/SCENARIOS.md`` ("Realism knobs and profiles"). ``scale`` multiplies every duration:

| setting                                 | realistic | scaled |
|-----------------------------------------|-----------|--------|
| ``history_lag``                         | 2.0 s     | yes    |
| ``queued_events_position``              | ``mixed`` | no     |
| ``output_listing_delay``                | 1.0 s     | yes    |
| ``output_indexing_window``              | 2.0 s     | yes    |
| ``post_idle_running``                   | 1.5 s     | yes    |
| ``status_leads_idle``                   | 0.3 s     | yes    |
| ``ping_interval``                       | 15 s      | yes    |
| ``faults.seed``                         | 0         | no     |
| ``faults.close_stream_after_idle_rate`` | 0.25      | no     |
| ``faults.silent_stream_rate``           | 0.05      | no     |
| ``faults.silent_stream_after_events``   | 3         | no     |
| ``faults.stream_open_429_rate``         | 0.1       | no     |
| ``faults.retry_after_seconds``          | 1.0 s     | yes    |
| ``webhook_delay``                       | 1.0 s     | yes    |
| ``webhook_jitter``                      | 1.0 s     | yes    |
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

ProfileName = Literal["instant", "realistic"]

REALISTIC_PROFILE: dict[str, Any] = {
    "history_lag": 2.0,
    "queued_events_position": "mixed",
    "output_listing_delay": 1.0,
    "output_indexing_window": 2.0,
    "post_idle_running": 1.5,
    "status_leads_idle": 0.3,
    "ping_interval": 15.0,
    "webhook_delay": 1.0,
    "webhook_jitter": 1.0,
    "faults": {
        "seed": 0,
        "close_stream_after_idle_rate": 0.25,
        "silent_stream_rate": 0.05,
        "silent_stream_after_events": 3,
        "stream_open_429_rate": 0.1,
        "retry_after_seconds": 1.0,
    },
}
"""The ``realistic`` profile at ``scale=1`` (see the table above and SCENARIOS.md for why)."""

SCALED_SETTINGS = frozenset(
    {
        "history_lag",
        "output_listing_delay",
        "output_indexing_window",
        "post_idle_running",
        "status_leads_idle",
        "ping_interval",
        "webhook_delay",
        "webhook_jitter",
    }
)
"""``EmulatorConfig`` durations that a profile's ``scale`` multiplies."""

SCALED_FAULT_SETTINGS = frozenset({"retry_after_seconds"})
"""``FaultConfig`` durations that a profile's ``scale`` multiplies (rates and counts are kept)."""


class FaultConfig(BaseModel):
    """Seeded, deterministic fault injection. Every fault is off by default.

    Attributes are documented in the README's "Fault injection" table.
    """

    seed: int = Field(default=0, description="Seed of the random generator that picks failing requests.")
    drop_stream_after_events: int | None = Field(
        default=None,
        ge=1,
        description="Close every SSE connection after this many events were sent on it.",
    )
    fail_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of /v1 requests answered with an injected error.",
    )
    fail_statuses: list[int] = Field(
        default_factory=lambda: [429, 500, 529], description="Statuses injected failures pick from."
    )
    retry_after_seconds: float = Field(default=0.0, ge=0, description="retry-after sent with injected 429s.")
    fail_paths: list[str] = Field(
        default_factory=list,
        description="Only inject failures on paths containing one of these substrings, optionally after a "
        'method ("POST /events": only POSTs; empty: all /v1 paths).',
    )
    commit_then_drop: list[str] = Field(
        default_factory=list,
        description="'METHOD path-substring' rules, e.g. 'POST /v1/sessions': commit the request, then "
        "drop the connection instead of answering (a client retry then creates a duplicate).",
    )
    commit_then_drop_times: int = Field(
        default=1, ge=0, description="How many matching requests get committed-then-dropped."
    )
    slow_answers: list[str] = Field(
        default_factory=list,
        description="'METHOD path-substring SECONDS' rules, e.g. 'POST /v1/sessions 3': process matching "
        "requests at once, then hold their answer this long (a client gone meanwhile never sees it).",
    )
    slow_download_bytes_per_second: int | None = Field(
        default=None, ge=1, description="Throttle file downloads to this rate."
    )
    cut_download_after_bytes: int | None = Field(
        default=None, ge=0, description="Cut file download bodies after this many bytes."
    )
    cut_download_times: int = Field(default=1, ge=0, description="How many downloads get cut.")
    close_stream_after_idle_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of SSE connections (drawn when each opens) that the server closes cleanly "
        "right after delivering a session.status_idle frame.",
    )
    silent_stream_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of SSE connections (drawn when each opens) that go silent after "
        "silent_stream_after_events event frames: no events, no pings, left open until the client "
        "closes it (only a client read timeout notices).",
    )
    silent_stream_after_events: int = Field(
        default=1, ge=0, description="Event frames a silent SSE connection delivers before going silent."
    )
    stream_open_429_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of GET .../events/stream requests answered 429 (with retry-after: "
        "retry_after_seconds) before anything is streamed.",
    )

    @field_validator("slow_answers")
    @classmethod
    def _check_slow_answers(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            parts = rule.split()
            if len(parts) != 3 or not parts[2].replace(".", "", 1).isdigit():
                raise ValueError(f"slow_answers rule {rule!r} must read 'METHOD path-substring SECONDS'")
        return rules


class EmulatorConfig(BaseModel):
    """Everything that shapes the emulator's behaviour."""

    api_key: str | None = Field(
        default=None, description="Only this key is accepted; any non-empty key when unset."
    )
    state_file: Path | None = Field(
        default=None, description="Persist state to this JSON file and reload it on start."
    )
    blob_dir: Path | None = Field(
        default=None, description="Where file contents are stored (a temporary folder when unset)."
    )
    ping_interval: float = Field(default=15.0, gt=0, description="Seconds between SSE ping frames.")
    event_delay: float = Field(
        default=0.0, ge=0, description="Default pause between emitted events of a scripted turn."
    )
    output_listing_delay: float = Field(
        default=0.0, ge=0, description="Seconds after a turn before its output files are listable."
    )
    close_stream_on_idle: bool = Field(
        default=False,
        description="Close SSE streams after an idle that ends the turn (UNKNOWN upstream).",
    )
    interrupt_stop_reason: Literal["end_turn", "interrupted"] = Field(
        default="end_turn",
        description="stop_reason of the idle after user.interrupt (UNKNOWN upstream).",
    )
    require_scope_beta: bool = Field(
        default=True,
        description="Reject files.list(scope_id=...) without the managed-agents beta header.",
    )
    console_base_url: str = Field(
        default="https://platform.claude.com/workspaces/default/sessions",
        description="Console URL prefix for sessions.",
    )
    faults: FaultConfig = Field(default_factory=FaultConfig, description="Fault injection settings.")
    list_input_copies_in_scope: bool = Field(
        default=False,
        description="Show the session-scoped copies of mounted input files in files.list(scope_id=...) "
        "(UNKNOWN upstream).",
    )
    history_lag: float = Field(
        default=0.0,
        ge=0,
        description="events.list shows the history as it was this many seconds ago: an event becomes "
        "listable that long after it was emitted, and a queued user event that got processed is still "
        "listed as queued for that long (the live stream is not delayed).",
    )
    queued_events_position: Literal["inline", "first", "last", "mixed"] = Field(
        default="inline",
        description="Where events.list puts queued user events (processed_at: null) in ascending order: "
        "inline (where they were accepted), first, last, or mixed (each request draws first or last "
        "from faults.seed).",
    )
    output_indexing_window: float = Field(
        default=0.0,
        ge=0,
        description="When > 0, a turn's output files are unlisted until its idle, then become listable "
        "one by one: file i of n at idle + output_listing_delay + window * i / n.",
    )
    post_idle_running: float = Field(
        default=0.0,
        ge=0,
        description="For this many seconds after a session.status_idle, retrieve and list still say "
        "running and archive/delete are refused (the post-idle race); a new turn ends the window.",
    )
    status_leads_idle: float = Field(
        default=0.0,
        ge=0,
        description="The status becomes idle at once but session.status_idle is emitted this many "
        "seconds later (earlier if another event of the session comes first; order is kept). With "
        "post_idle_running also set, each idle draws one of the two races (50/50, faults.seed).",
    )

    webhook_url: str | None = Field(
        default=None,
        description="POST signed webhook deliveries (session.status_run_started, status_idled, "
        "status_rescheduled, status_terminated) to this URL; off when unset (emulator/webhooks.py).",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="The whsec_<base64> secret deliveries are signed with (Standard Webhooks); "
        "make one with emulator.webhooks.new_webhook_secret(). Deliveries need it and webhook_url.",
    )
    webhook_delay: float = Field(
        default=0.0, ge=0, description="Seconds a delivery waits before its first attempt."
    )
    webhook_jitter: float = Field(
        default=0.0,
        ge=0,
        description="Each delivery also waits a seeded random 0..this many seconds (faults.seed), so "
        "deliveries arrive out of order.",
    )
    webhook_retries: int = Field(
        default=3, ge=0, description="Retries of a failed delivery (same event id) before it is dropped."
    )
    webhook_retry_backoff: float = Field(
        default=0.5, ge=0, description="Seconds before the first retry; doubles for each next one."
    )
    webhook_timeout: float = Field(default=5.0, gt=0, description="Seconds one delivery attempt may take.")

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, secret: str | None) -> str | None:
        if secret is None:
            return None
        body = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "==", validate=False)
        except ValueError:
            key = b""
        if not secret.startswith("whsec_") or not key:
            raise ValueError("webhook_secret must read whsec_<base64 of the key bytes>")
        return secret

    @classmethod
    def profile(cls, name: ProfileName, *, scale: float = 1.0, **overrides: Any) -> EmulatorConfig:
        """Return the settings of a named profile, with durations scaled and ``overrides`` applied.

        Args:
            name: ``instant`` (every knob off: the defaults) or ``realistic`` (every realism knob
                on, see :data:`REALISTIC_PROFILE`).
            scale: Multiplies every duration of the profile (lags, windows, delays,
                ``ping_interval``, ``retry_after_seconds``); rates and counts are kept.
            **overrides: ``EmulatorConfig`` fields that win over the profile. ``faults`` may be a
                dict (merged into the profile's fault settings) or a ``FaultConfig`` (replaces them).

        Raises:
            ValueError: For an unknown profile name or a ``scale`` that is not positive.
        """
        if name not in ("instant", "realistic"):
            raise ValueError(f"unknown emulator profile {name!r}; use 'instant' or 'realistic'")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        values: dict[str, Any] = {}
        faults: dict[str, Any] = {}
        if name == "realistic":
            for key, value in REALISTIC_PROFILE.items():
                if key != "faults":
                    values[key] = _scaled(value, scale) if key in SCALED_SETTINGS else value
            for key, value in REALISTIC_PROFILE["faults"].items():
                faults[key] = _scaled(value, scale) if key in SCALED_FAULT_SETTINGS else value
        fault_overrides = overrides.pop("faults", None)
        values.update(overrides)
        if isinstance(fault_overrides, FaultConfig):
            values["faults"] = fault_overrides
        else:
            values["faults"] = FaultConfig(**{**faults, **(fault_overrides or {})})
        return cls(**values)


def _scaled(seconds: float, scale: float) -> float:
    """``seconds * scale`` without float noise (1.5 * 0.1 is 0.15, not 0.15000000000000002)."""
    return float(f"{seconds * scale:.12g}")
