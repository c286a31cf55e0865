"""The two Prefect UI artifacts of a session: a progress bar while it streams, then its report.

The progress artifact has no key (it belongs to its run only) and links the session in its
description from the first second. The report (:class:`~managed_agents_core.report.SessionReport`)
is keyed per agent, so the Artifacts page keeps one history per agent rather than one card per
session id. No artifact ever holds the API key: only ids, URLs, counts and the text the agent
exchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    aupdate_progress_artifact,
)
from prefect.logging import get_run_logger

from managed_agents_core.direct_steps import Log
from managed_agents_core.pipeline import FinishedSession
from managed_agents_core.report import SessionReport, report_key, turn_report

PROGRESS_INTERVAL_SECONDS = 2.0
"""Least time between two progress artifact updates."""


async def publish_session_report(report: SessionReport) -> UUID | None:
    """Create the session's report artifact, keyed per agent (a history per agent in the UI).

    A failure is logged, not raised: the report decorates the run, and must never replace the
    run's own outcome (a session error it was published for, or outputs already collected).

    Args:
        report: What the page shows.

    Returns:
        The artifact's id (None when it could not be created).
    """
    try:
        return await acreate_markdown_artifact(
            markdown=report.to_markdown(),
            key=report_key(report.agent_name),
            description=report.summary,
        )
    except Exception as exc:
        get_run_logger().warning("Could not publish the report of session %s: %s", report.session_id, exc)
        return None


async def publish_finished(agent_name: str, finished: FinishedSession, log: Log) -> UUID | None:
    """Publish the report of a turn that completed (with its outputs, memory changes and grades)
    and warn about each outcome that was not met.

    Args:
        agent_name: The remote agent's name (the report's key).
        finished: The turn, its result and what it produced.
        log: Where to warn.

    Returns:
        The report artifact's id (None when it could not be created).
    """
    for evaluation in finished.unmet_outcomes():
        log.warning(
            "Outcome %s ended %s: %s", evaluation.outcome_id, evaluation.result, evaluation.explanation
        )
    report = turn_report(
        agent_name,
        finished.report,
        "Follow-up turn completed" if finished.follow_up else "Completed",
        outputs=finished.outputs,
        memory_changes=finished.memory_changes,
        final_evaluations=finished.result.outcome_evaluations,
    )
    return await publish_session_report(report)


def estimate_progress(events: int, elapsed: float, max_duration: float | None) -> float:
    """A monotone 0-99 estimate: elapsed share of ``max_duration``, else a curve over events.

    Agent sessions have no known total, so this only shows that work is moving; 100 is set
    when the turn ends.
    """
    if max_duration:
        return min(99.0, 100.0 * elapsed / max_duration)
    return min(99.0, 100.0 * events / (events + 200.0))


class ProgressMark:
    """What the streaming code tells the progress artifact about how the stream ended."""

    def __init__(self) -> None:
        self.waiting: str | None = None
        """Set when the turn pauses (for an approval): the bar stays short of 100%."""


@contextlib.asynccontextmanager
async def progress_artifact(
    session_id: str,
    console_url: str,
    describe: Callable[[], tuple[int, str]],
    *,
    max_duration: float | None = None,
    interval: float = PROGRESS_INTERVAL_SECONDS,
    before: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIterator[ProgressMark]:
    """Keep a progress artifact up to date while the block runs, at most every ``interval`` s.

    Reaches 100% when the block ends, unless the yielded mark says the turn is waiting.

    Args:
        session_id: The session.
        console_url: Its page in the Claude Console (linked from the description).
        describe: Returns ``(event_count, status)``; called from the updater, not the hot loop.
        max_duration: Used for the progress estimate.
        interval: Seconds between updates.
        before: Another write to make first, in the same side task (one after the other, the run's
            client fetches its CSRF token once instead of once per racing write).
    """
    started = time.monotonic()
    link = f"[session {session_id}]({console_url})"

    async def create() -> UUID:
        if before is not None:
            await before()
        return await acreate_progress_artifact(progress=0.0, description=f"Streaming {link}.")

    # Created beside the stream, not before it: nothing that only decorates the UI delays the prompt.
    created = asyncio.create_task(create())
    mark = ProgressMark()
    last = -1.0

    async def update(final: bool = False) -> None:
        nonlocal last
        artifact_id = await created
        events, status = describe()
        done = final and mark.waiting is None
        progress = 100.0 if done else estimate_progress(events, time.monotonic() - started, max_duration)
        progress = max(progress, last)
        if progress == last and not final:
            return
        last = progress
        state = f"waiting: {mark.waiting}" if final and mark.waiting else status
        await aupdate_progress_artifact(
            artifact_id=artifact_id, progress=progress, description=f"{link}: {events} events; {state}."
        )

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # a missed update is not worth failing the run
                await update()

    updater = asyncio.create_task(loop())
    try:
        yield mark
    finally:
        updater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await updater
        with contextlib.suppress(Exception):
            await asyncio.shield(update(final=True))
