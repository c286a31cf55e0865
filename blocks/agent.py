"""``ManagedAgent``: one deployed agent, pinned to a version, with the credentials to run it, and
``ManagedAgentSessionRun``, the ``JobRun`` its ``trigger()`` returns (a JobBlock and its JobRun
live together, as in ``prefect-kubernetes``' ``jobs.py``)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, cast

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import JobBlock, JobRun
from prefect.blocks.core import Block
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import ConfigDict, Field

from managed_agents_core.exceptions import BlockNotFoundError, InlineBlockError
from managed_agents_core.lifecycle import (
    LoggingObserver,
    SessionRunReport,
    acreate_session,
    adrive_session,
    ainterrupt_and_archive,
    build_session_result,
    user_message,
)
from managed_agents_core.package_info import DOCUMENTATION_URL, LOGO_URL
from managed_agents_core.results import SessionResult
from managed_agents_core.session_stream import ConfirmationPolicy, interrupt_session

from .credentials import AnthropicCredentials

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
            **options: Passed to :func:`atrigger_session` (title, metadata,
                resources, policy, max_duration).
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

    Returned by ``ManagedAgent.trigger()``. The stream opens in :meth:`await_for_completion`,
    *before* the kickoff message is sent.

    Example:
        ```python
        run = ManagedAgent.load("my-agent").trigger("Summarize the repo")
        run.wait_for_completion()
        result = run.fetch_result()
        ```

    Args:
        agent: The ``ManagedAgent`` block the session was started from.
        session_id: The session's id.
        kickoff: Events to send once the stream is open.
        resume: Re-attach to a session that may already have received its kickoff.
        policy: Confirmation policy for ``requires_action``.
        max_duration: Wall-clock limit in seconds; defaults to the block's ``max_duration_seconds``.
    """

    def __init__(
        self,
        agent: ManagedAgent,
        session_id: str,
        *,
        kickoff: list[dict[str, Any]] | None = None,
        resume: bool = False,
        policy: ConfirmationPolicy | None = None,
        max_duration: float | None = None,
    ) -> None:
        self.agent = agent
        self.session_id = session_id
        self.kickoff = kickoff
        self.resume = resume
        self.policy = policy
        self.max_duration = max_duration if max_duration is not None else agent.max_duration_seconds
        self.report: SessionRunReport | None = None
        self._lock = asyncio.Lock()

    @property
    def console_url(self) -> str:
        """Where to inspect the session."""
        return str(self.agent.console_url(self.session_id))

    async def await_for_completion(self) -> None:
        """Stream the session until its turn ends.

        Raises:
            SessionError: A typed subclass when the session did not complete (carries the id).
        """
        async with self._lock:
            if self.report is None:
                self.logger.info("Streaming session %s (%s)", self.session_id, self.console_url)
                async with self.agent.credentials.get_async_client() as client:
                    self.report = await adrive_session(
                        client,
                        self.session_id,
                        console_url=self.console_url,
                        kickoff=self.kickoff,
                        resume=self.resume,
                        policy=self.policy,
                        max_duration=self.max_duration,
                        observer=LoggingObserver(self.logger, self.agent.log_verbosity, self.session_id),
                    )
        for warning in self.report.outcome.warnings:
            self.logger.warning(warning)
        self.report.outcome.raise_for_failure()

    @async_dispatch(await_for_completion)
    def wait_for_completion(self) -> None:  # type: ignore[override]
        """Stream the session until its turn ends (sync twin of :meth:`await_for_completion`)."""
        run_coro_as_sync(self.await_for_completion())

    async def afetch_result(self) -> SessionResult:
        """Return the run's :class:`SessionResult`, waiting for completion first if needed.

        Output files are collected by the ``run_agent_session`` flow; this result lists none.
        """
        await self.await_for_completion()
        assert self.report is not None
        return build_session_result(
            self.report, agent_id=self.agent.agent_id, agent_version=self.agent.version
        )

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
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    resources: list[dict[str, Any]] | None = None,
    policy: ConfirmationPolicy | None = None,
    max_duration: float | None = None,
) -> ManagedAgentSessionRun:
    """Start a session pinned to the block's agent version; return its ``JobRun``.

    The prompt is sent by :meth:`ManagedAgentSessionRun.await_for_completion` once the event
    stream is open, so no early event is missed.

    Args:
        agent: The ``ManagedAgent`` block.
        prompt: The first user message.
        title: Session title.
        metadata: Extra session metadata (string values).
        resources: File / memory-store resource params.
        policy: Confirmation policy for ``requires_action``.
        max_duration: Wall-clock limit in seconds (defaults to the block's).
    """
    block_name = getattr(agent, "_block_document_name", None)
    meta = {"prefect_agent_version": str(agent.version), **(metadata or {})}
    if block_name:
        meta["prefect_block"] = str(block_name)
    async with agent.credentials.get_async_client() as client:
        session = await acreate_session(
            client,
            agent_reference=agent.agent_reference(),
            environment_id=agent.environment_id,
            resources=resources,
            metadata=meta,
            title=title,
        )
    run = ManagedAgentSessionRun(
        agent, str(session.id), kickoff=[user_message(prompt)], policy=policy, max_duration=max_duration
    )
    run.logger.info("Started session %s: %s", session.id, run.console_url)
    return run


@async_dispatch(atrigger_session)
def trigger_session(
    agent: ManagedAgent,
    prompt: str,
    *,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    resources: list[dict[str, Any]] | None = None,
    policy: ConfirmationPolicy | None = None,
    max_duration: float | None = None,
) -> ManagedAgentSessionRun:
    """Start a session pinned to the block's agent version (sync twin of :func:`atrigger_session`)."""
    run = run_coro_as_sync(
        atrigger_session(
            agent,
            prompt,
            title=title,
            metadata=metadata,
            resources=resources,
            policy=policy,
            max_duration=max_duration,
        )
    )
    assert run is not None
    return run
