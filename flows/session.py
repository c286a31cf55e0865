"""The runtime flow: run one agent session end to end and return a typed result.

``arun_agent_session`` is the flow; ``run_agent_session`` is its sync twin (:mod:`flows.twins`:
same name, signature, docstring, parameters and hooks) for plain Python, deployments and the
CLI. The cancel/crash hooks interrupt and archive the session.

No ``from __future__ import annotations`` here: Prefect builds the parameter model from the
signature, and string annotations of the ``Annotated`` aliases below would not resolve when a
deployment loads this file from its entrypoint.
"""

from collections.abc import Callable
from typing import Annotated, Any

from prefect import flow
from prefect.logging import get_run_logger
from pydantic import Field

from blocks.agent import ManagedAgent, aresolve_agent
from flows.approvals import stream_turn
from flows.hooks import cleanup_session, cleanup_session_after_timeout
from flows.twins import sync_twin
from managed_agents_core.inputs import InputFile, MemoryStoreAttachment, UploadedFile, check_input_files
from managed_agents_core.lifecycle import SessionRunReport, build_session_result
from managed_agents_core.outcome_spec import OutcomeSpec
from managed_agents_core.results import SessionResult
from managed_agents_core.roots import check_inside_roots, input_roots, output_roots
from managed_agents_core.session_stream import ConfirmationPolicy
from tasks.custom_tools import PrefectToolDispatcher
from tasks.files import file_resources, upload_input_files
from tasks.memory import resolve_memory_stores
from tasks.memory_audit import memory_changes, publish_memory_changes, snapshot_memory_stores
from tasks.outputs import collect_outputs, publish_output_table
from tasks.reporting import publish_outcome_table
from tasks.sessions import attach_session, interrupt_and_archive, start_session

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
SessionIdParam = Annotated[
    str | None,
    Field(
        description="Re-attach to this session (started by an earlier run that died) instead of "
        "starting one; files and memory_stores are then already attached and ignored."
    ),
]


def tool_dispatcher(
    custom_tools: list[Callable[..., Any] | str] | None, retries: int = 0
) -> PrefectToolDispatcher | None:
    """The dispatcher for the flow's custom tools (None when there are none).

    Raises:
        UnknownCustomToolError: A name is not a registered tool (checked here, so a flow that
            builds its dispatcher first fails before anything is uploaded or created).
    """
    return PrefectToolDispatcher(custom_tools, retries=retries) if custom_tools else None


def check_output_dir(block: ManagedAgent, output_dir: str | None) -> None:
    """Check that ``output_dir`` is inside the block's (or the worker's) output roots.

    Raises:
        PathOutsideRootsError: It starts with ``~`` or resolves outside every output root.
    """
    if output_dir:
        check_inside_roots(output_dir, output_roots(block), kind="output", what="output_dir")


async def publish_outcomes(report: SessionRunReport, result: SessionResult) -> None:
    """Publish the outcome table artifact when the turn graded an outcome."""
    if report.transcript.outcome_grades or result.outcome_evaluations:
        await publish_outcome_table(
            result.session_id, report.transcript.outcome_grades, result.outcome_evaluations
        )
        for evaluation in result.outcome_evaluations:
            if evaluation.result != "satisfied":
                get_run_logger().warning(
                    "Outcome %s ended %s: %s",
                    evaluation.outcome_id,
                    evaluation.result,
                    evaluation.explanation,
                )


@flow(
    name="run-agent-session",
    on_cancellation=[cleanup_session],
    on_crashed=[cleanup_session],
    on_failure=[cleanup_session_after_timeout],
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
) -> SessionResult:
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

    Returns:
        The session's typed result: ids, final status and stop reason, final message, usage and
        cost, output files (path, size, sha256), event count and console URL.
    """
    logger = get_run_logger()
    # Parameters are data: check everything they name before anything is uploaded or created.
    block = await aresolve_agent(agent)
    block.credentials.resolved_pair()  # the key only goes where it was saved to go
    dispatcher = tool_dispatcher(custom_tools, custom_tool_retries)
    in_roots = input_roots(block)
    check_output_dir(block, output_dir)
    uploaded: list[UploadedFile] = []
    snapshot: dict[str, str | None] | None = None
    if session_id is None:
        check_input_files(list(files or []), in_roots)
        uploaded = await upload_input_files(block.credentials, list(files or []), in_roots)
        attachments = [MemoryStoreAttachment.coerce(m) for m in memory_stores or []]
        memory_resources = await resolve_memory_stores(block.credentials, attachments) if attachments else []
        resources = [*file_resources(uploaded), *memory_resources]
        store_ids = [str(r["memory_store_id"]) for r in memory_resources]
        # Audit: the stores' newest versions now, so what the session writes can be listed after.
        snapshot = await snapshot_memory_stores(block.credentials, store_ids) if store_ids else None
        key = outcome.model_dump_json() if outcome else ""
        started = await start_session(block, prompt, resources, key=key)
    else:
        if files or memory_stores:
            logger.info("Re-attaching to %s: files and memory_stores are already attached", session_id)
        started = await attach_session(block, session_id)
    kickoff = [outcome.event()] if outcome is not None else None
    report = await stream_turn(
        block,
        started.session_id,
        prompt,
        policy=confirmation_policy,
        max_duration=max_duration_seconds,
        kickoff=kickoff,
        custom_tools=dispatcher,
        reattached=started.reattached,
    )
    outputs = await collect_outputs(
        block.credentials,
        started.session_id,
        output_dir,
        exclude_file_ids=[u.file_id for u in uploaded],
        turn_ended_at=report.ended_at,
        roots=output_roots(block),
    )
    await publish_output_table(outputs, session_id=started.session_id)
    if snapshot is not None:
        changes = await memory_changes(block.credentials, snapshot)
        await publish_memory_changes(changes, session_id=started.session_id)
    if archive_when_done:
        await interrupt_and_archive(block, started.session_id, turn_ended=True)
    result = build_session_result(
        report, agent_id=block.agent_id, agent_version=block.version, output_files=outputs
    )
    await publish_outcomes(report, result)
    logger.info(
        "Session %s completed: %d output file(s), %d events (%s)",
        result.session_id,
        len(outputs),
        result.event_count,
        result.console_url,
    )
    return result


run_agent_session = sync_twin(arun_agent_session)
