"""Session events: list (history), send, and the live SSE stream (reference §7).

Decisions where the reference says UNKNOWN:

* ``events.list`` takes ``limit`` 1..1000 (default 1000) and lists in history order, which is
  processing order; the ``created_at[...]`` filters compare ``processed_at`` and leave out
  queued events (``processed_at: null``).
* Sending to an archived or terminated session is 409 (``x-should-retry: false``).
* A ``#emulator`` message with an invalid scenario is rejected at send time with 400.
* The stream never closes on its own unless ``config.close_stream_on_idle`` is set; it sends
  ``event: ping`` every ``config.ping_interval`` seconds.

Realism knobs (all off by default):

* ``config.history_lag``: the list shows the history as it was that many seconds ago
  (:meth:`~emulator.engine.SessionEngine.listable_history`); the stream is not delayed.
* ``config.queued_events_position``: queued user events (``processed_at: null``) are listed
  ``inline`` (where accepted), ``first``, ``last``, or ``mixed`` (each request draws first or
  last, seeded from ``faults.seed``). ``order=desc`` is the reverse of the same arrangement.
* ``faults.close_stream_after_idle_rate`` / ``faults.silent_stream_rate``: drawn per connection
  when it opens; a closing connection ends cleanly right after a ``session.status_idle`` frame,
  a silent one sends nothing more (not even pings) after ``silent_stream_after_events`` event
  frames and stays open until the client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Scope

from .. import threads
from ..engine import Subscriber, get_engine
from ..errors import ApiError
from ..faults import StreamFaults, get_injector, note_fault
from ..ids import parse_ts
from ..listing import parse_bound
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep
from ..script import check_scenario
from ..session_models import SendEventsBody, event_dict
from ..sse import PING_FRAME
from .sessions import _in_range, get_session

router = APIRouter(prefix="/v1")

PREVIEW_KINDS = frozenset({"agent.message", "agent.thinking"})
_MAX_FRAMES_PER_CHUNK = 256
_IDLE_FRAME = b"event: session.status_idle\n"


@router.get("/sessions/{session_id}/events")
async def list_events(
    session_id: str,
    request: Request,
    emulator: EmulatorDep,
    limit: int | None = None,
    order: Literal["asc", "desc"] = "asc",
    page: str | None = None,
    types: Annotated[list[str] | None, Query(alias="types[]")] = None,
) -> dict[str, Any]:
    """Page through a session's persisted events (oldest first by default)."""
    get_session(emulator, session_id)
    history = get_engine(emulator).listable_history(session_id)
    bounds = {
        op: parse_bound(request.query_params.get(f"created_at[{op}]")) for op in ("gt", "gte", "lt", "lte")
    }
    wanted = set(types or [])
    items: list[dict[str, Any]] = history
    if wanted or any(bounds.values()):
        items = [
            e
            for e in history
            if (not wanted or e["type"] in wanted)
            and (
                not any(bounds.values())
                or (e.get("processed_at") is not None and _in_range(parse_ts(e["processed_at"]), bounds))
            )
        ]
    items = _place_queued(emulator, items)
    if order == "desc":
        items = items[::-1]
    return paginate(items, limit=limit, page=page, order=order, default_limit=1000, max_limit=1000)


def _place_queued(emulator: Emulator, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arrange queued user events as ``config.queued_events_position`` says (ascending order)."""
    position = emulator.config.queued_events_position
    if position == "inline":
        return items
    if position == "mixed":
        position = "first" if get_injector(emulator).coin("queued_events_position") else "last"
    queued = [e for e in items if e.get("processed_at") is None]
    if not queued:
        return items
    processed = [e for e in items if e.get("processed_at") is not None]
    return queued + processed if position == "first" else processed + queued


@router.post("/sessions/{session_id}/events")
async def send_events(session_id: str, body: SendEventsBody, emulator: EmulatorDep) -> dict[str, Any]:
    """Accept user events; echo them with server ids and ``processed_at: null``."""
    session = get_session(emulator, session_id)
    if session.get("archived_at") is not None or session["status"] == "terminated":
        state = "archived" if session.get("archived_at") is not None else "terminated"
        raise ApiError(409, f"Session {session_id!r} is {state} and accepts no more events.")
    events = [event_dict(e) for e in body.events]
    engine = get_engine(emulator)
    for event in events:
        check_scenario(emulator, session["agent"], event)
        thread_id = event.get("session_thread_id")
        if thread_id is not None and not any(
            t["id"] == thread_id for t in threads.session_threads(engine, session)
        ):
            raise ApiError(400, f"session_thread_id {thread_id!r} is not a thread of session {session_id!r}.")
    return {"data": engine.accept(session, events)}


@router.get("/sessions/{session_id}/events/stream")
async def stream_events(
    session_id: str,
    request: Request,
    emulator: EmulatorDep,
    event_deltas: Annotated[list[str] | None, Query(alias="event_deltas[]")] = None,
) -> StreamingResponse:
    """Stream the events emitted from now on as SSE (no replay)."""
    get_session(emulator, session_id)
    return open_stream(emulator, session_id, event_deltas, request.scope)


def open_stream(
    emulator: Emulator,
    key: str,
    event_deltas: list[str] | None,
    scope: Scope,
    idle_frame: bytes = _IDLE_FRAME,
) -> StreamingResponse:
    """Answer an SSE request with the frames broadcast to ``key`` from now on.

    Args:
        emulator: The emulator.
        key: The session id (or a child thread's id, for its thread stream).
        event_deltas: The requested previews (400 unless agent.message / agent.thinking).
        scope: The request's scope (fault notes go to the request log).
        idle_frame: Start of the frames after which ``close_stream_after_idle`` may end the stream.
    """
    deltas = frozenset(event_deltas or [])
    bad = deltas - PREVIEW_KINDS
    if bad:
        raise ApiError(
            400, f"event_deltas: {sorted(bad)} not supported; use agent.message and/or agent.thinking."
        )
    engine = get_engine(emulator)
    faults = get_injector(emulator).draw_stream_faults()
    # Subscribe before answering so nothing emitted after the request arrived is missed.
    sub = engine.subscribe(key, deltas)
    return StreamingResponse(
        _frames(emulator, key, sub, faults, scope, idle_frame),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _frames(
    emulator: Emulator,
    session_id: str,
    sub: Subscriber,
    faults: StreamFaults,
    scope: Scope,
    idle_frame: bytes,
) -> AsyncIterator[bytes]:
    engine = get_engine(emulator)
    interval = emulator.config.ping_interval
    loop = asyncio.get_running_loop()
    next_ping = loop.time() + interval
    silent_after = faults.silent_after
    delivered = 0
    try:
        while True:
            if silent_after is not None and delivered >= silent_after:
                # Half-dead: nothing more, not even pings, until the client gives up.
                note_fault(scope, "silent_stream")
                engine.unsubscribe(session_id, sub)
                await asyncio.Event().wait()
            try:
                first = await asyncio.wait_for(sub.queue.get(), max(0.0, next_ping - loop.time()))
            except TimeoutError:
                # Heartbeats keep their own clock: one every `interval`, busy or not.
                next_ping = loop.time() + interval
                yield PING_FRAME
                continue
            if first is None:
                return
            batch = [first]
            closed = False
            while not sub.queue.empty() and len(batch) < _MAX_FRAMES_PER_CHUNK:
                frame = sub.queue.get_nowait()
                if frame is None:
                    closed = True
                    break
                batch.append(frame)
            cut = None
            if faults.close_after_idle or silent_after is not None:
                batch, cut = _cut(batch, faults.close_after_idle, silent_after, delivered, idle_frame)
                delivered += len(batch)
            if cut == "idle":
                # A clean end of the response, right after the idle frame.
                note_fault(scope, "close_after_idle")
            if batch:
                yield b"".join(batch)
            if cut == "idle":
                return
            if closed and cut is None:
                return
    finally:
        engine.unsubscribe(session_id, sub)


def _cut(
    batch: list[bytes], close_after_idle: bool, silent_after: int | None, delivered: int, idle_frame: bytes
) -> tuple[list[bytes], str | None]:
    """Cut a batch after its first idle frame (``"idle"``) or at the silence limit (``"silent"``).

    Every frame of a batch is an event frame (pings are sent on their own).
    """
    for index, frame in enumerate(batch):
        if silent_after is not None and delivered + index >= silent_after:
            return batch[:index], "silent"
        if close_after_idle and frame.startswith(idle_frame):
            return batch[: index + 1], "idle"
    return batch, None


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register the session event routes."""
    app.include_router(router)
