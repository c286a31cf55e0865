"""The session engine: per-session runtime state, event emission, live streams and turns.

One :class:`SessionEngine` per app (``emulator.services["sessions"]``). Per-event work is O(1):
an event is appended to the session's history, serialised once and pushed to the queue of each
open stream. Each session with work has one background task (its *worker*) that runs turns one
after another; what a turn does is decided by :mod:`emulator.script`.

The realism knobs of :class:`~emulator.config.EmulatorConfig` that concern sessions live here,
all in memory (never in the event dicts, which go to SSE and the state file):

* ``history_lag``: each placement of an event in the history (its emission, or the move of a
  processed user event to the end) gets a listable-from time; :meth:`SessionEngine.listable_history`
  returns the history as it was ``history_lag`` seconds ago, including ``processed_at: null``
  copies of user events processed within that time.
* ``status_leads_idle`` / ``post_idle_running``: :meth:`SessionEngine.emit_idle` either defers the
  ``session.status_idle`` event (the status is already idle) or, once it is emitted, keeps
  reporting ``running`` for a while (:meth:`SessionEngine.public_status`).
* ``output_indexing_window``: a turn's output files stay unlisted until its idle is emitted, then
  get staggered ``listable_after`` times (:func:`emulator.blobs.index_outputs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import blobs, threads
from .errors import ApiError
from .faults import get_injector
from .ids import new_id, now_iso
from .runtime import Emulator
from .sse import encode_frame
from .usage import add_request

logger = logging.getLogger(__name__)

SAVE_INTERVAL = 0.5
"""Seconds between state-file saves while events keep arriving (writes are throttled)."""

_YIELD_EVERY = 64
"""With no event delay, a turn yields to the loop after this many events so streams drain."""

ACTIVE_STATUSES = frozenset({"running", "rescheduling"})
"""Statuses during which a session cannot be archived, deleted or have its agent updated."""

ANSWER_TARGETS = {
    "user.tool_confirmation": "tool_use_id",
    "user.custom_tool_result": "custom_tool_use_id",
    "user.tool_result": "tool_use_id",
}
"""Answer event type -> the field naming the agent event it answers."""

TurnRunner = Callable[["TurnContext"], Awaitable[None]]


class SessionGone(Exception):
    """The session was deleted (or the store reset) while a turn was running."""


class TurnInterrupted(Exception):
    """A ``user.interrupt`` arrived; the turn stops at the current event boundary."""


@dataclass(eq=False)
class Subscriber:
    """One open SSE connection: a queue of ready frames (``None`` closes the stream)."""

    queue: asyncio.Queue[bytes | None]
    deltas: frozenset[str]


@dataclass(eq=False)
class QueuedCopy:
    """How a processed user event is still listed as queued while ``history_lag`` hides the move."""

    event: dict[str, Any]
    """A copy of the event with ``processed_at: null``."""
    position: int
    """Index in the history before which the copy is listed (kept up to date on later moves)."""
    order: int
    """Acceptance order among the session's queued events (ties of ``position``)."""
    shown_from: float
    """``time.monotonic()`` from which the copy is listed (the queued echo's listable time)."""
    shown_until: float
    """``time.monotonic()`` at which the processed version replaces it."""


@dataclass(eq=False)
class DeferredIdle:
    """A ``session.status_idle`` held back by ``status_leads_idle``."""

    event: dict[str, Any]
    after: Callable[[], None]
    timer: asyncio.TimerHandle


@dataclass(eq=False)
class SessionRuntime:
    """What the engine keeps in memory for one session (never persisted)."""

    session_id: str
    subscribers: set[Subscriber] = field(default_factory=set)
    inbox: deque[dict[str, Any]] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    answers: deque[dict[str, Any]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    report_idle_until: float = 0.0
    running_since: float | None = None
    # history_lag: event id -> time.monotonic() at which its current placement becomes listable,
    # for the placements not listable yet (pruned in `hidden_order`, which is in time order).
    hidden_until: dict[str, float] = field(default_factory=dict)
    hidden_order: deque[tuple[float, str]] = field(default_factory=deque)
    queued_order: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    queued_copies: list[QueuedCopy] = field(default_factory=list)
    # post_idle_running / status_leads_idle
    report_running_until: float = 0.0
    deferred_idle: DeferredIdle | None = None

    @property
    def busy(self) -> bool:
        """True while a worker is processing (or waiting inside) a turn."""
        return self.worker is not None and not self.worker.done()


class SessionEngine:
    """Runs sessions: accepts user events, runs turns, fans events out to streams.

    Args:
        emulator: The app's emulator context.
        run_turn: The scripted agent (the app passes :func:`emulator.script.run_turn`).
    """

    def __init__(self, emulator: Emulator, run_turn: TurnRunner) -> None:
        self.emulator = emulator
        self.run_turn = run_turn
        self._runtimes: dict[str, SessionRuntime] = {}
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover sessions cut off by a crash and start the throttled state saver."""
        self.recover_interrupted_sessions()
        if self.emulator.config.state_file is not None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="emulator-state-saver")

    async def stop(self) -> None:
        """Cancel running turns, close open streams and write the state one last time."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        for rt in list(self._runtimes.values()):
            self.flush_deferred_idle(rt)
        workers = [rt.worker for rt in self._runtimes.values() if rt.worker is not None]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for rt in self._runtimes.values():
            self._close_streams(rt)
        if self._dirty:
            self._dirty = False
            self.emulator.save()

    def mark_dirty(self) -> None:
        """Note that the store changed; the saver writes it within :data:`SAVE_INTERVAL`."""
        self._dirty = True

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            if self._dirty:
                self._dirty = False
                self.emulator.save()

    def recover_interrupted_sessions(self) -> None:
        """Fail, clearly, every loaded session whose turn died with the previous process.

        A session that was ``running``/``rescheduling`` (or idle waiting on ``requires_action``,
        whose continuation lived only in memory) gets a ``session.error`` (``unknown_error``,
        ``retry_status: terminal``) and a ``session.status_idle`` (``retries_exhausted``). The
        session stays usable: a new ``user.message`` starts a new turn.
        """
        self._index_orphaned_outputs()
        for session_id, session in list(self.emulator.store.sessions.items()):
            if session.get("status") == "terminated":
                continue
            if session.get("status") in ACTIVE_STATUSES or _waiting_for_action(
                self.emulator.store.events.get(session_id, [])
            ):
                threads.stop_running_children(self, session, {"type": "retries_exhausted"})
                self.emit(
                    session_id,
                    _event(
                        "session.error",
                        error={
                            "type": "unknown_error",
                            "message": "The emulator restarted while this session was running; "
                            "the turn was lost.",
                            "retry_status": {"type": "terminal"},
                        },
                    ),
                )
                set_status(session, "idle")
                self.emit(
                    session_id,
                    _event(
                        "session.status_idle", stop_reason={"type": "retries_exhausted"}, stop_details=None
                    ),
                )

    def _index_orphaned_outputs(self) -> None:
        """Index the outputs of turns that died before their idle (``output_indexing_window``)."""
        orphans: dict[str, list[str]] = {}
        for file_id, meta in self.emulator.store.files.items():
            if meta.get("_indexing_pending"):
                scope = meta.get("scope") or {}
                orphans.setdefault(str(scope.get("id")), []).append(file_id)
        for file_ids in orphans.values():
            self.index_outputs(file_ids)

    def index_outputs(self, file_ids: list[str]) -> None:
        """Make a finished turn's output files listable one by one from now on."""
        if file_ids:
            blobs.index_outputs(self.emulator, file_ids, time.time())
            self._dirty = True

    # -- runtime and emission --------------------------------------------------------------

    def runtime(self, session_id: str) -> SessionRuntime:
        """Return (creating on first use) the in-memory runtime of a session."""
        rt = self._runtimes.get(session_id)
        if rt is None:
            rt = self._runtimes[session_id] = SessionRuntime(session_id)
        return rt

    def session(self, session_id: str) -> dict[str, Any]:
        """Return the stored session dict or raise :class:`SessionGone`."""
        session = self.emulator.store.sessions.get(session_id)
        if session is None:
            raise SessionGone(session_id)
        return session

    def emit(self, session_id: str, event: dict[str, Any], *, persist: bool = True) -> dict[str, Any]:
        """Timestamp, store and broadcast one event; return it.

        Args:
            session_id: The session.
            event: The event (``type`` and ``id`` first); ``processed_at`` is set to now unless
                the event already has the key (queued user echoes carry ``None``).
            persist: False for stream-only frames (the start race's stale idle).
        """
        rt = self._runtimes.get(session_id)
        if rt is not None and rt.deferred_idle is not None:
            self.flush_deferred_idle(rt)
        self.session(session_id)
        history = self.emulator.store.events.setdefault(session_id, []) if persist else None
        recorded = self.record(session_id, history, event)
        webhooks = self.emulator.services.get("webhooks")
        if persist and webhooks is not None:  # status events cause deliveries (emulator/webhooks.py)
            webhooks.session_event(session_id, event["type"])
        return recorded

    def record(self, key: str, history: list[dict[str, Any]] | None, event: dict[str, Any]) -> dict[str, Any]:
        """Timestamp ``event``, append it to ``history`` and broadcast it to ``key``'s streams.

        Args:
            key: Whose streams get the frame (a session id, or a child thread's id).
            history: The list the event is persisted in; ``None`` for a stream-only frame.
            event: The event; ``processed_at`` is set to now unless it has the key already.
        """
        if "processed_at" not in event:
            event["processed_at"] = now_iso()
        if history is not None:
            history.append(event)
            self._dirty = True
            lag = self.emulator.config.history_lag
            if lag > 0:
                rt = self.runtime(key)
                if event["processed_at"] is None:
                    rt.queued_order[event["id"]] = rt.accepted
                    rt.accepted += 1
                _hide_for(rt, event["id"], time.monotonic() + lag)
        self.broadcast(key, encode_frame(event))
        return event

    def mark_processed(self, session_id: str, event: dict[str, Any]) -> None:
        """Stamp a queued user event as processed and show it on the stream again.

        History is kept in ``processed_at`` order, so the event moves to the end of the list
        (queued events sit near the end, so the search from the end is short).
        """
        rt = self._runtimes.get(session_id)
        if rt is not None and rt.deferred_idle is not None:
            self.flush_deferred_idle(rt)
        self.session(session_id)
        lag = self.emulator.config.history_lag
        queued = dict(event) if lag > 0 else None
        event["processed_at"] = now_iso()
        history = self.emulator.store.events.get(session_id, [])
        for index in range(len(history) - 1, -1, -1):
            if history[index] is event:
                del history[index]
                history.append(event)
                if queued is not None:
                    self._keep_listed_as_queued(self.runtime(session_id), queued, index, lag)
                break
        self._dirty = True
        self.broadcast(session_id, encode_frame(event))

    @staticmethod
    def _keep_listed_as_queued(rt: SessionRuntime, queued: dict[str, Any], index: int, lag: float) -> None:
        """``history_lag``: the event just moved from ``index`` to the end of the history."""
        now = time.monotonic()
        event_id = queued["id"]
        for copy in rt.queued_copies:
            if index < copy.position:
                copy.position -= 1
        rt.queued_copies = [c for c in rt.queued_copies if c.shown_until > now]
        rt.queued_copies.append(
            QueuedCopy(
                event=queued,
                position=index,
                order=rt.queued_order.pop(event_id, -1),
                shown_from=rt.hidden_until.get(event_id, 0.0),
                shown_until=now + lag,
            )
        )
        _hide_for(rt, event_id, now + lag)

    def listable_history(
        self, session_id: str, history: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The history ``events.list`` shows now: as it was ``config.history_lag`` seconds ago.

        Without a lag this is the stored history itself. With one, the events placed within the
        lag are left out (they are always a suffix of the history, which is in placement order),
        and each user event processed within the lag is listed as queued where it was accepted.
        O(n) in the history size.

        Args:
            session_id: The session (or the child thread whose ``history`` this is).
            history: A child thread's history; the session's own when ``None``.
        """
        if history is None:
            history = self.emulator.store.events.get(session_id, [])
        rt = self._runtimes.get(session_id)
        if self.emulator.config.history_lag <= 0 or rt is None:
            return history
        now = time.monotonic()
        order, hidden = rt.hidden_order, rt.hidden_until
        while order and order[0][0] <= now:
            until, event_id = order.popleft()
            if hidden.get(event_id) == until:
                del hidden[event_id]
        cut = max(0, len(history) - len(hidden))
        rt.queued_copies = [c for c in rt.queued_copies if c.shown_until > now]
        shown = sorted(
            (c for c in rt.queued_copies if c.shown_from <= now), key=lambda c: (c.position, c.order)
        )
        if not shown:
            return history[:cut]
        out: list[dict[str, Any]] = []
        start = 0
        for copy in shown:
            position = max(start, min(copy.position, cut))
            out.extend(history[start:position])
            out.append(copy.event)
            start = position
        out.extend(history[start:cut])
        return out

    def broadcast(self, session_id: str, frame: bytes, *, wants: str | None = None) -> None:
        """Push a ready frame to every open stream (only those that asked for ``wants``)."""
        rt = self._runtimes.get(session_id)
        if rt is None:
            return
        if rt.deferred_idle is not None:
            self.flush_deferred_idle(rt)
        for sub in rt.subscribers:
            if wants is None or wants in sub.deltas:
                sub.queue.put_nowait(frame)

    def wants_previews(self, session_id: str, kind: str) -> bool:
        """Return True when some open stream asked for ``event_deltas[]=kind``."""
        rt = self._runtimes.get(session_id)
        return rt is not None and any(kind in sub.deltas for sub in rt.subscribers)

    def subscribe(self, session_id: str, deltas: frozenset[str]) -> Subscriber:
        """Open a stream: it receives every frame broadcast from now on."""
        sub = Subscriber(asyncio.Queue(), deltas)
        self.runtime(session_id).subscribers.add(sub)
        return sub

    def unsubscribe(self, session_id: str, sub: Subscriber) -> None:
        """Forget a closed stream."""
        rt = self._runtimes.get(session_id)
        if rt is not None:
            rt.subscribers.discard(sub)

    def close_streams(self, session_id: str) -> None:
        """End every open stream of a session cleanly."""
        rt = self._runtimes.get(session_id)
        if rt is not None:
            self._close_streams(rt)

    @staticmethod
    def _close_streams(rt: SessionRuntime) -> None:
        for sub in rt.subscribers:
            sub.queue.put_nowait(None)
        rt.subscribers.clear()

    # -- idle races ------------------------------------------------------------------------

    def emit_idle(self, session_id: str, event: dict[str, Any], after: Callable[[], None]) -> None:
        """Emit a ``session.status_idle`` (the status is already idle), then run ``after``.

        ``config.status_leads_idle`` defers the emission (and ``after``) by that many seconds, or
        until another event of the session comes first. ``config.post_idle_running`` makes
        ``retrieve`` report ``running`` for that long once it is emitted. With both set, each
        idle draws one of the two races (50/50, seeded from ``faults.seed``).
        """
        rt = self.runtime(session_id)
        self.flush_deferred_idle(rt)
        cfg = self.emulator.config
        leads, trails = cfg.status_leads_idle > 0, cfg.post_idle_running > 0
        if leads and trails:
            leads = get_injector(self.emulator).coin("idle_race")
            trails = not leads
        finish = after
        if trails:

            def finish() -> None:
                rt.report_running_until = time.monotonic() + cfg.post_idle_running
                after()

        if leads:
            timer = asyncio.get_running_loop().call_later(cfg.status_leads_idle, self.flush_deferred_idle, rt)
            rt.deferred_idle = DeferredIdle(event, finish, timer)
            return
        self.emit(session_id, event)
        finish()

    def flush_deferred_idle(self, rt: SessionRuntime) -> None:
        """Emit the session's deferred ``session.status_idle`` now, if one is waiting."""
        deferred = rt.deferred_idle
        if deferred is None:
            return
        rt.deferred_idle = None
        deferred.timer.cancel()
        with contextlib.suppress(SessionGone):
            self.emit(rt.session_id, deferred.event)
            deferred.after()

    def unsettled_for(self) -> float:
        """Seconds until every lag and race now in play is over (0 when all is consistent).

        Covers hidden history placements, deferred idles, post-idle ``running`` reports and
        outputs whose indexing time lies ahead (outputs of turns still running are not counted).
        Tests wait on it (``POST /_emulator/settle``) before comparing with the server's truth.
        """
        now_mono, now_wall = time.monotonic(), time.time()
        waits = [0.0]
        for rt in self._runtimes.values():
            waits.extend(until - now_mono for until in rt.hidden_until.values())
            waits.extend(copy.shown_until - now_mono for copy in rt.queued_copies)
            waits.append(rt.report_running_until - now_mono)
            if rt.deferred_idle is not None:
                waits.append(self.emulator.config.status_leads_idle)
        for meta in self.emulator.store.files.values():
            after = meta.get("_listable_after")
            if after is not None and not meta.get("_indexing_pending"):
                waits.append(float(after) - now_wall)
        return max(waits)

    # -- status ----------------------------------------------------------------------------

    def public_status(self, session: dict[str, Any]) -> str:
        """The status ``retrieve`` reports: idle during a scripted start race, running during a
        post-idle race (``config.post_idle_running``), else the stored status."""
        rt = self._runtimes.get(session["id"])
        if rt is not None:
            now = time.monotonic()
            if rt.report_idle_until > now:
                return "idle"
            if rt.report_running_until > now and session["status"] == "idle":
                return "running"
        return str(session["status"])

    def is_active(self, session: dict[str, Any]) -> bool:
        """True while the session is running or rescheduling."""
        return session["status"] in ACTIVE_STATUSES

    def reports_running(self, session: dict[str, Any]) -> bool:
        """True while the session is active or in a post-idle race (archive/delete are refused)."""
        if self.is_active(session):
            return True
        rt = self._runtimes.get(session["id"])
        return rt is not None and rt.report_running_until > time.monotonic() and session["status"] == "idle"

    # -- input -----------------------------------------------------------------------------

    def accept(self, session: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue validated user events and return their echoes (``processed_at: null``).

        Raises:
            ApiError: 400 when an answer names no pending tool call of the right kind.
        """
        session_id = session["id"]
        rt = self.runtime(session_id)
        open_ids = dict(rt.pending)
        for params in events:
            target_key = ANSWER_TARGETS.get(params["type"])
            if target_key is None:
                continue
            target = params[target_key]
            if open_ids.get(target) != params["type"]:
                raise ApiError(
                    400,
                    f"{params['type']}: {target_key} {target!r} does not name a tool call that is "
                    "waiting for this kind of answer.",
                )
            del open_ids[target]
        echoes = []
        for params in events:
            echo: dict[str, Any] = {"type": params["type"], "id": new_id("sevt")}
            if params["type"] == "user.define_outcome":
                echo["outcome_id"] = new_id("outc")
                session["outcome_evaluations"].append(
                    {
                        "type": "outcome_evaluation",
                        "outcome_id": echo["outcome_id"],
                        "description": params["description"],
                        "iteration": 0,
                        "result": "pending",
                        "explanation": None,
                        "completed_at": None,
                    }
                )
            echo.update({k: v for k, v in params.items() if k != "type"})
            # The SDK types processed_at of user.define_outcome as required: it is stamped on
            # acceptance (every other user echo is queued with null first).
            echo["processed_at"] = now_iso() if params["type"] == "user.define_outcome" else None
            self.emit(session_id, echo)
            echoes.append(echo)
            kind = params["type"]
            if kind in ("user.message", "user.define_outcome"):
                rt.inbox.append(echo)
            elif kind == "user.interrupt":
                if rt.busy:
                    rt.interrupts.append(echo)
                    rt.wake.set()
                else:
                    self.mark_processed(session_id, echo)
            else:
                del rt.pending[params[ANSWER_TARGETS[kind]]]
                rt.answers.append(echo)
                rt.wake.set()
        if rt.inbox and not rt.busy:
            rt.worker = asyncio.create_task(self._work(rt), name=f"turns-{session_id}")
        return echoes

    async def _work(self, rt: SessionRuntime) -> None:
        try:
            while rt.inbox:
                ctx = TurnContext(self, rt, rt.inbox.popleft())
                try:
                    await self.run_turn(ctx)
                except TurnInterrupted:
                    ctx.finish_interrupted()
                except SessionGone:
                    return
                except Exception as exc:  # a script bug must not wedge the session
                    logger.exception("scripted turn failed in %s", rt.session_id)
                    ctx.finish_failed(exc)
                finally:
                    ctx.close()
                if self.emulator.store.sessions.get(rt.session_id, {}).get("status") == "terminated":
                    rt.inbox.clear()
        except SessionGone:
            return
        finally:
            rt.worker = None

    def forget(self, session_id: str) -> None:
        """Stop a deleted session's turn and end its streams after a ``session.deleted`` frame."""
        rt = self._runtimes.get(session_id)
        if rt is None:
            return
        self.flush_deferred_idle(rt)
        del self._runtimes[session_id]
        if rt.worker is not None:
            rt.worker.cancel()
        frame = encode_frame(_event("session.deleted", processed_at=now_iso()))
        for sub in rt.subscribers:
            sub.queue.put_nowait(frame)
        self._close_streams(rt)


def _hide_for(rt: SessionRuntime, event_id: str, until: float) -> None:
    rt.hidden_until[event_id] = until
    rt.hidden_order.append((until, event_id))


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "id": new_id("sevt"), **fields}


def _waiting_for_action(events: list[dict[str, Any]]) -> bool:
    for event in reversed(events):
        if event["type"] == "session.status_idle":
            return bool(event["stop_reason"]["type"] == "requires_action")
        if event["type"] in ("session.status_running", "session.status_terminated"):
            return False
    return False


def set_status(session: dict[str, Any], status: str) -> None:
    """Change a session's status and ``updated_at``."""
    session["status"] = status
    session["updated_at"] = now_iso()


class TurnContext:
    """What a scripted turn may do: emit events, wait for answers, account usage.

    Every helper that emits runs at an event boundary; :meth:`pause` is where a turn sleeps
    (``config.event_delay`` by default) and where a ``user.interrupt`` takes effect.

    Args:
        engine: The engine.
        rt: The session's runtime.
        trigger: The queued user event that started this turn (its echo dict).
    """

    def __init__(self, engine: SessionEngine, rt: SessionRuntime, trigger: dict[str, Any]) -> None:
        self.engine = engine
        self.rt = rt
        self.trigger = trigger
        self.session_id = rt.session_id
        self.delay = engine.emulator.config.event_delay
        self.open_request: str | None = None
        self.active_outcome: dict[str, Any] | None = None
        self.outputs: list[str] = []
        """Output files written this turn that wait for the idle to be indexed."""
        self._emitted = 0

    @property
    def emulator(self) -> Emulator:
        """The emulator context."""
        return self.engine.emulator

    @property
    def session(self) -> dict[str, Any]:
        """The stored session dict (raises :class:`SessionGone` once deleted)."""
        return self.engine.session(self.session_id)

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Emit one persisted event of ``type_`` with ``fields``."""
        self._emitted += 1
        return self.engine.emit(self.session_id, _event(type_, **fields))

    def check_interrupt(self) -> None:
        """Raise :class:`TurnInterrupted` when a ``user.interrupt`` is waiting."""
        if self.rt.interrupts:
            raise TurnInterrupted

    async def pause(self, delay: float | None = None) -> None:
        """Sleep between events (or just yield now and then) and honour interrupts."""
        seconds = self.delay if delay is None else delay
        if seconds > 0:
            self.rt.wake.clear()
            if not self.rt.interrupts:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.rt.wake.wait(), seconds)
        elif self._emitted % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        self.check_interrupt()

    # -- status ----------------------------------------------------------------------------

    def running(self) -> None:
        """Enter ``running`` and emit ``session.status_running``."""
        set_status(self.session, "running")
        self.rt.running_since = time.monotonic()
        self.rt.report_running_until = 0.0
        self.emit("session.status_running")

    def rescheduled(self) -> None:
        """Enter ``rescheduling`` and emit ``session.status_rescheduled``."""
        set_status(self.session, "rescheduling")
        self.emit("session.status_rescheduled")

    def _stop_clock(self) -> None:
        if self.rt.running_since is None:
            return
        elapsed = time.monotonic() - self.rt.running_since
        self.rt.running_since = None
        session = self.session
        session["stats"]["active_seconds"] = round(session["stats"].get("active_seconds", 0) + elapsed, 3)
        session["usage"]["active_seconds"] = round(session["usage"].get("active_seconds", 0) + elapsed, 3)

    def idle(self, stop_reason: dict[str, Any], stop_details: dict[str, Any] | None = None) -> None:
        """Enter ``idle`` and emit ``session.status_idle`` with ``stop_reason``.

        When the event is actually emitted (see :meth:`SessionEngine.emit_idle`), an idle that
        ends the turn indexes the turn's outputs and, with ``close_stream_on_idle``, ends streams.
        """
        self._stop_clock()
        set_status(self.session, "idle")
        ends_turn = stop_reason["type"] != "requires_action"
        outputs, self.outputs = (self.outputs, []) if ends_turn else ([], self.outputs)
        engine, session_id = self.engine, self.session_id
        close = ends_turn and self.emulator.config.close_stream_on_idle

        def after() -> None:
            engine.index_outputs(outputs)
            if close:
                engine.close_streams(session_id)

        self._emitted += 1
        engine.emit_idle(
            session_id,
            _event("session.status_idle", stop_reason=stop_reason, stop_details=stop_details),
            after,
        )

    def terminate(self) -> None:
        """Enter ``terminated`` (irreversible) and emit ``session.status_terminated``."""
        self._stop_clock()
        session = self.session
        threads.terminate_children(self.engine, session)
        set_status(session, "terminated")
        session["_ended_at"] = session["updated_at"]
        self.emit("session.status_terminated")
        outputs, self.outputs = self.outputs, []
        self.engine.index_outputs(outputs)
        if self.emulator.config.close_stream_on_idle:
            self.engine.close_streams(self.session_id)

    def report_idle_for(self, seconds: float) -> None:
        """Make ``retrieve`` keep reporting ``idle`` for ``seconds`` (the start race)."""
        self.rt.report_idle_until = time.monotonic() + seconds

    def stale_idle(self) -> None:
        """Send a stream-only ``session.status_idle`` (end_turn) that history never records."""
        self.engine.emit(
            self.session_id,
            _event("session.status_idle", stop_reason={"type": "end_turn"}, stop_details=None),
            persist=False,
        )

    # -- model requests, messages and usage ------------------------------------------------

    def model_request_start(self) -> None:
        """Emit ``span.model_request_start``."""
        self.open_request = self.emit("span.model_request_start")["id"]

    def model_request_end(
        self, input_tokens: int, output_tokens: int, cost_cents: int, *, is_error: bool = False
    ) -> None:
        """Emit ``span.model_request_end`` and add its usage and cost to the session."""
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        self.emit(
            "span.model_request_end",
            model_request_start_id=self.open_request,
            is_error=is_error,
            model_usage=usage,
        )
        self.open_request = None
        add_request(self.session["usage"], input_tokens, output_tokens, cost_cents)

    def emit_usage(self) -> None:
        """Emit ``session.usage`` with the cumulative usage (and budget)."""
        session = self.session
        usage = dict(session["usage"])
        if self.rt.running_since is not None:
            usage["active_seconds"] = round(
                usage.get("active_seconds", 0) + time.monotonic() - self.rt.running_since, 3
            )
        self.emit("session.usage", usage=usage, budget=session.get("budget"))

    def budget_spent(self) -> bool:
        """True when the session's budget is set and its list cost reached it."""
        session = self.session
        budget = session.get("budget")
        if not budget:
            return False
        spent = int((session["usage"].get("list_cost") or {"amount": "0"})["amount"])
        return spent >= int(budget["max_list_cost"]["amount"])

    async def think(self) -> None:
        """Emit ``agent.thinking`` (preceded by an ``event_start`` preview when asked for)."""
        event_id = new_id("sevt")
        if self.engine.wants_previews(self.session_id, "agent.thinking"):
            preview = {"type": "event_start", "event": {"type": "agent.thinking", "id": event_id}}
            self.engine.broadcast(self.session_id, encode_frame(preview), wants="agent.thinking")
        self._emitted += 1
        self.engine.emit(self.session_id, {"type": "agent.thinking", "id": event_id})

    async def say(self, text: str) -> None:
        """Emit ``agent.message`` with ``text``, previewed by ``event_start``/``event_delta``."""
        event_id = new_id("sevt")
        if self.engine.wants_previews(self.session_id, "agent.message"):
            start = {"type": "event_start", "event": {"type": "agent.message", "id": event_id}}
            self.engine.broadcast(self.session_id, encode_frame(start), wants="agent.message")
            for piece in _split_text(text):
                delta = {
                    "type": "event_delta",
                    "event_id": event_id,
                    "delta": {
                        "type": "content_delta",
                        "index": 0,
                        "content": {"type": "text", "text": piece},
                    },
                }
                self.engine.broadcast(self.session_id, encode_frame(delta), wants="agent.message")
                await self.pause()
        self._emitted += 1
        self.engine.emit(
            self.session_id,
            {"type": "agent.message", "id": event_id, "content": [{"type": "text", "text": text}]},
        )

    # -- waiting for the client ------------------------------------------------------------

    def expect(self, event_id: str, answer_type: str) -> None:
        """Register an agent event that needs an answer of ``answer_type`` before continuing."""
        self.rt.pending[event_id] = answer_type

    async def wait_for_answers(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Go idle on ``requires_action`` until every id is answered, then run again.

        A partial answer re-emits ``session.status_idle`` listing the remaining ids.

        Returns:
            The answer echoes by the agent event id they answer.
        """
        remaining = list(event_ids)
        answers: dict[str, dict[str, Any]] = {}
        self.idle({"type": "requires_action", "event_ids": list(remaining)})
        while remaining:
            while not self.rt.answers and not self.rt.interrupts:
                self.rt.wake.clear()
                await self.rt.wake.wait()
            self.check_interrupt()
            while self.rt.answers:
                answer = self.rt.answers.popleft()
                target = answer[ANSWER_TARGETS[answer["type"]]]
                self.engine.mark_processed(self.session_id, answer)
                remaining.remove(target)
                answers[target] = answer
            if remaining:
                self.idle({"type": "requires_action", "event_ids": list(remaining)})
        self.running()
        return answers

    # -- endings ---------------------------------------------------------------------------

    def finish_interrupted(self) -> None:
        """Close an interrupted turn: close the open span/outcome, then go idle."""
        for echo in self.rt.interrupts:
            self.engine.mark_processed(self.session_id, echo)
        self.rt.interrupts.clear()
        if self.open_request is not None:
            self.model_request_end(0, 0, 0)
        if self.active_outcome is not None:
            self.end_outcome("interrupted", "The outcome was interrupted by the user.")
        self.idle({"type": self.emulator.config.interrupt_stop_reason})

    def finish_failed(self, exc: Exception) -> None:
        """End a turn whose script raised: ``session.error`` then idle ``retries_exhausted``."""
        with contextlib.suppress(SessionGone):
            self.emit(
                "session.error",
                error={
                    "type": "unknown_error",
                    "message": f"The scripted agent failed: {type(exc).__name__}: {exc}",
                    "retry_status": {"type": "terminal"},
                },
            )
            self.idle({"type": "retries_exhausted"})

    def close(self) -> None:
        """Release the turn: answers and interrupts that arrived too late are marked processed."""
        self.rt.pending.clear()
        self.rt.report_idle_until = 0.0
        if self.outputs and self.session_id in self.emulator.store.sessions:
            outputs, self.outputs = self.outputs, []
            self.engine.index_outputs(outputs)
        with contextlib.suppress(SessionGone):
            for echo in [*self.rt.answers, *self.rt.interrupts]:
                self.engine.mark_processed(self.session_id, echo)
        self.rt.answers.clear()
        self.rt.interrupts.clear()

    # -- outcomes --------------------------------------------------------------------------

    def outcome_running(self, outcome_id: str, description: str) -> None:
        """Mark an outcome ``running`` (the agent is producing or revising)."""
        self._outcome_record(outcome_id, description)["result"] = "running"

    def start_outcome(self, outcome_id: str, description: str, iteration: int) -> dict[str, Any]:
        """Emit ``span.outcome_evaluation_start`` and mark the outcome ``evaluating``."""
        record = self._outcome_record(outcome_id, description)
        record.update(iteration=iteration, result="evaluating")
        start = self.emit("span.outcome_evaluation_start", outcome_id=outcome_id, iteration=iteration)
        self.active_outcome = {"outcome_id": outcome_id, "iteration": iteration, "start_id": start["id"]}
        return start

    def outcome_ongoing(self) -> None:
        """Emit the ``span.outcome_evaluation_ongoing`` heartbeat."""
        assert self.active_outcome is not None
        self.emit(
            "span.outcome_evaluation_ongoing",
            outcome_id=self.active_outcome["outcome_id"],
            iteration=self.active_outcome["iteration"],
        )

    def end_outcome(self, result: str, explanation: str) -> None:
        """Emit ``span.outcome_evaluation_end`` and record the result on the session."""
        assert self.active_outcome is not None
        outcome = self.active_outcome
        self.active_outcome = None
        self.emit(
            "span.outcome_evaluation_end",
            outcome_evaluation_start_id=outcome["start_id"],
            outcome_id=outcome["outcome_id"],
            iteration=outcome["iteration"],
            result=result,
            explanation=explanation,
            usage={
                "input_tokens": 200,
                "output_tokens": 40,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        )
        record = self._outcome_record(outcome["outcome_id"], "")
        record.update(result=result, explanation=explanation)
        if result != "needs_revision":
            record["completed_at"] = now_iso()

    def _outcome_record(self, outcome_id: str, description: str) -> dict[str, Any]:
        evaluations: list[dict[str, Any]] = self.session["outcome_evaluations"]
        for record in evaluations:
            if record["outcome_id"] == outcome_id:
                return record
        record = {
            "type": "outcome_evaluation",
            "outcome_id": outcome_id,
            "description": description,
            "iteration": 0,
            "result": "pending",
            "explanation": None,
            "completed_at": None,
        }
        evaluations.append(record)
        return record


def _split_text(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def get_engine(emulator: Emulator) -> SessionEngine:
    """Return the app's session engine (registered by :func:`emulator.app.create_app`)."""
    engine = emulator.services["sessions"]
    assert isinstance(engine, SessionEngine)
    return engine
