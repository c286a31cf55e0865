"""Session threads: list, retrieve, archive, a thread's events and its live stream (reference §9).

Decisions where the reference says UNKNOWN:

* The list is in creation order (the primary thread first); ``limit`` is 1..1000 (default 1000,
  as the SDK documents); ``statuses[]`` takes the four session statuses (400 on another);
  archived threads are listed.
* A thread's ``events`` list pages like the session's (``limit`` 1..1000, default 1000, oldest
  first; ``config.history_lag`` applies). The primary thread's history and stream are the
  session's.
* The thread stream (``/threads/{id}/stream``, not ``/events/stream``) accepts ``event_deltas[]``
  as the SDK sends it; previews are only made for the primary thread's text.
* Archiving the primary thread is 400 (archive the session); so is archiving a running thread.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from .. import threads
from ..engine import get_engine
from ..errors import ApiError
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep
from .events import open_stream
from .sessions import get_session

router = APIRouter(prefix="/v1/sessions/{session_id}/threads")

_THREAD_IDLE_FRAME = b"event: session.thread_status_idle\n"


def _lookup(emulator: Emulator, session_id: str, thread_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    session = get_session(emulator, session_id)
    return session, threads.get_thread(get_engine(emulator), session, thread_id)


@router.get("")
async def list_threads(
    session_id: str,
    emulator: EmulatorDep,
    limit: int | None = None,
    page: str | None = None,
    statuses: Annotated[list[str] | None, Query(alias="statuses[]")] = None,
) -> dict[str, Any]:
    """List a session's threads, primary first, optionally only those in ``statuses``."""
    session = get_session(emulator, session_id)
    wanted = set(statuses or [])
    bad = wanted - threads.STATUSES
    if bad:
        raise ApiError(400, f"statuses: unknown status {sorted(bad)}.")
    engine = get_engine(emulator)
    items = [threads.public_thread(engine, session, t) for t in threads.session_threads(engine, session)]
    if wanted:
        items = [t for t in items if t["status"] in wanted]
    return paginate(items, limit=limit, page=page, default_limit=1000, max_limit=1000)


@router.get("/{thread_id}")
async def retrieve_thread(session_id: str, thread_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return one thread."""
    session, thread = _lookup(emulator, session_id, thread_id)
    return threads.public_thread(get_engine(emulator), session, thread)


@router.post("/{thread_id}/archive")
async def archive_thread(session_id: str, thread_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive a child thread (read-only from now on)."""
    session, thread = _lookup(emulator, session_id, thread_id)
    engine = get_engine(emulator)
    threads.archive(engine, session, thread)
    return threads.public_thread(engine, session, thread)


@router.get("/{thread_id}/events")
async def list_thread_events(
    session_id: str,
    thread_id: str,
    emulator: EmulatorDep,
    limit: int | None = None,
    page: str | None = None,
    order: Literal["asc", "desc"] = "asc",
) -> dict[str, Any]:
    """Page through a thread's own persisted events (oldest first)."""
    session, thread = _lookup(emulator, session_id, thread_id)
    items = threads.history(get_engine(emulator), session, thread)
    if order == "desc":
        items = items[::-1]
    return paginate(items, limit=limit, page=page, order=order, default_limit=1000, max_limit=1000)


@router.get("/{thread_id}/stream")
async def stream_thread(
    session_id: str,
    thread_id: str,
    request: Request,
    emulator: EmulatorDep,
    event_deltas: Annotated[list[str] | None, Query(alias="event_deltas[]")] = None,
) -> StreamingResponse:
    """Stream the thread's events emitted from now on as SSE (no replay)."""
    _, thread = _lookup(emulator, session_id, thread_id)
    if threads.is_primary(thread):
        return open_stream(emulator, session_id, event_deltas, request.scope)
    return open_stream(emulator, thread_id, event_deltas, request.scope, _THREAD_IDLE_FRAME)


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register the session thread routes."""
    app.include_router(router)
