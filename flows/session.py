"""The runtime flow: run one agent session end to end and return a typed result.

Two flows share one implementation (``_run_agent_session``): ``run_agent_session`` is a sync
flow that plain Python, deployments and the CLI call directly; ``arun_agent_session`` is its
async twin for callers that are already in an event loop (``await arun_agent_session(...)``).
Both register the same cancel/crash hooks, which interrupt and archive the session.

No ``from __future__ import annotations`` here: Prefect builds the parameter model from the
signature, and string annotations of the ``Annotated`` aliases below would not resolve when a
deployment loads this file from its entrypoint.
"""

from typing import Annotated

from prefect import flow
from prefect.logging import get_run_logger
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import Field

from blocks.agent import ManagedAgent
from blocks.inputs import InputFile, MemoryStoreAttachment
from blocks.results import SessionResult
from blocks.session_run import build_session_result
from blocks.session_stream import ConfirmationPolicy
from flows.hooks import cleanup_session, cleanup_session_after_timeout
from tasks.files import file_resources, upload_input_files
from tasks.memory import resolve_memory_stores
from tasks.outputs import collect_outputs, publish_output_table
from tasks.sessions import interrupt_and_archive, start_session, stream_session

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
        description="Local files to upload and mount (a path, or {path, mount_path}). "
        "Unchanged files are not uploaded again."
    ),
]
MemoryParam = Annotated[
    list[MemoryStoreAttachment | str] | None,
    Field(description="Memory stores to attach, by id or name, with read_write or read_only access."),
]
OutputDirParam = Annotated[
    str, Field(description="Local folder where the session's output files are written.")
]
PolicyParam = Annotated[
    ConfirmationPolicy | None,
    Field(description="How to answer tool confirmations (allow/deny by tool name, or fail). Default: fail."),
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


async def _run_agent_session(
    agent: ManagedAgent | str,
    prompt: str,
    files: list[InputFile | str] | None,
    memory_stores: list[MemoryStoreAttachment | str] | None,
    output_dir: str,
    confirmation_policy: ConfirmationPolicy | None,
    max_duration_seconds: float | None,
    archive_when_done: bool,
) -> SessionResult:
    logger = get_run_logger()
    block = agent if isinstance(agent, ManagedAgent) else await ManagedAgent.aload(agent)
    uploaded = await upload_input_files(block.credentials, list(files or []))
    attachments = [MemoryStoreAttachment.coerce(m) for m in memory_stores or []]
    memory_resources = await resolve_memory_stores(block.credentials, attachments) if attachments else []
    resources = [*file_resources(uploaded), *memory_resources]
    started = await start_session(block, prompt, resources)
    report = await stream_session(
        block,
        started.session_id,
        prompt,
        policy=confirmation_policy,
        max_duration=max_duration_seconds,
    )
    outputs = await collect_outputs(
        block.credentials,
        started.session_id,
        output_dir,
        exclude_file_ids=[u.file_id for u in uploaded],
    )
    await publish_output_table(outputs, session_id=started.session_id)
    if archive_when_done:
        await interrupt_and_archive(block, started.session_id)
    result = build_session_result(
        report, agent_id=block.agent_id, agent_version=block.version, output_files=outputs
    )
    logger.info(
        "Session %s completed: %d output file(s), %d events (%s)",
        result.session_id,
        len(outputs),
        result.event_count,
        result.console_url,
    )
    return result


@flow(
    name="run-agent-session",
    on_cancellation=[cleanup_session],
    on_crashed=[cleanup_session],
    on_failure=[cleanup_session_after_timeout],
)
def run_agent_session(
    agent: AgentParam,
    prompt: PromptParam,
    files: FilesParam = None,
    memory_stores: MemoryParam = None,
    output_dir: OutputDirParam = "outputs",
    confirmation_policy: PolicyParam = None,
    max_duration_seconds: DurationParam = None,
    archive_when_done: ArchiveParam = False,
) -> SessionResult:
    """Run one Claude Managed Agents session: upload inputs, stream to the end, collect outputs.

    Args:
        agent: The ManagedAgent block, or the name of a saved one (created by deploy_agent).
        prompt: The task for the agent: the first user message of the session.
        files: Local files to upload and mount; unchanged files are not uploaded again.
        memory_stores: Memory stores to attach, by id or name, with their access mode.
        output_dir: Local folder where the session's output files are written.
        confirmation_policy: How to answer tool confirmations (default: fail the run).
        max_duration_seconds: Interrupt the session and fail after this many seconds.
        archive_when_done: Archive the session after its outputs were collected.

    Returns:
        The session's typed result: ids, final status and stop reason, final message, usage and
        cost, output files (path, size, sha256), event count and console URL.
    """
    result = run_coro_as_sync(
        _run_agent_session(
            agent,
            prompt,
            files,
            memory_stores,
            output_dir,
            confirmation_policy,
            max_duration_seconds,
            archive_when_done,
        )
    )
    assert result is not None
    return result


@flow(
    name="arun-agent-session",
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
) -> SessionResult:
    """Run one Claude Managed Agents session (async twin of ``run_agent_session``).

    Args:
        agent: The ManagedAgent block, or the name of a saved one (created by deploy_agent).
        prompt: The task for the agent: the first user message of the session.
        files: Local files to upload and mount; unchanged files are not uploaded again.
        memory_stores: Memory stores to attach, by id or name, with their access mode.
        output_dir: Local folder where the session's output files are written.
        confirmation_policy: How to answer tool confirmations (default: fail the run).
        max_duration_seconds: Interrupt the session and fail after this many seconds.
        archive_when_done: Archive the session after its outputs were collected.

    Returns:
        The session's typed result.
    """
    return await _run_agent_session(
        agent,
        prompt,
        files,
        memory_stores,
        output_dir,
        confirmation_policy,
        max_duration_seconds,
        archive_when_done,
    )
