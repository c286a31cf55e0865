"""The runtime flow: run one agent session end to end and return a typed result.

``arun_agent_session`` is the flow; ``run_agent_session`` is its sync twin (:mod:`flows.twins`:
same name, signature, docstring, parameters and hooks) for plain Python, deployments and the
CLI. The cancel/crash hooks interrupt and archive the session.

No ``from __future__ import annotations`` here: Prefect builds the parameter model from the
signature, and string annotations of the ``Annotated`` aliases below would not resolve when a
deployment loads this file from its entrypoint.
"""

from collections.abc import Callable
from contextvars import ContextVar
from decimal import Decimal
from typing import Annotated, Any

from prefect import State, flow
from prefect.context import AsyncClientContext
from prefect.states import Completed
from pydantic import Field

from blocks.agent import ManagedAgent, aresolve_agent
from flows.approvals import ask_for_approval
from flows.hooks import cleanup_session, cleanup_session_if_timed_out
from flows.run_names import session_run_name
from flows.twins import returns_state_data, sync_twin
from managed_agents_core.inputs import InputFile, MemoryStoreAttachment
from managed_agents_core.outcome_spec import OutcomeSpec
from managed_agents_core.pipeline import SessionPipeline, SessionRequest
from managed_agents_core.repositories import GitHubRepository
from managed_agents_core.results import SessionResult
from managed_agents_core.turn import ConfirmationPolicy
from tasks.custom_tools import PrefectToolDispatcher
from tasks.steps import TaskSteps

AgentParam = Annotated[
    ManagedAgent | str,
    Field(description="The ManagedAgent block, or the name of a saved one (created by deploy_agent)."),
]
PromptParam = Annotated[
    str, Field(description="The task for the agent: the first user message of the session.")
]
FilesParam = Annotated[
    list[InputFile | str] | None,
    Field(
        description="Local files to upload and mount (a path, or {path, mount_path}), inside the "
        "worker's input roots ('~' is not expanded). Unchanged files are not uploaded again."
    ),
]
MemoryParam = Annotated[
    list[MemoryStoreAttachment | str] | None,
    Field(description="Memory stores to attach, by id or name, with read_write or read_only access."),
]
OutputDirParam = Annotated[
    str,
    Field(
        description="Local folder where the session's output files are written, inside the worker's "
        "output roots (default ./outputs; '~' is not expanded). Files the run did not write are "
        "never replaced."
    ),
]
PolicyParam = Annotated[
    ConfirmationPolicy | None,
    Field(
        description="How to answer tool confirmations (allow/deny by tool name, ask a person in the "
        "Prefect UI, or fail). Default: fail."
    ),
]
CustomToolsParam = Annotated[
    list[Callable[..., Any] | str] | None,
    Field(
        description="Custom tools run for the agent's custom tool calls: names of tools registered "
        "in code (@custom_tool, in a module of MANAGED_AGENTS_TOOL_MODULES), or from Python the "
        "functions themselves."
    ),
]
ToolRetriesParam = Annotated[
    int,
    Field(ge=0, description="Task-run retries of a failing custom tool before its error goes to the agent."),
]
OutcomeParam = Annotated[
    OutcomeSpec | None,
    Field(description="Send this outcome (user.define_outcome with a rubric) instead of the prompt."),
]
DurationParam = Annotated[
    float | None,
    Field(
        default=None,
        gt=0,
        description="Interrupt the session and fail after this many seconds (default: the block's limit).",
    ),
]
ArchiveParam = Annotated[bool, Field(description="Archive the session after its outputs were collected.")]
BudgetParam = Annotated[
    Decimal | None,
    Field(
        default=None,
        ge=Decimal("0.01"),
        description="Server-enforced spend ceiling of the session (list cost, USD): the service ends "
        "its turn with budget_reached once it is reached (default: the block's budget_usd).",
    ),
]
RepositoriesParam = Annotated[
    list[GitHubRepository] | None,
    Field(
        default=None,
        description="GitHub repositories to mount: https://github.com/<owner>/<repo>, or {url, branch "
        "or commit, mount_path}. The token is the block's (its Secret block, or the worker's "
        "GITHUB_TOKEN), never a parameter.",
    ),
]
VaultsParam = Annotated[
    list[str] | None,
    Field(
        default=None,
        description="Vault ids the session gets, among the block's vault_ids (empty: none; default: all of "
        "the block's). A run can narrow the block's vaults, never add another.",
    ),
]
DetachParam = Annotated[
    bool,
    Field(
        description="Start the session, send the prompt, then suspend this run (deployment runs only): the "
        "worker is free while the agent works. The run resumes when the session stops (webhook receiver "
        "or watcher flow, and the resume Automation) and collects the outputs as usual.",
    ),
]
SessionIdParam = Annotated[
    str | None,
    Field(
        description="Re-attach to this session (started by an earlier run that died) instead of "
        "starting one; files and memory_stores are then already attached and ignored."
    ),
]


AS_BATCH_ITEM: ContextVar[bool] = ContextVar("managed_agents_as_batch_item", default=False)
"""Set by ``run_agent_batch`` around an item's flow run: the run then publishes its report as
its one artifact, without a progress bar (the batch shows how far it got)."""


def tool_dispatcher(
    custom_tools: list[Callable[..., Any] | str] | None, retries: int = 0
) -> PrefectToolDispatcher | None:
    """The dispatcher for the flow's custom tools (None when there are none).

    Raises:
        UnknownCustomToolError: A name is not a registered tool (checked here, so a flow that
            builds its dispatcher first fails before anything is uploaded or created).
    """
    return PrefectToolDispatcher(custom_tools, retries=retries) if custom_tools else None


async def run_pipeline(agent: ManagedAgent | str, request: SessionRequest) -> State[SessionResult]:
    """Run ``request`` through the session pipeline with Prefect task runs, asking in the UI.

    Parameters are data: the block, its key's destination and every path the request names are
    checked before anything is uploaded or created.

    Returns:
        The run's final state: Completed, its message the result's summary (so the run page and
        an Automation see the cost), its data the result.
    """
    # One Prefect client for the whole run: every get_client() below (labels, artifacts, reads)
    # reuses it instead of opening a connection (and fetching a CSRF token) of its own.
    async with AsyncClientContext.get_or_create():
        block = await aresolve_agent(agent)
        block.credentials.resolved_pair()  # the key only goes where it was saved to go
        steps = TaskSteps(block, ask=ask_for_approval, progress=not AS_BATCH_ITEM.get())
        result = await SessionPipeline(block, steps, request).run()
    return Completed(message=result.summary(), data=result)


@returns_state_data
@flow(
    name="run-agent-session",
    flow_run_name=session_run_name,
    on_cancellation=[cleanup_session],
    on_crashed=[cleanup_session],
    on_failure=[cleanup_session_if_timed_out],
)
async def arun_agent_session(
    agent: AgentParam,
    prompt: PromptParam,
    files: FilesParam = None,
    memory_stores: MemoryParam = None,
    output_dir: OutputDirParam = "outputs",
    confirmation_policy: PolicyParam = None,
    max_duration_seconds: DurationParam = None,
    archive_when_done: ArchiveParam = False,
    custom_tools: CustomToolsParam = None,
    custom_tool_retries: ToolRetriesParam = 0,
    outcome: OutcomeParam = None,
    session_id: SessionIdParam = None,
    budget_usd: BudgetParam = None,
    github_repositories: RepositoriesParam = None,
    vault_ids: VaultsParam = None,
    detach: DetachParam = False,
) -> State[SessionResult]:
    """Run one Claude Managed Agents session: upload inputs, stream to the end, collect outputs.

    Args:
        agent: The ManagedAgent block, or the name of a saved one (created by deploy_agent).
        prompt: The task for the agent: the first user message of the session.
        files: Local files to upload and mount; unchanged files are not uploaded again. Each
            must be inside the input roots (``MANAGED_AGENTS_INPUT_ROOTS`` or the block's
            ``input_roots``; default: the working directory); ``~`` is not expanded.
        memory_stores: Memory stores to attach, by id or name, with their access mode.
        output_dir: Local folder where the session's output files are written; must be inside
            the output roots (``MANAGED_AGENTS_OUTPUT_ROOTS`` or the block's ``output_roots``;
            default: ``./outputs``). A file the run did not write is never replaced.
        confirmation_policy: How to answer tool confirmations (default: fail the run).
        max_duration_seconds: Interrupt the session and fail after this many seconds.
        archive_when_done: Archive the session after its outputs were collected.
        custom_tools: Custom tools run for the agent's custom tool calls: names of tools
            registered in code (``@custom_tool``, in a module of ``MANAGED_AGENTS_TOOL_MODULES``),
            or from Python the functions themselves. An unknown name fails before anything is
            uploaded or created.
        custom_tool_retries: Task-run retries of a failing custom tool before its error goes to
            the agent.
        outcome: Send this outcome (user.define_outcome with a rubric) instead of the prompt.
        session_id: Re-attach to this session (started by an earlier run that died) instead of
            starting one: nothing is uploaded, created or sent twice; the turn is streamed to
            its end and the outputs are collected.
        budget_usd: The session's server-enforced spend ceiling (list cost, USD): the service
            ends its turn with ``budget_reached`` (``SessionBudgetReachedError``) once the cost
            reaches it. Default: the block's ``budget_usd``; no budget when both are empty.
        github_repositories: GitHub repositories the service clones into the session
            (``https://github.com/<owner>/<repo>``, or ``{url, branch | commit, mount_path}``;
            any other URL fails before anything is created). The token is the block's
            ``github_token_secret`` Secret block, else the worker's ``GITHUB_TOKEN``.
        vault_ids: Vaults the session gets (their credentials reach the agent's MCP servers and
            secrets), among the block's ``vault_ids``; any other fails with
            ``VaultNotAllowedError`` before anything is created. Default: the block's; ``[]``: none.
        detach: Start the session and send the prompt, then suspend this run, so a long session
            holds no worker (deployment runs only; elsewhere ``ConfigurationError`` before anything
            is created). The run is tagged ``managed-agents:detached``; the webhook receiver
            (``managed-agents webhooks serve``) or the ``watch_detached_sessions`` flow emits
            ``managed-agents.session.idled`` when the session stops, and the Automation of
            ``flows.detached.resume_automation`` resumes the run: it re-attaches to the same
            session (nothing is sent twice), reads the turn from the history and collects the
            outputs. It waits at most the turn's limit (``max_duration_seconds``, else 24 h).

    Returns:
        The session's typed result: ids, final status and stop reason, final message, usage and
        cost, output files (path, size, sha256), event count and console URL. The run's
        state message says the same in one line (status, files, events, cost).
    """
    request = SessionRequest(
        prompt=prompt,
        files=tuple(files or ()),
        memory_stores=tuple(memory_stores or ()),
        output_dir=output_dir,
        policy=confirmation_policy,
        max_duration=max_duration_seconds,
        archive_when_done=archive_when_done,
        custom_tools=tool_dispatcher(custom_tools, custom_tool_retries),
        outcome=outcome,
        session_id=session_id,
        budget_usd=budget_usd,
        repositories=tuple(github_repositories or ()),
        vault_ids=tuple(vault_ids) if vault_ids is not None else None,
        detach=detach,
    )
    return await run_pipeline(agent, request)


run_agent_session = sync_twin(arun_agent_session)
