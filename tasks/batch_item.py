"""A batch item as one task run: the light way to fan out many sessions (``item_runs="task"``).

``run_batch_item`` does the API work of ``arun_agent_session`` for one item (inputs uploaded
through the deduplicating ``upload-file`` task, a pinned session created exactly once, the turn
streamed to its end, outputs downloaded and verified into the item's folder) inside the batch's
own flow run. It creates no flow run and publishes no per-item artifact: an item costs the
Prefect server a task run and a few events instead of a subflow run with seven task runs and
five artifacts (about 26 API requests), which is what lets a 2-core machine run hundreds of
sessions at once. The batch table artifact is the per-item record.

What it gives up: a person cannot be asked for a tool confirmation (Prefect pauses flow runs,
not task runs), so a policy that says ``ask`` needs ``item_runs="flow"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from managed_agents_core.inputs import InputFile, MemoryStoreAttachment, UploadedFile
from managed_agents_core.lifecycle import (
    acreate_session,
    adrive_session,
    ainterrupt_and_archive,
    build_session_result,
    user_message,
)
from managed_agents_core.outputs import acollect_session_outputs
from managed_agents_core.results import SessionResult
from managed_agents_core.roots import input_roots, output_roots
from managed_agents_core.session_stream import ConfirmationPolicy
from tasks.files import file_resources, upload_input_files
from tasks.memory import resolve_memory_stores
from tasks.retry import TRANSIENT_RETRY_OPTIONS
from tasks.sessions import (
    PrefectObserver,
    announce_started,
    find_own_session,
    finish_turn,
    flow_run_ran_before,
    session_metadata,
)

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent

ITEM_METADATA_KEY = "prefect_batch_item"
"""Session metadata key naming the batch item (its key) that started the session."""


class ItemSessions:
    """The session of each item of one batch run, recorded the moment it is created.

    A retry of an item's task run (or a new attempt after a Prefect API outage) finds the
    session here and re-attaches to it instead of starting another; the spend limit reads the
    running items' sessions from it.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        """The item's session, if one was started."""
        return self._by_key.get(key)

    def record(self, key: str, session_id: str) -> None:
        """Remember the item's session."""
        self._by_key[key] = session_id

    def forget(self, key: str) -> None:
        """Forget the item's session (it cannot be re-attached, e.g. it was archived)."""
        self._by_key.pop(key, None)

    def of(self, keys: set[str]) -> list[str]:
        """The sessions of the given items (those that have one)."""
        return [sid for key, sid in self._by_key.items() if key in keys]


@task(name="run-batch-item", task_run_name="item-{key}", cache_policy=NO_CACHE, **TRANSIENT_RETRY_OPTIONS)
async def run_batch_item(
    agent: ManagedAgent,
    key: str,
    prompt: str,
    files: list[InputFile | str],
    memory_stores: list[MemoryStoreAttachment | str],
    output_dir: str,
    sessions: ItemSessions,
    *,
    title: str,
    confirmation_policy: ConfirmationPolicy | None = None,
    max_duration_seconds: float | None = None,
    archive_when_done: bool = False,
) -> SessionResult:
    """Run one batch item's session to the end and collect its outputs into ``output_dir``.

    Safe to retry: once the item's session exists (``sessions``), a retry re-attaches to it and
    sends the prompt only if the session has not received it yet.

    Args:
        agent: The ``ManagedAgent`` block.
        key: The item's key (task run name ``item-<key>``, session metadata).
        prompt: The item's prompt.
        files: Local files to upload and mount.
        memory_stores: Memory stores to attach.
        output_dir: The item's own output folder.
        sessions: Where the batch records each item's session.
        title: The session's title.
        confirmation_policy: How tool confirmations are answered (``ask`` is not possible here).
        max_duration_seconds: Wall-clock limit of the session (default: the block's limit).
        archive_when_done: Archive the session after its outputs were collected.

    Returns:
        The session's typed result.

    Raises:
        SessionError: A typed subclass carrying the session id, when the session did not complete.
    """
    logger = get_run_logger()
    uploaded: list[UploadedFile] = []
    session_id = sessions.get(key)
    async with agent.credentials.get_async_client() as client:
        if session_id is None and flow_run_ran_before():
            # A batch retry in a new process: the API knows the item's session, this process does not.
            session_id = await find_own_session(client, agent, {ITEM_METADATA_KEY: key})
        reattached = session_id is not None
        if session_id is None:
            uploaded = (
                await upload_input_files(agent.credentials, list(files), input_roots(agent)) if files else []
            )
            attachments = [MemoryStoreAttachment.coerce(m) for m in memory_stores]
            memory = await resolve_memory_stores(agent.credentials, attachments) if attachments else []
            session = await acreate_session(
                client,
                agent_reference=agent.agent_reference(),
                environment_id=agent.environment_id,
                resources=[*file_resources(uploaded), *memory],
                metadata=session_metadata(agent, **{ITEM_METADATA_KEY: key}),
                title=title,
            )
            session_id = str(session.id)
            sessions.record(key, session_id)
        started = announce_started(agent, session_id, reattached=reattached)
        report = await adrive_session(
            client,
            session_id,
            console_url=started.console_url,
            kickoff=[user_message(prompt)],
            resume=reattached,
            policy=confirmation_policy,
            max_duration=max_duration_seconds
            if max_duration_seconds is not None
            else agent.max_duration_seconds,
            observer=PrefectObserver(logger, agent.log_verbosity, session_id, agent.agent_id),
        )
        finish_turn(agent, report, logger)
        outputs = await acollect_session_outputs(
            client,
            session_id,
            Path(output_dir),
            exclude_file_ids=[u.file_id for u in uploaded],
            turn_ended_at=report.ended_at,
            logger=logger,
            roots=output_roots(agent),
        )
        if archive_when_done:
            await ainterrupt_and_archive(client, session_id, logger=logger, turn_ended=True)
    logger.info("Item %s: %d output file(s) in %s", key, len(outputs), output_dir)
    return build_session_result(
        report, agent_id=agent.agent_id, agent_version=agent.version, output_files=outputs
    )
