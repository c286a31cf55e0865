"""Environment settings, read with pydantic-settings: connection defaults and runtime timing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AnthropicSettings(BaseSettings):
    """Connection defaults taken from ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``.

    Used only for the fields an :class:`~blocks.credentials.AnthropicCredentials` block leaves
    unset, so a block saved without a key keeps following the environment it runs in.
    """

    model_config = SettingsConfigDict(env_prefix="ANTHROPIC_", extra="ignore")

    api_key: SecretStr | None = Field(default=None, description="API key (ANTHROPIC_API_KEY).")
    base_url: str | None = Field(default=None, description="API base URL (ANTHROPIC_BASE_URL).")


class RuntimeSettings(BaseSettings):
    """How long the runtime waits for a service that lags and races (``MANAGED_AGENTS_*``).

    The real service is distributed: its history (``events.list``) trails the live stream, its
    output files are indexed seconds after a turn ends, and its status may trail or lead the
    events. These bounds say how long to wait for each; the defaults suit the real API, and the
    test suite scales them down with the emulator's realistic profile.
    """

    model_config = SettingsConfigDict(env_prefix="MANAGED_AGENTS_", extra="ignore")

    status_poll_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds without a stream event after which the session's own status is checked, "
        "so an idle or terminated session is noticed even when no event ever arrives.",
    )
    stream_read_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Reconnect a stream that delivered no byte, not even a heartbeat, for this many seconds.",
    )
    settle_backoff_cap: float = Field(
        default=1.0,
        gt=0,
        description="Longest pause between checks while the stream, history and status disagree "
        "(the end of a turn waits at most the history's lag plus this).",
    )
    idle_settle_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Fail (typed) when the status has said idle this long and the history never showed "
        "how the turn ended.",
    )
    history_lag_allowance: float = Field(
        default=5.0,
        ge=0,
        description="How long a committed write may take to appear in the history: a send whose answer "
        "was lost is looked for this long before it is sent again.",
    )
    post_idle_settle_timeout: float = Field(
        default=30.0,
        gt=0,
        description="How long to wait for retrieve to stop saying running after the turn's idle "
        "(the post-idle race) before the final status is read anyway.",
    )
    output_indexing_window: float = Field(
        default=3.0,
        ge=0,
        description="Seconds after a turn ends within which the service indexes its output files "
        "(1 to 3 s on the real API): outputs are listed until this has passed and the listing "
        "stopped changing.",
    )
    waiting_log_interval: float = Field(
        default=300.0,
        gt=0,
        description="While a turn runs, log every this many seconds that the run is still waiting, and on what.",
    )
    retry_backoff_scale: float = Field(
        default=1.0,
        gt=0,
        description="Multiplies every wait between the retry policy's attempts (the attempts stay the same).",
    )


DEFAULT_INPUT_ROOT = Path(".")
"""Inputs may come from the process's working directory (the deployment's) unless configured."""
DEFAULT_OUTPUT_ROOT = Path("outputs")
"""Outputs may go to ``./outputs`` unless configured."""


def _split_list(value: Any, separators: str) -> Any:
    """A list setting as the environment gives it: a JSON list, or items split on ``separators``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    return [part.strip() for part in text.split(separators[0]) if part.strip()]


class SecuritySettings(BaseSettings):
    """What flow-run parameters may reach on the worker (``MANAGED_AGENTS_*``): set by whoever
    deploys the worker, never by a parameter (see ``docs/security.md``).

    List values are a JSON list (``'["/data/in", "/srv/shared"]'``) or, for paths, separated by
    ``os.pathsep`` (``/data/in:/srv/shared``), for modules by commas. Relative roots are taken
    from the working directory at the time of the check. An empty list allows nothing.
    """

    model_config = SettingsConfigDict(env_prefix="MANAGED_AGENTS_", extra="ignore")

    input_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_INPUT_ROOT],
        description="Folders input files, batch item files and spec files must resolve inside "
        "(after symlinks). Default: the working directory.",
    )
    output_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_OUTPUT_ROOT],
        description="Folders output_dir must resolve inside (after symlinks). Default: ./outputs.",
    )
    tool_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules imported to register their @custom_tool functions; an import path "
        "'package.module:function' in a parameter or spec is only accepted inside these.",
    )

    @field_validator("input_roots", "output_roots", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        return _split_list(value, os.pathsep + ",")

    @field_validator("tool_modules", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        return _split_list(value, ", " + os.pathsep)
