"""The session pipeline's steps as Prefect task runs, with the session's artifacts and events.

:class:`TaskSteps` is what the flows hand to :class:`~managed_agents_core.pipeline.SessionPipeline`:
uploads deduplicated through Prefect's cache, a session created once per flow run (found again
on a retry), the turn streamed in a ``stream-session`` task run with a progress artifact,
outputs collected in a ``collect-outputs`` task run, and the session report (usage and cost,
outcome grades, outputs, memory changes, transcript) at the end. A person is asked to confirm tool calls
through the ``ask`` callable the flow passes (Prefect pauses flow runs, not task runs).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import prefect.runtime.deployment
from prefect.flow_runs import asuspend_flow_run
from prefect.logging import get_run_logger

from managed_agents_core.budgets import araise_budget
from managed_agents_core.events import EventParam
from managed_agents_core.inputs import InputFile, MemoryStoreAttachment, UploadedFile
from managed_agents_core.lifecycle import SessionRunReport, attachable_session
from managed_agents_core.memory_audit import MemoryChange
from managed_agents_core.pipeline import (
    FinishedSession,
    FollowUpTurn,
    OutputTarget,
    SessionRequest,
    StartedSession,
)
from managed_agents_core.results import OutputFile
from managed_agents_core.roots import input_roots, output_roots
from managed_agents_core.tool_calls import PendingToolCall, ToolAnswer
from managed_agents_core.turn import ConfirmationPolicy, TurnRequest
from tasks.detached import detach_pause_key
from tasks.files import upload_input_files
from tasks.memory import resolve_memory_stores
from tasks.memory_audit import memory_changes, snapshot_memory_stores
from tasks.outputs import collect_outputs
from tasks.reporting import publish_finished
from tasks.sessions import (
    attach_session,
    interrupt_and_archive,
    send_follow_up,
    send_kickoff,
    start_session,
    stream_session,
    tag_flow_run,
)

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent

AskForApproval = Callable[
    [tuple[PendingToolCall, ...], ConfirmationPolicy, StartedSession], Awaitable[dict[str, ToolAnswer]]
]
"""Hands pending tool calls to a person and returns the verdicts (a flow pauses for it)."""


class TaskSteps:
    """Each pipeline step as a Prefect task run.

    Args:
        agent: The ``ManagedAgent`` block.
        ask: Asks a person to confirm tool calls (the flow's pause or suspend); without it a
            policy that says ``ask`` is refused before anything is created.
        progress: Keep a progress artifact while the turn streams (a batch's item runs do
            without it: their report is their one artifact).
    """

    def __init__(
        self, agent: ManagedAgent, *, ask: AskForApproval | None = None, progress: bool = True
    ) -> None:
        self.agent = agent
        self.progress = progress
        self._ask = ask
        self.can_ask = ask is not None
        self._tagged = False

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        """The run's logger."""
        return get_run_logger()

    async def upload(self, files: Sequence[InputFile | str]) -> list[UploadedFile]:
        """``upload-input-files``: unchanged files are not uploaded again."""
        return await upload_input_files(self.agent.credentials, list(files), input_roots(self.agent))

    async def memory_resources(self, attachments: Sequence[MemoryStoreAttachment]) -> list[dict[str, str]]:
        """``resolve-memory-stores``."""
        return await resolve_memory_stores(self.agent.credentials, list(attachments))

    async def snapshot_memory(self, store_ids: list[str]) -> dict[str, str | None]:
        """``snapshot-memory-stores``, cached per flow run (a retry diffs against the first)."""
        return await snapshot_memory_stores(self.agent.credentials, store_ids)

    async def create(self, request: SessionRequest, resources: list[dict[str, Any]]) -> StartedSession:
        """``start-session``: created once per flow run and inputs, found again on a retry."""
        return await start_session(
            self.agent,
            request.prompt,
            resources,
            key=request.start_key(),
            budget_usd=request.budget_usd,
            vault_ids=list(request.vault_ids or ()),
        )

    async def attach(self, session_id: str, *, follow_up: bool) -> StartedSession:
        """``attach-session`` (a first turn an earlier run started), or tag the run (a follow-up)."""
        if not follow_up:
            return await attach_session(self.agent, session_id)
        console_url = str(self.agent.console_url(session_id))
        async with self.agent.credentials.get_async_client() as client:
            # The session_id parameter reaches only the block's agent's live sessions.
            await attachable_session(
                client, session_id, agent_id=self.agent.agent_id, console_url=console_url, follow_up=True
            )
        await tag_flow_run(session_id)  # before the send: the hooks can then find the session
        self._tagged = True
        return StartedSession(session_id=session_id, console_url=console_url, reattached=True)

    async def send_follow_up(self, session_id: str, events: list[EventParam]) -> FollowUpTurn:
        """``send-follow-up``, cached per flow run: a flow retry sends nothing twice."""
        return FollowUpTurn.model_validate(await send_follow_up(self.agent, session_id, events))

    async def raise_budget(self, session_id: str, budget_usd: Decimal) -> None:
        """Set the session's budget (a repeat, e.g. on a flow retry, sets the same value)."""
        async with self.agent.credentials.get_async_client() as client:
            await araise_budget(client, session_id, budget_usd)
        get_run_logger().info("Budget of session %s set to %s USD", session_id, budget_usd)

    @property
    def can_detach(self) -> bool:
        """A deployment run's own session (not a batch item's) can be released: Prefect suspends it."""
        return self.progress and prefect.runtime.deployment.id is not None

    async def detach(
        self, session: StartedSession, kickoff: tuple[EventParam, ...], wait_seconds: float
    ) -> None:
        """``send-kickoff`` (once per flow run; nothing for a re-attached session), tag the run,
        then suspend it: the process exits and the worker is free until the wake event's
        Automation resumes the run, which then runs again from the top (the same session, the
        cached kickoff, this suspend let through)."""
        if kickoff:
            await send_kickoff(self.agent, session.session_id, list(kickoff))
        await tag_flow_run(session.session_id, detached=True)
        self._tagged = True
        get_run_logger().info(
            "Detached from session %s: this run is suspended until the session stops working "
            "(the webhook receiver or the watcher flow wakes it; at most %.0f s).",
            session.session_id,
            wait_seconds,
        )
        await asuspend_flow_run(timeout=int(wait_seconds), key=detach_pause_key(session.session_id))

    async def stream(
        self, session: StartedSession, turn: TurnRequest, answers: Mapping[str, ToolAnswer]
    ) -> SessionRunReport:
        """``stream-session``; the first time, it tags the flow run with the session beside the
        stream, so the prompt goes out first."""
        tag, self._tagged = not self._tagged, True
        return await stream_session(
            self.agent, session.session_id, turn, answers=dict(answers), progress=self.progress, tag=tag
        )

    async def ask(
        self, calls: tuple[PendingToolCall, ...], policy: ConfirmationPolicy, session: StartedSession
    ) -> dict[str, ToolAnswer]:
        """The flow's approval form."""
        if self._ask is None:
            raise RuntimeError("no way to ask a person was given")  # the pipeline refuses such a policy first
        return await self._ask(calls, policy, session)

    async def collect(
        self,
        session_id: str,
        destination: OutputTarget,
        *,
        exclude_file_ids: Sequence[str],
        turn_ended_at: datetime | None,
    ) -> list[OutputFile]:
        """``collect-outputs``."""
        return await collect_outputs(
            self.agent.credentials,
            session_id,
            destination,
            exclude_file_ids=exclude_file_ids,
            turn_ended_at=turn_ended_at,
            roots=output_roots(self.agent),
        )

    async def memory_changes(self, snapshot: dict[str, str | None]) -> list[MemoryChange]:
        """``memory-changes``."""
        return await memory_changes(self.agent.credentials, snapshot)

    async def archive(self, session_id: str) -> None:
        """``interrupt-and-archive`` (the turn ended: nothing is interrupted)."""
        await interrupt_and_archive(self.agent, session_id, turn_ended=True)

    async def report(self, finished: FinishedSession) -> None:
        """The session report (outputs, memory changes, outcome grades), then the final log line."""
        logger = get_run_logger()
        await publish_finished(self.agent.agent_name, finished, logger)
        result = finished.result
        logger.info(
            "%s %s completed: %s (%s)",
            "Follow-up turn of session" if finished.follow_up else "Session",
            result.session_id,
            result.summary(),
            result.console_url,
        )
