"""``ManagedAgent``: one deployed agent, pinned to a version, with the credentials to run it, and
``ManagedAgentSessionRun``, the ``JobRun`` its ``trigger()`` returns (a JobBlock and its JobRun
live together, as in ``prefect-kubernetes``' ``jobs.py``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, cast

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import JobBlock, JobRun
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.context import FlowRunContext
from prefect.filesystems import WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import ConfigDict, Field

from managed_agents_core.custom_tools import ToolDispatcher, ToolSource
from managed_agents_core.direct_steps import DirectSteps
from managed_agents_core.exceptions import BlockNotFoundError, InlineBlockError
from managed_agents_core.inputs import InputFile, MemoryStoreAttachment
from managed_agents_core.keys import BLOCK_KEY
from managed_agents_core.lifecycle import ainterrupt_and_archive
from managed_agents_core.memory_audit import MemoryChange
from managed_agents_core.outcome_spec import OutcomeSpec
from managed_agents_core.output_sinks import OutputSink
from managed_agents_core.package_info import DOCUMENTATION_URL, LOGO_URL
from managed_agents_core.pipeline import SessionPipeline, SessionRequest
from managed_agents_core.repositories import GitHubRepository
from managed_agents_core.results import SessionResult
from managed_agents_core.session_stream import interrupt_session
from managed_agents_core.turn import ConfirmationPolicy, CustomToolDispatcher

from .credentials import AnthropicCredentials
from .filesystem_sink import output_destination
from .schema_cache import CachedJsonSchema

CONSOLE_SESSION_URL = "https://platform.claude.com/workspaces/{workspace_id}/sessions/{session_id}"


class ManagedAgent(CachedJsonSchema, JobBlock[SessionResult]):
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
    budget_usd: Decimal | None = Field(
        default=None,
        ge=Decimal("0.01"),
        title="Budget (USD)",
        description="Default server-enforced spend ceiling of each new session (list cost, USD): the "
        "service ends the session's turn with budget_reached once it is reached. No budget when empty.",
    )
    vault_ids: list[str] = Field(
        default_factory=list,
        title="Vault IDs",
        description="Vaults every new session gets (their credentials reach the agent's MCP servers and "
        "secrets; set by deploy_agent from the spec). Also the only vaults a flow-run parameter may ask "
        "for: a run can narrow them, never add another.",
    )
    github_token_secret: str | None = Field(
        default=None,
        title="GitHub token (Secret block)",
        description="Name of a Prefect Secret block holding the token the service clones the sessions' "
        "GitHub repositories with. Unset: GITHUB_TOKEN from the worker's environment (public "
        "repositories need none). Flow-run parameters cannot change this.",
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

    async def agithub_token(self) -> str | None:
        """The token for the sessions' GitHub repositories: the ``github_token_secret`` block's
        value, else ``GITHUB_TOKEN`` from the environment, else None (public repositories)."""
        if self.github_token_secret:
            secret = cast("Secret[Any]", await Secret.aload(self.github_token_secret))
            return str(secret.get())
        return os.environ.get("GITHUB_TOKEN") or None

    def console_url(self, session_id: str) -> str:
        """Return the Claude Console page of a session (in the credentials' workspace).

        Args:
            session_id: The session's id.
        """
        return CONSOLE_SESSION_URL.format(workspace_id=self.credentials.workspace_id, session_id=session_id)

    async def atrigger(self, prompt: str, **options: Any) -> ManagedAgentSessionRun:
        """Start a session on the pinned version and return its ``JobRun``.

        Args:
            prompt: The first user message.
            **options: Passed to :func:`atrigger_session` (files, memory_stores, output_dir,
                policy, max_duration, custom_tools, outcome, archive_when_done, title, metadata,
                budget_usd, github_repositories, vault_ids).
        """
        return await atrigger_session(self, prompt, **options)

    @async_dispatch(atrigger)
    def trigger(self, prompt: str, **options: Any) -> ManagedAgentSessionRun:  # type: ignore[override]
        """Start a session on the pinned version and return its ``JobRun`` (sync twin of :meth:`atrigger`).

        Args:
            prompt: The first user message.
            **options: Passed to :func:`trigger_session`.
        """
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


class ManagedAgentSessionRun(JobRun[SessionResult]):
    """A started agent session: wait for it, fetch its result, or interrupt and archive it.

    Returned by ``ManagedAgent.trigger()``. It runs the same session pipeline as the flows
    (:class:`~managed_agents_core.pipeline.SessionPipeline`) with plain SDK calls: the session is
    created by ``trigger()``; the stream opens in :meth:`await_for_completion`, *before* the
    kickoff is sent; :meth:`afetch_result` collects the output files (when an ``output_dir``
    was given), lists what the session wrote to its memory stores, and archives it if asked.

    Example:
        ```python
        run = ManagedAgent.load("my-agent").trigger("Summarize the repo", output_dir="outputs")
        run.wait_for_completion()
        result = run.fetch_result()
        ```

    Args:
        agent: The ``ManagedAgent`` block the session is started from.
        request: What the session is asked to do.
        metadata: Session metadata naming who started it.
    """

    def __init__(
        self, agent: ManagedAgent, request: SessionRequest, *, metadata: dict[str, str] | None = None
    ) -> None:
        self.agent = agent
        self.pipeline = SessionPipeline(agent, DirectSteps(agent, self.logger, metadata=metadata), request)
        self._lock = asyncio.Lock()

    @property
    def session_id(self) -> str:
        """The session's id (``trigger()`` has created it)."""
        if self.pipeline.session is None:
            raise RuntimeError("the session is created by ManagedAgent.trigger(); it has not run yet")
        return self.pipeline.session.session_id

    @property
    def console_url(self) -> str:
        """Where to inspect the session."""
        return str(self.agent.console_url(self.session_id))

    @property
    def memory_changes(self) -> list[MemoryChange] | None:
        """What the session wrote to its memory stores (after :meth:`afetch_result`; None when
        no store was attached)."""
        return self.pipeline.finished.memory_changes if self.pipeline.finished is not None else None

    async def astart(self) -> None:
        """Check the request, upload the inputs, attach the memory stores and create the session."""
        await self.pipeline.start()

    async def await_for_completion(self) -> None:
        """Stream the session until its turn ends.

        Raises:
            SessionError: A typed subclass when the session did not complete (carries the id).
        """
        async with self._lock:
            await self.pipeline.drive()

    @async_dispatch(await_for_completion)
    def wait_for_completion(self) -> None:  # type: ignore[override]
        """Stream the session until its turn ends (sync twin of :meth:`await_for_completion`)."""
        run_coro_as_sync(self.await_for_completion())

    async def afetch_result(self) -> SessionResult:
        """Return the run's :class:`SessionResult`, waiting for completion first if needed.

        The first call collects the output files into the ``output_dir`` given to ``trigger()``,
        reads the memory changes, and archives the session when ``archive_when_done``.
        """
        async with self._lock:
            return await self.pipeline.finish()

    @async_dispatch(afetch_result)
    def fetch_result(self) -> SessionResult:  # type: ignore[override]
        """Return the run's :class:`SessionResult` (sync twin of :meth:`afetch_result`)."""
        result = run_coro_as_sync(self.afetch_result())
        assert result is not None
        return result

    async def ainterrupt(self) -> None:
        """Ask the session to stop at its next safe point (``user.interrupt``)."""
        async with self.agent.credentials.get_async_client() as client:
            await interrupt_session(client, self.session_id)

    @async_dispatch(ainterrupt)
    def interrupt(self) -> None:
        """Ask the session to stop at its next safe point (sync twin of :meth:`ainterrupt`)."""
        run_coro_as_sync(self.ainterrupt())

    async def aarchive(self) -> str:
        """Interrupt the session if it runs, then archive it (idempotent)."""
        async with self.agent.credentials.get_async_client() as client:
            return await ainterrupt_and_archive(client, self.session_id, logger=self.logger)

    @async_dispatch(aarchive)
    def archive(self) -> str:
        """Interrupt the session if it runs, then archive it (sync twin of :meth:`aarchive`)."""
        return str(run_coro_as_sync(self.aarchive()))


async def atrigger_session(
    agent: ManagedAgent,
    prompt: str,
    *,
    files: Sequence[InputFile | str] = (),
    memory_stores: Sequence[MemoryStoreAttachment | str] = (),
    resources: Sequence[Mapping[str, Any]] = (),
    output_dir: str | os.PathLike[str] | OutputSink | WritableFileSystem | None = None,
    policy: ConfirmationPolicy | None = None,
    max_duration: float | None = None,
    custom_tools: Sequence[ToolSource] | CustomToolDispatcher | None = None,
    outcome: OutcomeSpec | None = None,
    archive_when_done: bool = False,
    title: str | None = None,
    metadata: Mapping[str, str] | None = None,
    budget_usd: Decimal | None = None,
    github_repositories: Sequence[GitHubRepository | str | Mapping[str, Any]] = (),
    vault_ids: Sequence[str] | None = None,
) -> ManagedAgentSessionRun:
    """Start a session pinned to the block's agent version; return its ``JobRun``.

    Everything named is checked before anything is uploaded or created. The kickoff is sent by
    :meth:`ManagedAgentSessionRun.await_for_completion` once the event stream is open, so no
    early event is missed.

    Args:
        agent: The ``ManagedAgent`` block.
        prompt: The first user message.
        files: Local files to upload and mount (inside the input roots).
        memory_stores: Memory stores to attach, by id or name.
        resources: Further session resource params, passed as given.
        output_dir: Where :meth:`ManagedAgentSessionRun.afetch_result` writes the output files
            (a folder inside the output roots, or a filesystem block); not collected when None.
        policy: Confirmation policy for ``requires_action`` (``ask`` needs a flow run: use
            ``run_agent_session``).
        max_duration: Wall-clock limit in seconds (defaults to the block's).
        custom_tools: Functions (or registered tool names) run for the agent's custom tool
            calls, or a dispatcher.
        outcome: Send this outcome (``user.define_outcome``) instead of the prompt.
        archive_when_done: Archive the session once its outputs were collected.
        title: Session title.
        metadata: Extra session metadata (string values).
        budget_usd: The session's server-enforced spend ceiling (list cost, USD; default: the
            block's ``budget_usd``).
        github_repositories: GitHub repositories to mount (``https://github.com/<owner>/<repo>``,
            or ``{url, branch | commit, mount_path}``); the token is the block's.
        vault_ids: The session's vaults, among the block's ``vault_ids`` (default: the block's).

    Raises:
        ConfigurationError: The policy asks a person, or a custom tool name is unknown.
        VaultNotAllowedError: ``vault_ids`` names a vault the block does not list.
        PathOutsideRootsError: An input or the output folder is outside its roots.
    """
    dispatcher = custom_tools
    if custom_tools is not None and not callable(custom_tools):
        dispatcher = ToolDispatcher(custom_tools)
    request = SessionRequest(
        prompt=prompt,
        files=tuple(files),
        memory_stores=tuple(memory_stores),
        resources=tuple(resources),
        output_dir=output_destination(output_dir) if output_dir is not None else None,
        policy=policy,
        max_duration=max_duration,
        archive_when_done=archive_when_done,
        custom_tools=cast("CustomToolDispatcher | None", dispatcher),
        outcome=outcome,
        title=title,
        metadata=dict(metadata or {}),
        budget_usd=budget_usd,
        repositories=tuple(github_repositories),
        vault_ids=tuple(vault_ids) if vault_ids is not None else None,
    )
    block_name = getattr(agent, "_block_document_name", None)
    run = ManagedAgentSessionRun(
        agent, request, metadata={BLOCK_KEY: str(block_name)} if block_name else None
    )
    await run.astart()
    return run


@async_dispatch(atrigger_session)
def trigger_session(agent: ManagedAgent, prompt: str, **options: Any) -> ManagedAgentSessionRun:
    """Start a session pinned to the block's agent version (sync twin of :func:`atrigger_session`).

    Args:
        agent: The ``ManagedAgent`` block.
        prompt: The first user message.
        **options: Those of :func:`atrigger_session`.
    """
    run = run_coro_as_sync(atrigger_session(agent, prompt, **options))
    assert run is not None
    return run
