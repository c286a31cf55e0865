"""Session events: list (history), send, and the live SSE stream (reference §7).

Decisions where the reference says UNKNOWN:

* ``events.list`` takes ``limit`` 1..1000 (default 1000) and lists in history order, which is
  processing order; the ``created_at[...]`` filters compare ``processed_at`` and leave out
  queued events (``processed_at: null``).
* Sending to an archived or terminated session is 409 (``x-should-retry: false``).
* A ``#emulator`` message with an invalid scenario is rejected at send time with 400.
* The stream never closes on its own unless ``config.close_stream_on_idle`` is set; it sends
  ``event: ping`` every ``config.ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from ..engine import Subscriber, get_engine
from ..errors import ApiError
from ..ids import parse_ts
from ..listing import parse_bound
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep
from ..script import parse_test_mode, trigger_text
from ..session_models import SendEventsBody, event_dict
from ..sse import PING_FRAME
from .sessions import _in_range, get_session

router = APIRouter(prefix="/v1")

PREVIEW_KINDS = frozenset({"agent.message", "agent.thinking"})
_MAX_FRAMES_PER_CHUNK = 256


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
    history = emulator.store.events.get(session_id, [])
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
    if order == "desc":
        items = items[::-1]
    return paginate(items, limit=limit, page=page, order=order, default_limit=1000, max_limit=1000)


@router.post("/sessions/{session_id}/events")
async def send_events(session_id: str, body: SendEventsBody, emulator: EmulatorDep) -> dict[str, Any]:
    """Accept user events; echo them with server ids and ``processed_at: null``."""
    session = get_session(emulator, session_id)
    if session.get("archived_at") is not None or session["status"] == "terminated":
        state = "archived" if session.get("archived_at") is not None else "terminated"
        raise ApiError(409, f"Session {session_id!r} is {state} and accepts no more events.")
    events = [event_dict(e) for e in body.events]
    for event in events:
        if event["type"] in ("user.message", "user.define_outcome"):
            parse_test_mode(trigger_text(event))
    return {"data": get_engine(emulator).accept(session, events)}


@router.get("/sessions/{session_id}/events/stream")
async def stream_events(
    session_id: str,
    emulator: EmulatorDep,
    event_deltas: Annotated[list[str] | None, Query(alias="event_deltas[]")] = None,
) -> StreamingResponse:
    """Stream the events emitted from now on as SSE (no replay)."""
    get_session(emulator, session_id)
    deltas = frozenset(event_deltas or [])
    bad = deltas - PREVIEW_KINDS
    if bad:
        raise ApiError(
            400, f"event_deltas: {sorted(bad)} not supported; use agent.message and/or agent.thinking."
        )
    engine = get_engine(emulator)
    # Subscribe before answering so nothing emitted after the request arrived is missed.
    sub = engine.subscribe(session_id, deltas)
    return StreamingResponse(
        _frames(emulator, session_id, sub),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _frames(emulator: Emulator, session_id: str, sub: Subscriber) -> AsyncIterator[bytes]:
    engine = get_engine(emulator)
    interval = emulator.config.ping_interval
    loop = asyncio.get_running_loop()
    next_ping = loop.time() + interval
    try:
        while True:
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
            yield b"".join(batch)
            if closed:
                return
    finally:
        engine.unsubscribe(session_id, sub)


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register the session event routes."""
    app.include_router(router)
