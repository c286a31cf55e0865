"""``AnthropicCredentials``: the API key and connection settings, and the SDK clients built from them."""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit

import anthropic
import httpx2
from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, SecretStr

from managed_agents_core.exceptions import (
    CredentialsDestinationError,
    MissingCredentialsError,
)
from managed_agents_core.package_info import DOCUMENTATION_URL, INTEGRATION_HEADER, LOGO_URL
from managed_agents_core.settings import AnthropicSettings

from .schema_cache import CachedJsonSchema

DEFAULT_WORKSPACE = "default"
"""The key's own workspace: no workspace header, ``/workspaces/default/`` in Console links."""


class AnthropicCredentials(CachedJsonSchema, CredentialsBlock):
    """Credentials and connection settings for the Claude Managed Agents API.

    Fields left empty fall back to the environment (``ANTHROPIC_API_KEY``,
    ``ANTHROPIC_BASE_URL``) each time a client is built, so a block saved without a key follows
    the environment of the process that uses it.

    A key only goes where it was saved to go: a block with its own ``api_key`` sends it to its own
    ``base_url`` (or, when that is empty, the environment's); a block without one uses the
    environment's key, which is only ever sent to the environment's ``ANTHROPIC_BASE_URL`` (or
    https://api.anthropic.com when that is unset). A block that would send the environment's key
    to another ``base_url`` fails with :class:`~managed_agents_core.exceptions.CredentialsDestinationError`
    when its client is built, before any request.

    Examples:
        Load stored credentials and list agents:
        ```python
        from blocks import AnthropicCredentials

        credentials = AnthropicCredentials.load("BLOCK_NAME")
        client = credentials.get_client()
        for agent in client.beta.agents.list():
            print(agent.id, agent.name)
        ```
    """

    _block_type_name = "Anthropic Credentials"
    _block_type_slug = "anthropic-credentials"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]

    # A validation error never echoes the input (it may hold a key).
    model_config = ConfigDict(hide_input_in_errors=True)

    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="Anthropic API key; when empty, ANTHROPIC_API_KEY from the environment is used.",
    )
    base_url: str | None = Field(
        default=None,
        title="Base URL",
        description="API base URL (for example a local emulator); when empty, ANTHROPIC_BASE_URL "
        "or the SDK default https://api.anthropic.com is used. A base URL other than the "
        "environment's needs this block's own API key: the environment's key is never sent elsewhere.",
    )
    workspace_id: str = Field(
        default=DEFAULT_WORKSPACE,
        pattern=r"^[A-Za-z0-9_-]{1,128}$",
        title="Workspace",
        description="The workspace (wrkspc_..., as in Console URLs), or 'default' for the key's own: "
        "every request selects it (anthropic-workspace-id) and session links point into it.",
    )
    timeout: float = Field(
        default=600.0,
        gt=0,
        description="Total timeout in seconds for one API request, as the SDK's timeout option.",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="How many times the SDK retries a request that failed transiently; 0 also turns "
        "off the setup tasks' own retries.",
    )

    def resolved_api_key(self) -> str:
        """Return the API key to use: the block's, else ``ANTHROPIC_API_KEY``.

        Raises:
            MissingCredentialsError: Neither is set, or the key is empty.
        """
        secret = self.api_key if self.api_key is not None else AnthropicSettings().api_key
        key = secret.get_secret_value().strip() if secret is not None else ""
        if not key:
            raise MissingCredentialsError(
                "No Anthropic API key: set the ANTHROPIC_API_KEY environment variable or the "
                "'api_key' field of the AnthropicCredentials block."
            )
        return key

    def resolved_base_url(self) -> str | None:
        """Return the base URL to use: the block's, else ``ANTHROPIC_BASE_URL``, else None (SDK default)."""
        return self.base_url or AnthropicSettings().base_url or None

    def display_base_url(self) -> str:
        """Return the base URL for messages (the SDK default when none is configured)."""
        return self.resolved_base_url() or DEFAULT_BASE_URL

    def resolved_pair(self) -> tuple[str, str]:
        """Return the ``(api_key, base_url)`` a client uses, after checking that they belong together.

        The block's own key goes to the block's ``base_url`` (else the environment's, else the
        default host). The environment's key (``ANTHROPIC_API_KEY``) only goes to the
        environment's ``ANTHROPIC_BASE_URL`` (else the default host).

        Raises:
            MissingCredentialsError: No API key is configured.
            CredentialsDestinationError: The block has no key of its own and a ``base_url`` that
                differs from the environment's: the environment's key would be sent elsewhere.
        """
        key = self.resolved_api_key()
        environment_url = AnthropicSettings().base_url or DEFAULT_BASE_URL
        if self.api_key is not None or not self.base_url:
            return key, self.base_url or environment_url
        if same_destination(self.base_url, environment_url):
            return key, self.base_url
        raise CredentialsDestinationError(
            f"These credentials have no API key of their own, and their base_url ({_origin(self.base_url)}) "
            f"is not where the environment's ANTHROPIC_API_KEY belongs ({_origin(environment_url)}, "
            "from ANTHROPIC_BASE_URL or the default API host): the environment's key is only ever sent "
            "there. Save an AnthropicCredentials block with both an api_key and this base_url and pass "
            "its name, or leave base_url empty. No request was made."
        )

    def headers(self) -> dict[str, str]:
        """Headers every request carries: the integration's, and the workspace unless ``default``
        (``anthropic-workspace-id``, as the SDK's ``workspace_id=`` sends it)."""
        if self.workspace_id == DEFAULT_WORKSPACE:
            return dict(INTEGRATION_HEADER)
        return {**INTEGRATION_HEADER, "anthropic-workspace-id": self.workspace_id}

    def get_client(self) -> anthropic.Anthropic:
        """Return a new synchronous SDK client.

        Raises:
            MissingCredentialsError: No API key is configured.
            CredentialsDestinationError: The key would be sent to a base URL it was not saved
                with (see :meth:`resolved_pair`).
        """
        api_key, base_url = self.resolved_pair()
        return anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.headers(),
            http_client=anthropic.DefaultHttpxClient(verify=tls_context()),
        )

    def get_async_client(self) -> anthropic.AsyncAnthropic:
        """Return a new asynchronous SDK client.

        Raises:
            MissingCredentialsError: No API key is configured.
            CredentialsDestinationError: The key would be sent to a base URL it was not saved
                with (see :meth:`resolved_pair`).
        """
        api_key, base_url = self.resolved_pair()
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.headers(),
            http_client=anthropic.DefaultAsyncHttpxClient(verify=tls_context()),
        )


DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Where the SDK sends requests when no base URL is configured."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _destination(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a malformed port never matches anything
        port = -1
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def same_destination(a: str, b: str) -> bool:
    """True when two base URLs name the same endpoint (scheme, host, port and path; case and
    default ports and a trailing slash do not matter).

    Args:
        a: A base URL.
        b: Another base URL.
    """
    return _destination(a) == _destination(b)


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL, for messages (never a path, query or user info)."""
    scheme, host, port, _ = _destination(url)
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS.get(scheme)) else "")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every client of this process shares (the SDK transport's own default).

    Building one loads the CA bundle, about 25 ms of CPU; each task builds its own client, and
    a batch one per item, so a shared context keeps that cost to once per process.
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are read when the first client is built.
    """
    return httpx2.create_ssl_context()
