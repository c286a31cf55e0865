"""``ManagedAgent``: one deployed agent, pinned to a version, with the credentials to run it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import JobBlock
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from pydantic import ConfigDict, Field

from .credentials import AnthropicCredentials
from .exceptions import BlockNotFoundError, InlineBlockError
from .package_info import DOCUMENTATION_URL, LOGO_URL
from .results import SessionResult

if TYPE_CHECKING:
    from .session_run import ManagedAgentSessionRun

CONSOLE_SESSION_URL = "https://platform.claude.com/workspaces/default/sessions/{session_id}"


class ManagedAgent(JobBlock[SessionResult]):
    """A Claude Managed Agent pinned to one version, plus the environment its sessions run in.

    ``deploy_agent`` creates or updates the agent from a spec and saves this block;
    ``pin_agent_version`` moves the pin (rollback or promotion). Keep one block per stage
    (for example ``report-writer-dev`` and ``report-writer-prod``) to pin stages independently.

    Examples:
        Start a session on the pinned version and wait for its result:
        ```python
        from blocks import ManagedAgent

        agent = ManagedAgent.load("BLOCK_NAME")
        run = agent.trigger("Summarise the files you were given.")
        run.wait_for_completion()
        result = run.fetch_result()
        ```
    """

    _block_type_name = "Managed Agent"
    _block_type_slug = "managed-agent"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCUMENTATION_URL  # type: ignore[assignment]

    # A validation error never echoes the input (its credentials may hold a key).
    model_config = ConfigDict(hide_input_in_errors=True)

    credentials: AnthropicCredentials = Field(
        default_factory=AnthropicCredentials,
        description="Credentials used to reach the Managed Agents API.",
    )
    agent_id: str = Field(
        default=...,
        min_length=1,
        title="Agent ID",
        description="Id of the remote agent (agent_...).",
    )
    version: int = Field(
        default=...,
        ge=1,
        description="Pinned agent version every session of this block runs; move it with pin_agent_version.",
    )
    environment_id: str = Field(
        default=...,
        min_length=1,
        title="Environment ID",
        description="Id of the environment sessions run in (env_...).",
    )
    agent_name: str = Field(default=..., min_length=1, description="Name of the remote agent.")
    spec_fingerprint: str | None = Field(
        default=None,
        description="sha256 of the agent spec the pinned version was deployed from (set by deploy_agent).",
    )
    max_duration_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Default wall-clock limit of one session in seconds; no limit when empty.",
    )
    log_verbosity: Literal["summary", "tools", "full"] = Field(
        default="summary",
        description="How much of a session is logged to Prefect: summary, tools (every tool call) or full.",
    )
    input_roots: list[str] | None = Field(
        default=None,
        description="Folders the input files, batch files and spec files of this block's runs must be "
        "inside (after symlinks). Unset: the worker's MANAGED_AGENTS_INPUT_ROOTS (default: its "
        "working directory). Flow-run parameters cannot change this.",
    )
    output_roots: list[str] | None = Field(
        default=None,
        description="Folders the output_dir of this block's runs must be inside (after symlinks). "
        "Unset: the worker's MANAGED_AGENTS_OUTPUT_ROOTS (default: ./outputs). Flow-run parameters "
        "cannot change this.",
    )

    def agent_reference(self) -> dict[str, Any]:
        """Return the pinned ``agent`` parameter for ``sessions.create``."""
        return {"type": "agent", "id": self.agent_id, "version": self.version}

    def console_url(self, session_id: str) -> str:
        """Return the Claude Console page of a session.

        Args:
            session_id: The session's id.
        """
        return CONSOLE_SESSION_URL.format(session_id=session_id)

    async def atrigger(self, prompt: str, **options: Any) -> ManagedAgentSessionRun:
        """Start a session on the pinned version and return its ``JobRun``.

        Args:
            prompt: The first user message.
            **options: Passed to ``blocks.session_run.atrigger_session`` (title, metadata,
                resources, policy, max_duration).
        """
        from .session_run import atrigger_session

        return await atrigger_session(self, prompt, **options)

    @async_dispatch(atrigger)
    def trigger(self, prompt: str, **options: Any) -> ManagedAgentSessionRun:  # type: ignore[override]
        """Start a session on the pinned version and return its ``JobRun`` (sync twin of :meth:`atrigger`).

        Args:
            prompt: The first user message.
            **options: Passed to ``blocks.session_run.trigger_session``.
        """
        from .session_run import trigger_session

        # _sync=True: the dispatch here already chose the sync path; never hand back a coroutine.
        return cast("ManagedAgentSessionRun", trigger_session(self, prompt, _sync=True, **options))  # type: ignore[call-arg]


def _missing_block(name: str) -> BlockNotFoundError:
    return BlockNotFoundError(
        f"No ManagedAgent block named {name!r}. Run deploy_agent with block_name={name!r} first, "
        "or check the name with `prefect block ls`."
    )


def _is_missing_document(exc: ValueError) -> bool:
    # Prefect reports an unknown (or unusable) block name as a plain ValueError with this text.
    return "Unable to find block document" in str(exc)


def in_deployment_run() -> bool:
    """True when the current flow run was created from a deployment, so its parameters came from
    whoever ran the deployment (the UI's Run form, the API, an Automation), not from code.

    This is ``prefect.runtime.deployment.id`` for the deployment's own flow run, read from the run
    context (no API call). Subflows that our flows start get their parameters from code, and
    those parameters were checked when the deployment's run began.
    """
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def is_saved_block(block: Block) -> bool:
    """True when ``block`` was loaded from a saved block document (by name or ``$ref``)."""
    return getattr(block, "_block_document_id", None) is not None


def refuse_inline_block(block: Block, parameter: str) -> None:
    """Refuse an inline (unsaved) block given as a deployment run's parameter.

    Deployment parameters name saved blocks; an inline block, whose fields (a ``base_url``, a
    key) come from whoever ran the deployment, is only accepted from Python.

    Args:
        block: The parameter's value.
        parameter: The parameter's name, for the message.

    Raises:
        InlineBlockError: This is a deployment run and ``block`` is not a saved block document.
    """
    if in_deployment_run() and not is_saved_block(block):
        kind = type(block).__name__
        raise InlineBlockError(
            f"The {parameter!r} parameter of this deployment run is an inline {kind} block; deployment "
            f"runs only take saved blocks. Pass the name of a saved {kind} block (create or edit it in "
            "the Prefect UI, or with deploy_agent) instead. Nothing was sent or created."
        )


async def aresolve_agent(agent: ManagedAgent | str) -> ManagedAgent:
    """Return ``agent`` itself, or load the saved ``ManagedAgent`` block with that name.

    Args:
        agent: A block, or the name of a saved one.

    Raises:
        BlockNotFoundError: No block has that name.
        InlineBlockError: A deployment run was given an inline block (see :func:`refuse_inline_block`).
    """
    if isinstance(agent, ManagedAgent):
        refuse_inline_block(agent, "agent")
        return agent
    try:
        return await ManagedAgent.aload(agent)
    except ValueError as exc:
        if _is_missing_document(exc):
            raise _missing_block(agent) from None
        raise


def load_agent_block(name: str) -> ManagedAgent | None:
    """Load the saved ``ManagedAgent`` block ``name``; None when there is none (sync callers).

    Args:
        name: The block's name.
    """
    try:
        block = ManagedAgent.load(name, _sync=True)  # type: ignore[call-arg]  # async_dispatch kwarg
    except ValueError as exc:
        if _is_missing_document(exc):
            return None
        raise
    assert isinstance(block, ManagedAgent)  # _sync=True: never a coroutine
    return block


def require_agent_block(name: str) -> ManagedAgent:
    """Load the saved ``ManagedAgent`` block ``name`` (sync callers).

    Args:
        name: The block's name.

    Raises:
        BlockNotFoundError: No block has that name.
    """
    block = load_agent_block(name)
    if block is None:
        raise _missing_block(name)
    return block
