"""Prefect UI artifacts of a session: link, progress, transcript and usage.

Keys are lowercase with dashes (``^[a-z0-9-]*$``), derived from the session id, so every
session has its own artifact history. No artifact ever holds the API key: only ids, URLs,
counts and the text the agent exchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from uuid import UUID

from prefect.artifacts import (
    acreate_link_artifact,
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from managed_agents_core.lifecycle import SessionRunReport
from managed_agents_core.results import OutcomeEvaluation, UsageSummary
from managed_agents_core.transcript import Transcript

PROGRESS_INTERVAL_SECONDS = 2.0
"""Least time between two progress artifact updates."""


def artifact_key(session_id: str, suffix: str) -> str:
    """Return a valid artifact key (lowercase, digits, dashes) for a session artifact."""
    slug = re.sub(r"[^a-z0-9-]+", "-", session_id.lower()).strip("-")
    return f"{slug}-{suffix}"[:200]


async def publish_session_link(session_id: str, console_url: str) -> UUID:
    """Create the link artifact pointing at the session in the console."""
    return await acreate_link_artifact(
        link=console_url,
        link_text=f"Session {session_id}",
        key=artifact_key(session_id, "link"),
        description="The Claude Managed Agents session this flow run started.",
    )


async def publish_transcript(
    transcript: Transcript,
    *,
    session_id: str,
    console_url: str,
    status: str | None,
    stop_reason: str | None,
    final: bool = True,
) -> UUID:
    """Create the markdown transcript artifact (messages, tool calls, errors).

    ``final=False`` marks a transcript cut short because streaming itself failed.
    """
    return await acreate_markdown_artifact(
        markdown=transcript.to_markdown(
            session_id=session_id,
            console_url=console_url,
            status=status,
            stop_reason=stop_reason,
            final=final,
        ),
        key=artifact_key(session_id, "transcript"),
        description=f"Transcript of session {session_id}.",
    )


def usage_rows(usage: UsageSummary, *, event_count: int, model_requests: int) -> list[dict[str, str]]:
    """Rows of the usage-and-cost table."""
    cost = f"{usage.cost_usd:.2f}" if usage.cost_usd is not None else "n/a"
    return [
        {"metric": "input tokens", "value": str(usage.input_tokens)},
        {"metric": "output tokens", "value": str(usage.output_tokens)},
        {"metric": "cache read input tokens", "value": str(usage.cache_read_input_tokens)},
        {"metric": "cache creation input tokens", "value": str(usage.cache_creation_input_tokens)},
        {"metric": "active seconds", "value": f"{usage.active_seconds:g}"},
        {"metric": "list cost (USD)", "value": cost},
        {"metric": "model requests", "value": str(model_requests)},
        {"metric": "events", "value": str(event_count)},
    ]


async def publish_usage_table(report: SessionRunReport) -> UUID:
    """Create the usage-and-cost table artifact of a finished session."""
    return await acreate_table_artifact(
        table=usage_rows(
            report.usage,
            event_count=report.transcript.event_count,
            model_requests=report.transcript.model_requests,
        ),
        key=artifact_key(report.session_id, "usage"),
        description=f"Usage and list cost of session {report.session_id}.",
    )


def outcome_rows(grades: list[OutcomeEvaluation], final: list[OutcomeEvaluation]) -> list[dict[str, str]]:
    """Rows of the outcome table: each graded iteration, then the session's final grade."""
    rows = [
        {
            "outcome": g.outcome_id,
            "iteration": str(g.iteration),
            "result": g.result,
            "explanation": g.explanation or "",
            "kind": "iteration",
        }
        for g in grades
    ]
    rows += [
        {
            "outcome": f.outcome_id,
            "iteration": str(f.iteration),
            "result": f.result,
            "explanation": f.explanation or "",
            "kind": "final",
        }
        for f in final
    ]
    return rows


async def publish_outcome_table(
    session_id: str, grades: list[OutcomeEvaluation], final: list[OutcomeEvaluation]
) -> UUID:
    """Create the table artifact of an outcome's grades (per iteration, then final)."""
    return await acreate_table_artifact(
        table=outcome_rows(grades, final),
        key=artifact_key(session_id, "outcome"),
        description=f"Outcome evaluations of session {session_id}.",
    )


def estimate_progress(events: int, elapsed: float, max_duration: float | None) -> float:
    """A monotone 0-99 estimate: elapsed share of ``max_duration``, else a curve over events.

    Agent sessions have no known total, so this only shows that work is moving; 100 is set
    when the turn ends.
    """
    if max_duration:
        return min(99.0, 100.0 * elapsed / max_duration)
    return min(99.0, 100.0 * events / (events + 200.0))


@contextlib.asynccontextmanager
async def progress_artifact(
    session_id: str,
    describe: Callable[[], tuple[int, str]],
    *,
    max_duration: float | None = None,
    interval: float = PROGRESS_INTERVAL_SECONDS,
) -> AsyncIterator[None]:
    """Keep a progress artifact up to date while the block runs, at most every ``interval`` s.

    Args:
        session_id: The session (artifact key).
        describe: Returns ``(event_count, status)``; called from the updater, not the hot loop.
        max_duration: Used for the progress estimate.
        interval: Seconds between updates.
    """
    started = time.monotonic()
    # Created beside the stream, not before it: nothing that only decorates the UI delays the prompt.
    created = asyncio.create_task(
        acreate_progress_artifact(
            progress=0.0,
            key=artifact_key(session_id, "progress"),
            description=f"Streaming session {session_id}.",
        )
    )
    last = -1.0

    async def update(final: bool = False) -> None:
        nonlocal last
        artifact_id = await created
        events, status = describe()
        progress = 100.0 if final else estimate_progress(events, time.monotonic() - started, max_duration)
        progress = max(progress, last)
        if progress == last and not final:
            return
        last = progress
        await aupdate_progress_artifact(
            artifact_id=artifact_id, progress=progress, description=f"{events} events; session {status}."
        )

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # a missed update is not worth failing the run
                await update()

    updater = asyncio.create_task(loop())
    try:
        yield
    finally:
        updater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await updater
        with contextlib.suppress(Exception):
            await asyncio.shield(update(final=True))
