"""A multi-agent session's threads: the service's list, reconciled with what the stream showed.

The list is read once, after the turn, and only when the stream showed child threads (a
single-agent session costs no extra request). A thread the list does not show yet (lists lag
the stream) keeps what the stream said of it; a failed read keeps the stream's view too, since
usage per thread is a report's detail, never a reason to fail a finished session.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anthropic

from .results import ThreadSummary, UsageSummary

logger = logging.getLogger(__name__)


def _agent_name(thread: Any) -> str:
    agent = thread.agent
    return str(getattr(agent, "name", None) or f"advisor ({getattr(agent, 'model', '?')})")


def reconcile_threads(listed: list[Any], seen: Mapping[str, ThreadSummary]) -> list[ThreadSummary]:
    """Merge the listed threads (SDK ``BetaManagedAgentsSessionThread``) with the stream's view.

    Returns:
        The coordinator's thread first, then the others by creation; threads only the stream
        showed come last.

    Args:
        listed: What ``threads.list`` returned.
        seen: The stream's child threads by id (``Transcript.threads``).
    """
    out: list[ThreadSummary] = []
    for thread in sorted(listed, key=lambda t: (t.parent_thread_id is not None, t.created_at)):
        streamed = seen.get(thread.id)
        out.append(
            ThreadSummary(
                thread_id=thread.id,
                agent_name=_agent_name(thread),
                primary=thread.parent_thread_id is None,
                status=str(thread.status),
                stop_reason=streamed.stop_reason if streamed else None,
                tasks_sent=streamed.tasks_sent if streamed else 0,
                replies=streamed.replies if streamed else 0,
                usage=UsageSummary.from_session_usage(thread.usage) if thread.usage is not None else None,
            )
        )
    listed_ids = {t.id for t in listed}
    out += [thread.model_copy() for thread_id, thread in seen.items() if thread_id not in listed_ids]
    return out


async def alist_threads(
    client: anthropic.AsyncAnthropic, session_id: str, seen: Mapping[str, ThreadSummary]
) -> list[ThreadSummary]:
    """The session's threads with their usage, when the stream showed child threads.

    Args:
        client: The async SDK client.
        session_id: The session.
        seen: The stream's child threads by id; nothing is read when empty.
    """
    if not seen:
        return []
    try:
        listed = [thread async for thread in client.beta.sessions.threads.list(session_id)]
    except anthropic.APIError as exc:
        logger.warning("Could not list the threads of %s (%s); showing what the stream saw.", session_id, exc)
        listed = []
    return reconcile_threads(listed, seen)
