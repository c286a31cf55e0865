"""A batch item as one task run: the light way to fan out many sessions (``item_runs="task"``).

``run_batch_item`` runs the item through the same session pipeline as ``arun_agent_session``
(:class:`~managed_agents_core.pipeline.SessionPipeline`: inputs, memory stores and their audit,
custom tools, outcomes, outputs) inside the batch's own flow run, with :class:`ItemSteps`:
plain SDK calls instead of a task run per step. It creates no flow run: an item costs the
Prefect server a task run, a few events and its session report (one artifact, on the item's task
run) instead of a subflow run with its own task runs, which is what lets a 2-core machine run
hundreds of sessions at once. The batch table artifact links the items together.

What it gives up: a person cannot be asked for a tool confirmation (Prefect pauses flow runs,
not task runs), so a policy that says ``ask`` needs ``item_runs="flow"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from managed_agents_core.direct_steps import DirectSteps
from managed_agents_core.inputs import InputFile, UploadedFile
from managed_agents_core.keys import BATCH_ITEM_KEY
from managed_agents_core.lifecycle import SessionRunReport
from managed_agents_core.pipeline import FinishedSession, SessionPipeline, SessionRequest, StartedSession
from managed_agents_core.results import SessionResult, cost_text
from managed_agents_core.roots import input_roots
from managed_agents_core.session_stream import StreamObserver
from tasks.files import upload_input_files
from tasks.reporting import publish_finished
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


class ItemSteps(DirectSteps):
    """The pipeline's steps for a batch item inside its one task run: plain SDK calls, except
    the deduplicating ``upload-file`` task runs; Prefect logs and events; the item's session
    recorded the moment it is created."""

    def __init__(self, agent: ManagedAgent, key: str, sessions: ItemSessions) -> None:
        super().__init__(agent, get_run_logger())
        self.block = agent
        self.key = key
        self.sessions = sessions

    async def upload(self, files: Sequence[InputFile | str]) -> list[UploadedFile]:
        """``upload-input-files``: unchanged files are not uploaded again."""
        return await upload_input_files(self.block.credentials, list(files), input_roots(self.block))

    def session_metadata(self, request: SessionRequest) -> dict[str, str]:
        """Which flow run, task run, block and item started the session."""
        return session_metadata(self.block, **request.metadata, **{BATCH_ITEM_KEY: self.key})

    async def create(self, request: SessionRequest, resources: list[dict[str, Any]]) -> StartedSession:
        """Create the item's session and record it at once (a retry re-attaches to it)."""
        started = await super().create(request, resources)
        self.sessions.record(self.key, started.session_id)
        return started

    def announce(self, started: StartedSession, *, follow_up: bool) -> None:
        """Log the start (or re-attach) and emit ``managed-agents.session.started``."""
        announce_started(self.block, started.session_id, reattached=started.reattached)

    def observer(self, session_id: str) -> StreamObserver:
        """Logs to the task run and emits a Prefect event on each status change."""
        return PrefectObserver(self.log, self.block.log_verbosity, session_id, self.block)

    async def end_turn(self, report: SessionRunReport) -> None:
        """Emit ``session.completed`` (or ``.failed``); when it failed, publish the item's report
        and raise the typed error."""
        await finish_turn(self.block, report, self.log)

    async def report(self, finished: FinishedSession) -> None:
        """Publish the item's session report (on its task run) and log what it produced."""
        await publish_finished(self.block.agent_name, finished, self.log)
        result = finished.result
        self.log.info(
            "Item %s: %d output file(s), %s", self.key, len(result.output_files), cost_text(result.usage)
        )


ITEM_RUN_NAME = "item-{key}"
"""The task run name of a batch item run as a task run (``key`` is the item's key)."""


@task(name="run-batch-item", task_run_name=ITEM_RUN_NAME, cache_policy=NO_CACHE, **TRANSIENT_RETRY_OPTIONS)
async def run_batch_item(
    agent: ManagedAgent, key: str, request: SessionRequest, sessions: ItemSessions
) -> SessionResult:
    """Run one batch item's session to the end and collect its outputs.

    Safe to retry: once the item's session exists (``sessions``, or on a batch retry in a new
    process the session's metadata), a retry re-attaches to it and sends the prompt only if the
    session has not received it yet.

    Args:
        agent: The ``ManagedAgent`` block.
        key: The item's key (task run name ``item-<key>``, session metadata).
        request: What the item's session is asked to do (its own output folder).
        sessions: Where the batch records each item's session.

    Returns:
        The session's typed result.

    Raises:
        SessionError: A typed subclass carrying the session id, when the session did not complete.
    """
    session_id = sessions.get(key)
    if session_id is None and flow_run_ran_before():
        # A batch retry in a new process: the API knows the item's session, this process does not.
        async with agent.credentials.get_async_client() as client:
            session_id = await find_own_session(client, agent, {BATCH_ITEM_KEY: key})
    if session_id is not None:
        request = replace(request, session_id=session_id)
    return await SessionPipeline(agent, ItemSteps(agent, key, sessions), request).run()
