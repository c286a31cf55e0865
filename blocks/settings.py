"""Environment defaults for the credentials block, read with pydantic-settings."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnthropicSettings(BaseSettings):
    """Connection defaults taken from ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``.

    Used only for the fields an :class:`~blocks.credentials.AnthropicCredentials` block leaves
    unset, so a block saved without a key keeps following the environment it runs in.
    """

    model_config = SettingsConfigDict(env_prefix="ANTHROPIC_", extra="ignore")

    api_key: SecretStr | None = Field(default=None, description="API key (ANTHROPIC_API_KEY).")
    base_url: str | None = Field(default=None, description="API base URL (ANTHROPIC_BASE_URL).")
