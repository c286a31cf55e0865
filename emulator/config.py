"""Emulator settings: the CLI options, the control API and tests all set these."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


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
        description="Only inject failures on paths containing one of these substrings (empty: all /v1 paths).",
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
