"""The orphan sweeper (``sweep_sessions``, async ``asweep_sessions``): archive sessions left
behind by Prefect flow runs that already ended.

A session is an **orphan** when its metadata names the Prefect flow run that started it
(``prefect-managed-agents.flow-run-id``, written by ``tasks.sessions.create_session``; the
``prefect_flow_run_id`` of earlier versions is read too), that flow run is in a
final state (Completed, Failed, Cancelled, Crashed) since at least the grace period, and the
session is still ``running``, ``rescheduling`` or ``idle`` and not archived. A running orphan is
interrupted first, then archived (never deleted: it stays inspectable).

Nothing else is touched: sessions without the metadata key, whose flow run is unknown to this
Prefect server (another server, or a deleted run), or whose run is still going.

The listing API cannot filter by metadata, so the sweeper pages through ``sessions.list``
(narrowed by status, creation time and optionally agent) and filters on our side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import anthropic
from prefect import flow
from prefect.artifacts import acreate_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.agent import refuse_inline_block
from blocks.credentials import AnthropicCredentials
from flows.twins import sync_twin
from managed_agents_core.exceptions import ApiUnreachableError
from managed_agents_core.keys import FLOW_RUN_KEY, read_key
from managed_agents_core.lifecycle import ainterrupt_and_archive
from tasks.events import emit_managed_agents_event

FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
"""Prefect state types after which a flow run never touches its session again."""

SWEEPABLE_STATUSES = ("running", "rescheduling", "idle")
"""Session statuses the sweeper acts on (terminated sessions are inert; archived ones are done)."""

_READ_CHUNK = 200


@dataclass(frozen=True)
class OwnerRun:
    """What the sweeper needs to know about the flow run that started a session."""

    id: str
    state_type: str
    ended_at: datetime | None

    @classmethod
    def from_flow_run(cls, run: FlowRun) -> OwnerRun:
        """Build from a Prefect ``FlowRun``."""
        state_type = run.state.type.value if run.state is not None else "UNKNOWN"
        ended = run.end_time or (run.state.timestamp if run.state is not None else None)
        return cls(id=str(run.id), state_type=state_type, ended_at=ended)


class Orphan(BaseModel):
    """A session the sweeper archives (or would, in a dry run)."""

    session_id: str = Field(description="The orphaned session.")
    status: str = Field(description="Its status when found.")
    flow_run_id: str = Field(description="The flow run that started it.")
    flow_run_state: str = Field(description="That flow run's final state type.")
    outcome: str | None = Field(default=None, description="archived, already-archived, missing, or an error.")


class SweepReport(BaseModel):
    """What one sweep saw and did."""

    scanned: int = Field(description="Sessions listed (running, rescheduling or idle; not archived).")
    with_owner: int = Field(description="Of those, sessions whose metadata names a flow run.")
    orphans: list[Orphan] = Field(default_factory=list, description="Sessions archived (or to archive).")
    dry_run: bool = Field(default=False, description="True when nothing was changed.")


def owner_run_id(session: Any) -> str | None:
    """Return the flow-run id in a session's metadata, when it is a valid UUID."""
    value = read_key(getattr(session, "metadata", None), FLOW_RUN_KEY)
    if not value:
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        return None


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def select_orphans(
    sessions: Iterable[Any],
    owners: Mapping[str, OwnerRun],
    *,
    now: datetime,
    grace: timedelta,
) -> list[Orphan]:
    """Pick the orphans among listed sessions.

    Args:
        sessions: Session objects (``id``, ``status``, ``metadata``, ``archived_at``, optionally
            ``updated_at``), e.g. the SDK's ``BetaManagedAgentsSession``.
        owners: The known flow runs by id (runs missing here are unknown: never swept).
        now: The current time (timezone-aware).
        grace: How long a flow run must have been final before its sessions are swept.

    Returns:
        The orphans, in listing order.
    """
    orphans: list[Orphan] = []
    for session in sessions:
        if getattr(session, "archived_at", None) is not None:
            continue
        status = str(getattr(session, "status", ""))
        if status not in SWEEPABLE_STATUSES:
            continue
        run_id = owner_run_id(session)
        owner = owners.get(run_id) if run_id else None
        if owner is None or owner.state_type not in FINAL_STATE_TYPES:
            continue
        ended = owner.ended_at or getattr(session, "updated_at", None)
        if ended is None or now - _as_utc(ended) < grace:
            continue
        orphans.append(
            Orphan(
                session_id=str(session.id),
                status=status,
                flow_run_id=owner.id,
                flow_run_state=owner.state_type,
            )
        )
    return orphans


async def _read_owner_runs(run_ids: Sequence[str]) -> dict[str, OwnerRun]:
    owners: dict[str, OwnerRun] = {}
    async with get_client() as prefect_client:
        for start in range(0, len(run_ids), _READ_CHUNK):
            chunk = [UUID(r) for r in run_ids[start : start + _READ_CHUNK]]
            runs = await prefect_client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            )
            owners.update({str(run.id): OwnerRun.from_flow_run(run) for run in runs})
    return owners


async def _list_candidates(
    client: anthropic.AsyncAnthropic, *, agent_id: str | None, created_after: datetime | None
) -> list[Any]:
    kwargs: dict[str, Any] = {"limit": 100, "statuses": list(SWEEPABLE_STATUSES)}
    if agent_id:
        kwargs["agent_id"] = agent_id
    if created_after is not None:
        kwargs["created_at_gte"] = created_after
    return [session async for session in client.beta.sessions.list(**kwargs)]


async def _archive(client: anthropic.AsyncAnthropic, orphan: Orphan, limiter: asyncio.Semaphore) -> Orphan:
    logger = get_run_logger()
    async with limiter:
        try:
            outcome = await ainterrupt_and_archive(client, orphan.session_id, logger=logger)
        except (anthropic.APIError, ApiUnreachableError) as exc:  # one orphan never stops the sweep
            logger.error("Could not archive orphan session %s: %s", orphan.session_id, type(exc).__name__)
            outcome = f"error: {type(exc).__name__}"
    if not outcome.startswith("error"):
        emit_managed_agents_event(
            "session.swept",
            orphan.session_id,
            name=orphan.session_id,
            payload={
                "flow_run_id": orphan.flow_run_id,
                "flow_run_state": orphan.flow_run_state,
                "outcome": outcome,
            },
        )
    return orphan.model_copy(update={"outcome": outcome})


@flow(name="sweep-agent-sessions")
async def asweep_sessions(
    credentials: AnthropicCredentials | str | None = None,
    grace_period_seconds: float = 900.0,
    created_within_hours: float | None = 168.0,
    agent_id: str | None = None,
    dry_run: bool = False,
    max_parallel: int = 8,
) -> SweepReport:
    """Archive sessions whose Prefect flow run ended but which are still running or idle.

    Args:
        credentials: An AnthropicCredentials block or the name of a saved one; default: from the
            environment (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
        grace_period_seconds: Leave sessions alone until their flow run has been final this long.
        created_within_hours: Only look at sessions created this recently (None: all of them).
        agent_id: Only look at sessions of this agent.
        dry_run: Report the orphans without touching them.
        max_parallel: How many orphans to interrupt and archive at once.

    Returns:
        What was scanned and which sessions were (or would be) archived.
    """
    logger = get_run_logger()
    creds: AnthropicCredentials
    if isinstance(credentials, str):
        creds = await AnthropicCredentials.aload(credentials)
    else:
        if credentials is not None:
            refuse_inline_block(credentials, "credentials")  # deployment runs name saved blocks
        creds = credentials or AnthropicCredentials()
    now = datetime.now(UTC)
    created_after = now - timedelta(hours=created_within_hours) if created_within_hours else None
    async with creds.get_async_client() as client:
        sessions = await _list_candidates(client, agent_id=agent_id, created_after=created_after)
        run_ids = sorted({rid for s in sessions if (rid := owner_run_id(s))})
        owners = await _read_owner_runs(run_ids)
        orphans = select_orphans(sessions, owners, now=now, grace=timedelta(seconds=grace_period_seconds))
        logger.info(
            "Scanned %d session(s), %d started by a flow run, %d orphan(s)%s",
            len(sessions),
            sum(1 for s in sessions if owner_run_id(s)),
            len(orphans),
            " (dry run)" if dry_run else "",
        )
        if not dry_run and orphans:
            limiter = asyncio.Semaphore(max(1, max_parallel))
            orphans = list(await asyncio.gather(*(_archive(client, o, limiter) for o in orphans)))
    if orphans:
        await acreate_table_artifact(
            [o.model_dump() for o in orphans],
            key="managed-agents-sweep",
            description=f"Orphan sessions {'found' if dry_run else 'archived'} by the sweeper.",
        )
    return SweepReport(
        scanned=len(sessions),
        with_owner=sum(1 for s in sessions if owner_run_id(s)),
        orphans=orphans,
        dry_run=dry_run,
    )


sweep_sessions = sync_twin(asweep_sessions)
