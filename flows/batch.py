"""``run_agent_batch`` (async: ``arun_agent_batch``): one agent session per input item, under a
shared concurrency limit and an optional spend ceiling.

Every item runs through the same session pipeline as ``run_agent_session`` (deduplicated
uploads, retry-safe start, streaming, custom tools, outcomes, outputs, memory audit, a session
report). By default (``item_runs="auto"``) an item is one task run ``item-<key>`` of the batch's
flow run; an item whose policy may ask a person, or every item with ``item_runs="flow"``, is an
``arun_agent_session`` subflow run named ``<batch run>-<item key>``, with its own task runs and
cancel/crash hooks.

Items run on ``max_concurrency`` lanes, each holding one slot of the Prefect **global concurrency
limit** ``concurrency_limit_name``, so every batch (and deployment) naming that limit shares one
quota of concurrent sessions. When the limit has room for every lane, the batch takes all their
slots in one request and holds them to its end; otherwise each lane waits for a slot of its own
and holds it while it has items left. The limit is created with ``limit=max_concurrency`` when
missing, because a missing limit would silently not limit anything.

With ``spend_limit_usd``, an item starts only while the cost of finished sessions plus the
current cost of the sessions still running (read live from the API, through the session tag
of each running item's flow run) is below the ceiling; once reached, no further item starts and
those items are reported as ``not_started``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import AsyncExitStack, suppress
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import anthropic
import httpx
import prefect.runtime.flow_run
from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun, State
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_run_logger
from prefect.logging.loggers import flow_run_logger
from prefect.settings import get_current_settings
from prefect.states import Completed, Failed
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import Field

from blocks.agent import ManagedAgent, aresolve_agent
from flows.hooks import acleanup_session, acleanup_task_item_sessions
from flows.session import (
    AS_BATCH_ITEM,
    AgentParam,
    BudgetParam,
    CustomToolsParam,
    ToolRetriesParam,
    VaultsParam,
    arun_agent_session,
    tool_dispatcher,
)
from flows.twins import returns_state_data, sync_twin
from managed_agents_core.batch_items import (
    BatchFailedError,
    BatchItem,
    BatchItemResult,
    BatchResult,
    SpendLedger,
    load_batch_items,
    sum_usage,
)
from managed_agents_core.exceptions import ConfigurationError
from managed_agents_core.keys import run_session_id
from managed_agents_core.pipeline import SessionRequest
from managed_agents_core.report import batch_report
from managed_agents_core.results import SessionResult, UsageSummary
from managed_agents_core.retry_policy import retrying
from managed_agents_core.roots import check_inside_roots, input_roots, output_roots
from managed_agents_core.turn import ConfirmationPolicy
from managed_agents_core.vaults import chosen_vaults
from tasks.batch_item import ITEM_RUN_NAME, ItemSessions, run_batch_item
from tasks.custom_tools import PrefectToolDispatcher
from tasks.events import agent_resources, emit_managed_agents_event

DEFAULT_LIMIT_NAME = "managed-agents-sessions"
"""Global concurrency limit shared by batches unless another name is given."""

BATCH_TABLE_KEY = "managed-agents-batch"

_PAGE = 200

ITEM_ATTEMPTS = 3
"""Attempts per item when the Prefect API fails (later attempts re-attach to the item's session)."""

ItemRuns = Literal["auto", "flow", "task"]
"""How each item runs: its own ``arun_agent_session`` flow run, one task run of the batch, or
``auto``: task runs unless the confirmation policy may ask a person (only a flow run can pause)."""


def item_run_mode(item_runs: ItemRuns, policy: ConfirmationPolicy | None) -> Literal["flow", "task"]:
    """The mode ``item_runs`` means for this policy (``auto``: flow runs only when a person may be asked).

    Raises:
        ConfigurationError: ``task`` with a policy that may ask a person.
    """
    asks = policy is not None and policy.asks()
    if item_runs == "auto":
        return "flow" if asks else "task"
    if item_runs == "task" and asks:
        raise ConfigurationError(
            "item_runs='task' cannot ask a person to confirm a tool call (Prefect pauses flow runs, "
            "not task runs): use item_runs='flow' or 'auto', or a policy without 'ask'"
        )
    return item_runs


ItemsParam = Annotated[
    list[BatchItem | str] | str,
    Field(
        description="The items (prompt, files, memory stores, metadata, key; or just a prompt), "
        "or a path to a .jsonl or .csv file of them. The file and every item's files must be "
        "inside the worker's input roots ('~' is not expanded)."
    ),
]


async def ensure_global_limit(name: str, limit: int) -> None:
    """Create the global concurrency limit ``name`` with ``limit`` slots unless it exists.

    An existing limit is left as it is: it is the quota several batches share.
    """
    async with get_client() as prefect_client:
        try:
            await prefect_client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another batch created it first
                await prefect_client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit)
                )


async def read_child_runs(parent_id: UUID, names: list[str] | None = None) -> list[FlowRun]:
    """Read the subflow runs of a flow run (optionally only those with the given names)."""
    flow_filter = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
    if names is not None:
        flow_filter.name = FlowRunFilterName(any_=names)
    runs: list[FlowRun] = []
    async with get_client() as prefect_client:
        while True:
            page = await prefect_client.read_flow_runs(
                flow_run_filter=flow_filter, limit=_PAGE, offset=len(runs)
            )
            runs.extend(page)
            if len(page) < _PAGE:
                return runs


async def _session_cost(client: anthropic.AsyncAnthropic, session_id: str) -> Decimal:
    session = await client.beta.sessions.retrieve(session_id)
    return UsageSummary.from_session_usage(getattr(session, "usage", None)).cost_usd or Decimal(0)


_ITEM_RUN_NAME: ContextVar[str] = ContextVar("managed_agents_item_run_name")
"""The name of the item run its lane is about to start (each lane is its own asyncio task)."""


def _item_run_name() -> str:
    return _ITEM_RUN_NAME.get()


class _BatchRun:
    """State of one batch run: gates, the spend ledger and the items in flight."""

    def __init__(
        self,
        block: ManagedAgent,
        *,
        max_concurrency: int,
        limit_name: str,
        ledger: SpendLedger,
        output_root: Path,
        session_options: dict[str, Any],
        dispatcher: PrefectToolDispatcher | None = None,
        item_runs: Literal["flow", "task"] = "flow",
        budget_usd: Decimal | None = None,
    ) -> None:
        self.block = block
        self.budget_usd = budget_usd
        """Each session's budget (the flow's, else the block's), before the spend limit caps it."""
        self.budgets: dict[str, Decimal | None] = {}
        """The budget each admitted item's session was given."""
        self.limit_name = limit_name
        self.ledger = ledger
        self.output_root = output_root
        self.session_options = session_options
        """The flow's parameters every item's session shares (those of ``arun_agent_session``)."""
        self.dispatcher = dispatcher
        """Runs custom tool calls of items run as task runs (a child flow run builds its own)."""
        self.item_runs = item_runs
        self.sessions = ItemSessions()
        self.lanes = max_concurrency
        self.admission = asyncio.Lock()
        self.in_flight: set[str] = set()
        self.run_id = UUID(str(prefect.runtime.flow_run.id))
        self.run_name = str(prefect.runtime.flow_run.name)
        # One variant per batch, named per item through _ITEM_RUN_NAME: with_options rebuilds
        # the flow's parameter schema, a third of a batch's client CPU when done per item.
        self.item_flow = arun_agent_session.with_options(flow_run_name=_item_run_name)

    def child_name(self, item: BatchItem) -> str:
        return f"{self.run_name}-{item.key}"

    async def running_cost(self) -> Decimal:
        """Current cost of the sessions of the items in flight (read from the API)."""
        if not self.in_flight:
            return Decimal(0)
        if self.item_runs == "task":
            session_ids = self.sessions.of(self.in_flight)
        else:
            names = sorted(f"{self.run_name}-{key}" for key in self.in_flight)
            runs = await read_child_runs(self.run_id, names)
            session_ids = [sid for r in runs if (sid := run_session_id(r.tags, r.labels))]
        if not session_ids:
            return Decimal(0)
        async with self.block.credentials.get_async_client() as client:
            costs = await asyncio.gather(*(_session_cost(client, sid) for sid in session_ids))
        return sum(costs, Decimal(0))

    async def admit(self, item: BatchItem) -> bool:
        """Decide, atomically with marking the item in flight, whether it may start; with a
        per-session budget, reserve the item's budget against the spend limit."""
        key = str(item.key)
        async with self.admission:
            if self.ledger.limit_usd is not None:
                running = await self.running_cost() if not self.ledger.closed else Decimal(0)
                if not self.ledger.may_start(running):
                    return False
            if self.budget_usd is not None:
                budget = self.ledger.reserve(key, self.budget_usd)
                if budget is None:
                    return False
                self.budgets[key] = budget
            self.in_flight.add(key)
            return True

    async def run_all(self, items: list[BatchItem]) -> list[BatchItemResult]:
        """Run the items on ``max_concurrency`` lanes, each holding a global-limit slot."""
        results: list[BatchItemResult | None] = [None] * len(items)
        pending = iter(range(len(items)))
        lanes = min(self.lanes, len(items))
        if not lanes:
            return []

        async def lane() -> None:
            while (index := next(pending, None)) is not None:
                results[index] = await self.run_item(items[index])

        async def lane_with_own_slot() -> None:
            async with concurrency(self.limit_name, occupy=1, strict=True):
                await lane()

        async with AsyncExitStack() as slots:
            # Every lane's slot in one request when the limit has room for them all (the usual
            # case). Otherwise each lane waits for a slot of its own, sharing the limit with other
            # batches; those requests go through Prefect's one-at-a-time slot service, where one
            # "database is locked" 503 from a busy SQLite server costs every waiting lane a 2 s
            # back-off, which held a 10-lane batch to one started lane a second.
            try:
                await slots.enter_async_context(
                    concurrency(self.limit_name, occupy=lanes, strict=True, max_retries=0)
                )
                shared = False
            except ConcurrencySlotAcquisitionError:
                shared = True
            await asyncio.gather(*((lane_with_own_slot if shared else lane)() for _ in range(lanes)))
        return [r for r in results if r is not None]

    async def run_item(self, item: BatchItem) -> BatchItemResult:
        """Run one item as an ``arun_agent_session`` subflow; never raises for the item's failure.

        An attempt that failed because the Prefect API was unavailable (5xx or unreachable, e.g.
        a busy SQLite server) is run again as a new item flow run. When the failed attempt had
        already started a session, the new run re-attaches to it (``session_id``) instead of
        starting another, so a retry never pays for a second session and loses no work.
        """
        key = str(item.key)
        item_dir = self.output_root / key
        base = BatchItemResult(key=key, state="not_started", output_dir=str(item_dir), metadata=item.metadata)
        if self.ledger.closed or not await self.admit(item):
            return base
        reattach: str | None = None
        try:
            async for attempt in retrying(
                ITEM_ATTEMPTS, retry_on=lambda e: isinstance(e, _PrefectUnavailable), multiplier=1, longest=10
            ):
                with attempt:
                    try:
                        outcome = await self._attempt(
                            item, base, attempt.retry_state.attempt_number, reattach
                        )
                    except _PrefectUnavailable as exc:
                        reattach = exc.outcome.session_id or reattach
                        raise
        except _PrefectUnavailable as exc:
            outcome = exc.outcome.model_copy(update={"session_id": exc.outcome.session_id or reattach})
        finally:
            self.in_flight.discard(key)
        # No await between leaving the in-flight set and recording the cost: the session is
        # counted exactly once by any concurrent admission check.
        self.ledger.record_finished(outcome.cost_usd, key)
        return outcome

    async def _attempt(
        self, item: BatchItem, base: BatchItemResult, number: int, session_id: str | None
    ) -> BatchItemResult:
        base = base.model_copy(update={"attempts": number})
        if session_id is not None and not await self._attachable(session_id):
            session_id = None
            self.sessions.forget(str(item.key))
        error: BaseException | None = None
        started = datetime.now(UTC)
        try:
            state = await self._run(item, base.output_dir, session_id)
            outcome, error = await self._outcome(base, state)
        except Exception as exc:  # the item could not even run (e.g. Prefect API down)
            outcome = base.model_copy(
                update={"state": "failed", "error_type": type(exc).__name__, "error": str(exc)}
            )
            error = exc
        if outcome.state == "failed":
            run = (
                f"flow run {self.child_name(item)!r}"
                if self.item_runs == "flow"
                else f"task run {ITEM_RUN_NAME.format(key=base.key)!r}"
            )
            console = f" ({self.block.console_url(outcome.session_id)})" if outcome.session_id else ""
            get_run_logger().warning(
                "Item %s failed (attempt %d) in %s: %s%s", base.key, number, run, outcome.error_type, console
            )
            if _prefect_unavailable(error):
                if outcome.session_id is None and session_id is None:
                    # The outage may have hidden a session that was created (e.g. the tag
                    # update failed): sessions are titled with the item run's name, so look.
                    found = await self._find_session(self.child_name(item), started)
                    outcome = outcome.model_copy(update={"session_id": found})
                raise _PrefectUnavailable(outcome)
        return outcome

    async def _run(self, item: BatchItem, output_dir: str, session_id: str | None) -> State[Any]:
        """One attempt at the item, as its own flow run or as a task run of the batch."""
        if self.item_runs == "task":
            request = SessionRequest(
                prompt=item.prompt,
                files=tuple(item.files),
                memory_stores=tuple(item.memory_stores),
                output_dir=output_dir,
                policy=self.session_options["confirmation_policy"],
                max_duration=self.session_options["max_duration_seconds"],
                archive_when_done=self.session_options["archive_when_done"],
                custom_tools=self.dispatcher,
                outcome=item.outcome,
                key=str(item.key),
                title=self.child_name(item),
                budget_usd=self.budgets.get(str(item.key)),
                repositories=tuple(item.github_repositories),
                vault_ids=tuple(self.session_options["vault_ids"]),
            )
            # Calling an async task returns a coroutine at runtime; Prefect's overloads say State.
            return await cast(
                "Awaitable[State[Any]]",
                run_batch_item(self.block, str(item.key), request, self.sessions, return_state=True),
            )
        as_item = AS_BATCH_ITEM.set(True)
        try:
            return await self._run_child(item, output_dir, session_id)
        finally:
            AS_BATCH_ITEM.reset(as_item)

    async def _run_child(self, item: BatchItem, output_dir: str, session_id: str | None) -> State[Any]:
        _ITEM_RUN_NAME.set(self.child_name(item))
        state: State[Any] = await self.item_flow(
            # The loaded block, not its name: every item runs the version pinned when the batch
            # started (a deploy_agent during the batch moves the block's pin, not this batch's),
            # and no item run reads the block again.
            agent=self.block,
            prompt=item.prompt,
            files=list(item.files) or None,
            memory_stores=list(item.memory_stores) or None,
            output_dir=output_dir,
            session_id=session_id,
            outcome=item.outcome,
            budget_usd=self.budgets.get(str(item.key)),
            github_repositories=list(item.github_repositories) or None,
            return_state=True,
            **self.session_options,
        )
        return state

    async def _attachable(self, session_id: str) -> bool:
        """False when the earlier attempt's session was archived or terminated (e.g. by a crash hook)."""
        async with self.block.credentials.get_async_client() as client:
            session = await client.beta.sessions.retrieve(session_id)
        if session.archived_at is None and session.status != "terminated":
            return True
        get_run_logger().warning(
            "Session %s of the failed attempt is %s; the retry starts a new one",
            session_id,
            "archived" if session.archived_at is not None else "terminated",
        )
        return False

    async def _find_session(self, title: str, since: datetime) -> str | None:
        async with self.block.credentials.get_async_client() as client:
            async for session in client.beta.sessions.list(
                agent_id=self.block.agent_id, created_at_gte=since - timedelta(minutes=1), limit=100
            ):
                if session.title == title:
                    return str(session.id)
        return None

    async def _outcome(
        self, base: BatchItemResult, state: State[Any]
    ) -> tuple[BatchItemResult, BaseException | None]:
        # A subflow's state names the item's flow run (and the parent's wrapper task run); a
        # task run's state names the batch's own flow run.
        if self.item_runs == "task":
            child_id, task_run_id = None, state.state_details.task_run_id
        else:
            child_id, task_run_id = state.state_details.flow_run_id, None
        run_ids = {
            "flow_run_id": str(child_id) if child_id else None,
            "task_run_id": str(task_run_id) if task_run_id else None,
        }
        if state.is_completed():
            result = await state.aresult()
            assert isinstance(result, SessionResult)
            return base.model_copy(
                update={
                    "state": "completed",
                    "result": result,
                    "session_id": result.session_id,
                    "cost_usd": result.usage.cost_usd,
                    **run_ids,
                }
            ), None
        error = await state.aresult(raise_on_failure=False)
        session_id = getattr(error, "session_id", None) or self.sessions.get(base.key)
        if session_id is None and child_id is not None:
            async with get_client() as prefect_client:
                child = await prefect_client.read_flow_run(child_id)
            session_id = run_session_id(child.tags, child.labels)
        cost = None
        if session_id:
            with suppress(anthropic.APIError):
                async with self.block.credentials.get_async_client() as client:
                    cost = await _session_cost(client, str(session_id))
        return base.model_copy(
            update={
                "state": "failed",
                "error_type": type(error).__name__ if isinstance(error, BaseException) else state.name,
                "error": str(error) if isinstance(error, BaseException) else (state.message or state.name),
                "session_id": str(session_id) if session_id else None,
                "cost_usd": cost,
                **run_ids,
            }
        ), error if isinstance(error, BaseException) else None


class _PrefectUnavailable(Exception):
    """An item attempt failed on a Prefect API outage before any session existed."""

    def __init__(self, outcome: BatchItemResult) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def _prefect_unavailable(error: BaseException | None) -> bool:
    """True for a 5xx answer or a connection failure of the Prefect API (never the Anthropic SDK's)."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, httpx.TransportError)


def emit_batch_event(result: BatchResult, block: ManagedAgent, *, failed: bool) -> None:
    """Emit ``managed-agents.batch.completed`` (or ``.failed``) about this batch's flow run, with
    the totals an Automation may act on: items by state, tokens and cost."""
    emit_managed_agents_event(
        f"batch.{'failed' if failed else 'completed'}",
        str(prefect.runtime.flow_run.id),
        name=str(prefect.runtime.flow_run.name),
        payload={
            "agent_id": block.agent_id,
            "items": len(result.items),
            "completed": len(result.completed),
            "failed": len(result.failed),
            "not_started": len(result.not_started),
            "spend_limit_reached": result.spend_limit_reached,
            "cost_usd": str(result.total_cost_usd),
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
        },
        related=agent_resources(block),
    )


def item_run_url(item: BatchItemResult) -> str | None:
    """The Prefect UI page of an item's flow run or task run (relative to the UI without
    ``PREFECT_UI_URL``)."""
    if item.flow_run_id:
        path = f"/runs/flow-run/{item.flow_run_id}"
    elif item.task_run_id:
        path = f"/runs/task-run/{item.task_run_id}"
    else:
        return None
    return f"{(get_current_settings().ui_url or '').rstrip('/')}{path}"


async def acleanup_batch_sessions(flow: Any, flow_run: Any, state: Any) -> list[str | None]:
    """Interrupt and archive the sessions of a batch's item runs (async form of the hook).

    Runs in the worker's or runner's hook process: each item flow run that neither completed nor
    failed is cleaned up by the single-session hook (tag or metadata; it never raises); with
    items run as task runs, so is the session of each item task run that did not finish.

    Returns:
        The outcome per item run that did not complete.
    """
    children = await read_child_runs(UUID(str(flow_run.id)))
    # Completed and failed items are done with their sessions (idle, kept for inspection).
    unfinished = [
        c for c in children if c.state is None or not (c.state.is_completed() or c.state.is_failed())
    ]
    flow_run_logger(flow_run, flow).info("Cleaning up the sessions of %d item run(s)", len(unfinished))
    outcomes = list(await asyncio.gather(*(acleanup_session(flow, child, state) for child in unfinished)))
    if (getattr(flow_run, "parameters", None) or {}).get("item_runs") != "flow":  # task, or auto
        outcomes.extend(await acleanup_task_item_sessions(flow, flow_run, state))
    return outcomes


def cleanup_batch_sessions(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (on_cancellation, on_crashed): interrupt, then archive, every item's session."""
    run_coro_as_sync(acleanup_batch_sessions(flow, flow_run, state))


@returns_state_data
@flow(
    name="run-agent-batch",
    on_cancellation=[cleanup_batch_sessions],
    on_crashed=[cleanup_batch_sessions],
)
async def arun_agent_batch(
    agent: AgentParam,
    items: ItemsParam,
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4,
    spend_limit_usd: Annotated[Decimal | None, Field(gt=0)] = None,
    output_dir: str = "outputs",
    concurrency_limit_name: str = DEFAULT_LIMIT_NAME,
    confirmation_policy: ConfirmationPolicy | None = None,
    max_duration_seconds: Annotated[float | None, Field(gt=0)] = None,
    archive_when_done: bool = False,
    item_runs: ItemRuns = "auto",
    custom_tools: CustomToolsParam = None,
    custom_tool_retries: ToolRetriesParam = 0,
    budget_usd: BudgetParam = None,
    vault_ids: VaultsParam = None,
) -> State[BatchResult]:
    """Run one agent session per item, a few at a time, and collect every item's result.

    A failing item never stops the others: its error is recorded and the batch goes on. The
    final state's message says how many items completed, failed and were not started; the
    state is Failed only when every started item failed.

    Args:
        agent: The ManagedAgent block, or the name of a saved one (created by deploy_agent).
        items: The items (prompt, files, memory stores, metadata, key), or a path to a .jsonl or
            .csv file of them. The file and every item's files must be inside the input roots
            (``MANAGED_AGENTS_INPUT_ROOTS`` or the block's ``input_roots``), checked for all items
            before any session starts.
        max_concurrency: Sessions this batch runs at once.
        spend_limit_usd: Stop starting sessions once finished plus running sessions cost this
            much (list price, USD). No limit when empty.
        output_dir: Folder of the outputs; each item writes to its own subfolder named by its key.
            Must be inside the output roots (``MANAGED_AGENTS_OUTPUT_ROOTS`` or the block's
            ``output_roots``; default ``./outputs``).
        concurrency_limit_name: Prefect global concurrency limit shared by batches (created with
            max_concurrency slots when missing).
        confirmation_policy: How every item's session answers tool confirmations.
        max_duration_seconds: Wall-clock limit of each session.
        archive_when_done: Archive each session after its outputs were collected.
        item_runs: ``task`` runs each item as one task run of this flow run (several times
            faster, far less load on the Prefect server, no per-item artifacts, no ``ask`` in the
            confirmation policy); ``flow`` runs each item as its own ``arun_agent_session`` flow
            run (its own artifacts, and a person can approve its tool calls); ``auto`` (default)
            picks ``task`` unless the confirmation policy may ask a person.
        custom_tools: Custom tools run for every item's custom tool calls: names of tools
            registered in code (``@custom_tool``), or from Python the functions themselves. An
            unknown name fails before any session starts.
        custom_tool_retries: Task-run retries of a failing custom tool before its error goes to
            the agent.
        budget_usd: Each session's server-enforced spend ceiling (list cost, USD; default: the
            block's ``budget_usd``). With ``spend_limit_usd`` too, a session gets at most what
            the limit leaves after the finished sessions' costs and the running sessions'
            budgets, so the running sessions cannot together spend past the limit (the service
            stops each at its budget, after the model request that reached it).
        vault_ids: Vaults every item's session gets, among the block's ``vault_ids`` (any other
            fails with ``VaultNotAllowedError`` before any session starts). Default: the
            block's; ``[]``: none.

    Returns:
        The batch result (each item's session result or error, totals) as the state's data.

    Raises:
        BatchFailedError: Every item that started failed (its ``result`` is the batch result).
    """
    logger = get_run_logger()
    mode = item_run_mode(item_runs, confirmation_policy)
    # Parameters are data: every path and tool they name is checked before any session starts.
    dispatcher = tool_dispatcher(custom_tools, custom_tool_retries)
    block = await aresolve_agent(agent)
    block.credentials.resolved_pair()  # the key only goes where it was saved to go
    check_inside_roots(output_dir, output_roots(block), kind="output", what="output_dir")
    vaults = list(chosen_vaults(vault_ids, block.vault_ids))
    loaded = load_batch_items(items, input_roots(block))
    await ensure_global_limit(concurrency_limit_name, max_concurrency)
    limit = Decimal(str(spend_limit_usd)) if spend_limit_usd is not None else None
    batch = _BatchRun(
        block,
        max_concurrency=max_concurrency,
        limit_name=concurrency_limit_name,
        ledger=SpendLedger(limit),
        output_root=Path(output_dir),
        session_options={
            "confirmation_policy": confirmation_policy,
            "max_duration_seconds": max_duration_seconds,
            "archive_when_done": archive_when_done,
            "custom_tools": custom_tools,
            "custom_tool_retries": custom_tool_retries,
            "vault_ids": vaults,
        },
        dispatcher=dispatcher,
        item_runs=mode,
        budget_usd=budget_usd if budget_usd is not None else block.budget_usd,
    )
    logger.info(
        "Batch of %d item(s) as %s runs%s, %d at a time (global limit %r)%s%s",
        len(loaded),
        mode,
        " (auto)" if item_runs == "auto" else "",
        max_concurrency,
        concurrency_limit_name,
        f", spend limit {limit} USD" if limit is not None else "",
        f", budget {batch.budget_usd} USD per session" if batch.budget_usd is not None else "",
    )
    outcomes = await batch.run_all(loaded)
    completed_usage = [o.result.usage for o in outcomes if o.result is not None]
    result = BatchResult(
        items=list(outcomes),
        usage=sum_usage(completed_usage),
        total_cost_usd=sum((o.cost_usd for o in outcomes if o.cost_usd is not None), Decimal(0)),
        spend_limit_usd=limit,
        spend_limit_reached=any(o.state == "not_started" for o in outcomes),
    )
    await acreate_markdown_artifact(
        batch_report(result, output_dir=output_dir, run_url=item_run_url, console_url=block.console_url),
        key=BATCH_TABLE_KEY,
        description=f"Batch items, usage and cost: {result.summary()}",
    )
    summary = result.summary()
    logger.info(summary)
    failed = bool(result.failed and not result.completed)
    emit_batch_event(result, block, failed=failed)
    if failed:
        return Failed(message=summary, data=BatchFailedError(summary, result))
    return Completed(message=summary, data=result)


run_agent_batch = sync_twin(arun_agent_batch)
