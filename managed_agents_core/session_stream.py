"""The consolidating session event loop: no gap, no duplicate, an end of turn that cannot hang.

Follows the SDK's own ``lib/tools/_beta_session_runner.py``: open the SSE stream *first*, then
send the kickoff, then read the history with ``events.list`` and tail the stream, de-duplicating
by event id. Any dropped stream, connection error, clean end of stream or silent stream (no byte
for ``stream_read_timeout``) reconnects with backoff (0.5 s doubling to 10 s) and backfills
again; 401/403 is fatal. The SDK never reconnects itself.

The real service lags and races (its history trails the stream, its status trails or leads the
events), so the end of a turn is decided like this:

* **Armed stream**: once a connection has delivered the processed echo of our kickoff (or was
  opened after our kickoff was known to be processed), a ``session.status_idle`` it delivers
  ends the turn at once, as in the SDK runner; ``requires_action`` idles are answered at once. A
  stale idle from before our kickoff (the start race) comes before that echo on the stream, so
  it never ends the turn.
* **Otherwise** (we re-attached, the kickoff was sent before the stream opened, or the stream
  still delivers what came before the echo): a stream idle is a *suspect*. A watchdog beside
  the reader checks the history (the service's own order: an idle counts only after the
  processed echo of our kickoff) and the session's status (``sessions.retrieve``) every
  0.25 s, backing off to ``settle_backoff_cap``, until they settle: the history shows the end,
  or the stream shows the session taking up our kickoff. It never gives up after a fixed
  number of reads; history lag delays the end by at most the lag plus that cap.
* **Quiet**: when no event arrives for ``status_poll_interval`` seconds the watchdog checks the
  status too, so an idle or terminated session is noticed even if no event ever arrives; every
  ``waiting_log_interval`` it says what it is waiting for. If the status says idle for
  ``idle_settle_timeout`` and the history never shows how the turn ended, the run fails typed.
* **Gaps**: after a reconnect (or a stream opened after the kickoff was sent) events emitted in
  the gap may not be in the lagging history yet, so before the turn is reported ended the history
  is read until it holds the ending event: nothing is lost, whatever the lag.

``session.status_terminated`` / ``session.deleted`` end the loop always, even when already seen.
No Prefect here: callers pass an observer for logs, progress and Prefect events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anthropic
import httpx2
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSessionRequiresAction,
)
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSessionStatusIdleEvent as IdleEvent,
)

from .events import KICKOFF_TYPES, EventParam, MalformedEventError, SessionEvent, stream_event
from .exceptions import ManagedAgentsError
from .outcome import SessionEnd
from .retry_policy import LOOP_ATTEMPTS, is_transient_error, retries_exhausted, retrying
from .send_once import send_once
from .settings import RuntimeSettings
from .tool_calls import PendingToolCall, ToolAnswer, ToolUseEvent
from .transcript import Transcript
from .turn import ConfirmationPolicy, TurnRequest

logger = logging.getLogger(__name__)

RECONNECT_BACKOFF_START = 0.5
RECONNECT_BACKOFF_CAP = 10.0
HISTORY_PAGE_SIZE = 1000
MAX_FAILED_CONNECTIONS = 5
"""Connections in a row that may fail (error, error frame) without an event before giving up
(about 8 s of backoff); any delivered event resets the count."""
SETTLE_BACKOFF_START = 0.25
"""First pause between checks while stream, history and status disagree (doubling to the cap)."""
INTERRUPT_GRACE_SECONDS = 15.0
"""How long to wait for the session to go idle after our own ``user.interrupt``."""

_USER_EVENT_TYPES = frozenset(
    {
        "user.message",
        "user.define_outcome",
        "user.interrupt",
        "user.tool_confirmation",
        "user.custom_tool_result",
        "user.tool_result",
    }
)
"""Queued events: listed before they are processed, and may move when they are."""
_ACTIVE_STATUSES = frozenset({"running", "rescheduling"})


def is_fatal_stream_error(exc: BaseException) -> bool:
    """True for a 4xx that reconnecting cannot fix (bad key, missing session)."""
    return (
        isinstance(exc, anthropic.APIStatusError)
        and 400 <= exc.status_code < 500
        and not is_transient_error(exc)
    )


class StreamObserver(Protocol):
    """What the engine reports while it runs (logs, progress, Prefect events)."""

    def on_event(self, event: SessionEvent) -> None:
        """Called once per distinct event, in order. Must be cheap: no network, no heavy logging."""

    async def on_status(self, status: str, event: SessionEvent | None) -> None:
        """Called on each session status change: running, idle, requires-action, rescheduled, terminated."""

    async def on_reconnect(self, attempt: int, error: BaseException | None) -> None:
        """Called before each reconnect (``error`` is None after a clean end of stream)."""

    def on_waiting(self, detail: str) -> None:
        """Called every ``waiting_log_interval`` while the turn goes on: what the run waits for."""


class NullObserver:
    """An observer that ignores everything."""

    def on_event(self, event: SessionEvent) -> None:
        """Ignore the event."""

    async def on_status(self, status: str, event: SessionEvent | None) -> None:
        """Ignore the status change."""

    async def on_reconnect(self, attempt: int, error: BaseException | None) -> None:
        """Ignore the reconnect."""

    def on_waiting(self, detail: str) -> None:
        """Ignore the note."""


@dataclass
class StreamStats:
    """Counters of one engine run (for logs and tests)."""

    connections: int = 0
    reconnects: int = 0
    history_reads: int = 0
    history_events_read: int = 0
    status_checks: int = 0
    duplicates_skipped: int = 0
    confirmations_sent: int = 0
    custom_results_sent: int = 0


@dataclass
class _Tracked:
    """Per-run consolidation state."""

    seen_keys: set[str] = field(default_factory=set)
    kickoff_ids: set[str] = field(default_factory=set)
    tool_calls: dict[str, PendingToolCall] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    requires_action_seen: set[str] = field(default_factory=set)
    last_status: str | None = None
    saw_user_kickoff: bool = False
    armed: bool = False
    """Our kickoff is known to be processed (history or stream order): later idles end the turn."""
    turn_started_at: Any = None
    """``processed_at`` of our kickoff (the service's clock), once known."""


class SessionStream:
    """Drive one session to the end of its turn, consolidating stream, history and status.

    Example:
        ```python
        async with anthropic.AsyncAnthropic() as client:
            turn = TurnRequest(kickoff=({"type": "user.message", ...},))
            engine = SessionStream(client, session.id, turn)
            end = await engine.run()
            outcome = classify(end, engine.transcript.errors, session_id=session.id, console_url=url)
        ```

    Args:
        client: The async SDK client.
        session_id: The session to drive.
        turn: How the turn starts, how its tool calls are answered and how long it may take.
        answers: Verdicts a person gave, by tool-use event id; they win over the policy.
        transcript: Where distinct events are accumulated (a new one when None).
        observer: Receives events and status changes.
        settings: How long to wait for the lagging service (``MANAGED_AGENTS_*`` environment
            variables when None).
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        session_id: str,
        turn: TurnRequest | None = None,
        *,
        answers: Mapping[str, ToolAnswer] | None = None,
        transcript: Transcript | None = None,
        observer: StreamObserver | None = None,
        settings: RuntimeSettings | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        turn = turn or TurnRequest()
        self.turn = turn
        self.kickoff = list(turn.kickoff)
        self.resume = turn.resume
        self.policy = turn.policy or ConfirmationPolicy()
        self.answers = dict(answers or {})
        self.custom_tools = turn.custom_tools
        self.max_duration = turn.max_duration
        self.transcript = transcript if transcript is not None else Transcript()
        self.observer: StreamObserver = observer or NullObserver()
        self.settings = settings or RuntimeSettings()
        self.stats = StreamStats()
        self._state = _Tracked()
        self._kickoff_sent = False
        self._end: SessionEnd | None = None
        self._end_in_history = False
        self._history_ids: set[str] = set()
        """Ids of every event a history read returned (an earlier read may have passed the one
        a later wait looks for: reads start after the watermark)."""
        self._watermark: str | None = None
        """Newest stable event of the last history read: everything up to it has been handled."""
        self._armed_in_history = False
        """Our processed kickoff lies at or before the watermark."""
        self._gap = turn.resume
        """Events may have been emitted while no stream of ours was open (a reconnect, a re-attach)."""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._suspect: IdleEvent | None = None
        """A stream idle that came before we knew our kickoff was processed (history to judge)."""
        self._suspect_since: float | None = None
        self._idle_status_since: float | None = None
        self._settle_delay = SETTLE_BACKOFF_START
        now = time.monotonic()
        self._last_event_at = now
        self._last_check_at = now
        self._last_note_at = now
        self._service_status = "unknown"
        self._delivered = False
        """The current connection delivered at least one event."""
        self._stream_armed = False
        """The current connection delivers only events processed after our kickoff."""
        if turn.turn_event_ids:
            self._state.kickoff_ids.update(turn.turn_event_ids)
            self._kickoff_sent = True
            self._gap = True  # sent before our stream opened: its processed echo may be missed
        self._send_turn = turn.send_turn
        if turn.send_turn is not None:
            # It may return what an earlier attempt sent: a gap until the stream shows the turn start.
            self._gap = True

    @property
    def turn_started_at(self) -> Any:
        """When the service processed our kickoff (``processed_at``, a datetime), once known."""
        return self._state.turn_started_at

    # --- public ------------------------------------------------------------------------------

    async def run(self) -> SessionEnd:
        """Stream until the turn ends; return how it ended (classify it with ``managed_agents_core.outcome``).

        On our own ``max_duration`` the session is interrupted and a ``timeout`` end returned.
        If the caller cancels this coroutine, a best-effort ``user.interrupt`` is sent first.

        Raises:
            anthropic.APIStatusError: A non-transient API error (401, 403, 404...).
            SessionStreamError: The stream kept failing, or the service never said how the turn ended.
        """
        try:
            if self.max_duration is None:
                return await self._loop()
            try:
                async with asyncio.timeout(self.max_duration):
                    return await self._loop()
            except TimeoutError:
                logger.warning("session %s ran past max_duration; interrupting", self.session_id)
                await _best_effort_interrupt(self.client, self.session_id)
                try:
                    await wait_until_not_running(self.client, self.session_id, within=INTERRUPT_GRACE_SECONDS)
                except (anthropic.APIError, httpx2.HTTPError) as exc:
                    logger.warning("session %s: status after interrupt unknown (%s)", self.session_id, exc)
                return SessionEnd(kind="timeout", detail=f"max_duration={self.max_duration:g}s")
        except asyncio.CancelledError:
            # The flow run is being cancelled: stop the remote work too (hooks also archive it).
            await asyncio.shield(_best_effort_interrupt(self.client, self.session_id))
            raise

    # --- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> SessionEnd:
        backoff = RECONNECT_BACKOFF_START
        failures = 0  # connections in a row that ended in an error before delivering any event
        while True:
            error: BaseException | None = None
            self._delivered = False
            try:
                stream = await self.client.beta.sessions.events.stream(
                    self.session_id, timeout=httpx2.Timeout(self.settings.stream_read_timeout, connect=30.0)
                )
                self.stats.connections += 1
                # Known processed before this connection opened: all it delivers comes after.
                self._stream_armed = self._state.armed
                async with stream:
                    async with self._lock:
                        if self._send_turn is not None and not self._kickoff_sent:
                            self._state.kickoff_ids.update(await self._send_turn())
                            self._kickoff_sent = True
                        if not self.resume and not self._kickoff_sent:
                            await self._send_kickoff()
                        await self._reconcile()
                        if self.resume and not self._kickoff_sent:
                            await self._send_kickoff_unless_sent()
                    if self._end is None:
                        await self._follow(stream)
                if self._end is not None:
                    await self._confirm_end_in_history()
                    return self._end
            except (anthropic.APIError, httpx2.HTTPError) as exc:
                # A send that the policy's loop gave up on (the kickoff, a confirmation) is not a
                # stream hiccup: reconnecting would not send it again, and the turn would then
                # wait out idle_settle_timeout for a prompt that never went.
                if is_fatal_stream_error(exc) or retries_exhausted(exc):
                    raise
                error = exc
                failures = 1 if self._delivered else failures + 1
                if failures >= MAX_FAILED_CONNECTIONS:
                    raise SessionStreamError(
                        f"Session {self.session_id}: the event stream failed {failures} times in a row "
                        f"without delivering an event (last: {type(exc).__name__}: {exc}). The session "
                        "keeps its state; rerun to re-attach."
                    ) from exc
            delivered = self._delivered
            if delivered:
                failures = 0
            self._gap = True
            self.stats.reconnects += 1
            # A connection that delivered events was healthy: reconnect at once. Back off
            # (0.5 s doubling to 10 s) only while connections keep failing without progress.
            delay = 0.0 if delivered else backoff
            backoff = RECONNECT_BACKOFF_START if delivered else min(backoff * 2, RECONNECT_BACKOFF_CAP)
            logger.debug(
                "session %s stream ended (%s); reconnecting in %.1fs",
                self.session_id,
                type(error).__name__ if error else "clean end of stream",
                delay,
            )
            await self.observer.on_reconnect(self.stats.reconnects, error)
            await asyncio.sleep(delay)

    async def _follow(self, stream: Any) -> None:
        """Tail one connection while the watchdog checks history and status."""

        async def read() -> None:
            try:
                async for event in stream:
                    self._delivered = True
                    self._last_event_at = time.monotonic()
                    async with self._lock:
                        await self._on_stream_event(event)
                    if self._end is not None:
                        return
            except ValueError as exc:  # json.JSONDecodeError: a data line that is not JSON
                raise SessionStreamError(
                    f"Session {self.session_id}: the API sent an event that is not valid JSON ({exc})."
                ) from exc

        reader = asyncio.create_task(read(), name=f"stream-{self.session_id}")
        watchdog = asyncio.create_task(self._watch(), name=f"watch-{self.session_id}")
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    # --- the watchdog ------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Check history and status when the stream suspects the end or has gone quiet."""
        while True:
            self._note_waiting()
            delay = self._watch_delay()
            if delay > 0:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands
                # as the wake-up does (the reader sets it, then ends and cancels this task).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            async with self._lock:
                if self._end is None:
                    await self._check()
                if self._end is not None:
                    return

    def _watch_delay(self) -> float:
        now = time.monotonic()
        if self._suspect_since is not None:
            return self._last_check_at + self._settle_delay - now
        quiet_since = max(self._last_event_at, self._last_check_at)
        return quiet_since + self.settings.status_poll_interval - now

    def _note_waiting(self) -> None:
        """Say, every ``waiting_log_interval``, that the run still waits and on what."""
        now = time.monotonic()
        if now - self._last_note_at < self.settings.waiting_log_interval:
            return
        self._last_note_at = now
        if self._suspect_since is not None:
            what = "the history to show how the turn ended"
        elif self._state.armed:
            what = "the end of the turn"
        else:
            what = "the session to take up our message"
        detail = (
            f"session {self.session_id} is still {self._service_status}; waiting for {what} "
            f"({self.transcript.event_count} events so far, the last {now - self._last_event_at:.0f} s ago)"
        )
        logger.info(detail)
        self.observer.on_waiting(detail)

    def _clear_suspect(self) -> None:
        self._suspect = None
        self._suspect_since = None
        self._settle_delay = SETTLE_BACKOFF_START

    async def _check(self) -> None:
        """One look at history and status; ends the turn when they show it ended."""
        self._last_check_at = time.monotonic()
        self.stats.status_checks += 1
        if self._suspect_since is not None:
            await self._reconcile()
            if self._end is not None:
                return
        status = await self._retrieve_status()
        if status is None or self._end is not None:
            return
        now = time.monotonic()
        if status == "terminated":
            await self._reconcile()  # best effort: the terminal event into the transcript
            if self._end is None:
                self._end = SessionEnd(kind="terminated", detail="sessions.retrieve says terminated")
                await self._status("terminated", None)
            return
        if status in _ACTIVE_STATUSES:
            self._idle_status_since = None
            if self._suspect is None:
                self._clear_suspect()  # the session runs on: back to quiet checks
            else:
                self._settle_delay = min(self._settle_delay * 2, self.settings.settle_backoff_cap)
            return
        # Idle by its status: the turn may be over; the history says how (it may lag, so look again).
        if self._idle_status_since is None:
            self._idle_status_since = now
        if self._suspect_since is None:
            self._suspect_since = now
            await self._reconcile()
            if self._end is not None:
                return
        if now - self._idle_status_since > self.settings.idle_settle_timeout:
            raise SessionStreamError(
                f"Session {self.session_id} has been idle for {self.settings.idle_settle_timeout:g} s by its "
                "status, but its event history never showed how the turn ended; inspect it in the console."
            )
        self._settle_delay = min(self._settle_delay * 2, self.settings.settle_backoff_cap)

    async def _retrieve_status(self) -> str | None:
        """The session's status, or None when it could not be read this time."""
        try:
            session = await self.client.beta.sessions.retrieve(self.session_id)
        except anthropic.NotFoundError:
            self._end = SessionEnd(kind="deleted", detail="sessions.retrieve answered 404")
            await self._status("terminated", None)
            return None
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            if is_fatal_stream_error(exc):
                raise
            logger.debug("session %s: status check failed (%s); trying again later", self.session_id, exc)
            return None
        self._service_status = str(session.status)
        return self._service_status

    # --- history -----------------------------------------------------------------------------

    async def _reconcile(self, *, handle_pending: bool = True) -> None:
        """Read the history the engine has not handled yet and decide the gate from it.

        History order is the service's order, so it alone decides whether an idle comes after
        our kickoff was processed. The first read covers the whole history; later reads only the
        events after the newest one a previous read handled (the watermark), read newest first
        until it, so a read costs the gap, not the session's length. The history may lag the
        stream: what a read returns is complete up to its newest event, nothing more is assumed.
        Also answers still-pending ``requires_action`` calls.

        Args:
            handle_pending: Answer pending ``requires_action`` calls found in the read.
        """
        self.stats.history_reads += 1
        events, whole = await self._unhandled_history()
        armed_at: int | None = None
        if not whole and self._armed_in_history:
            armed_at = -1  # every event read comes after our processed kickoff
        elif self.resume and not self._kickoff_sent:
            # Re-attaching: the turn to follow is the one of the newest processed user kickoff.
            for index in range(len(events) - 1, -1, -1):
                event = events[index]
                if event.type in KICKOFF_TYPES and event.processed_at is not None:
                    armed_at = index
                    break
        pending: list[str] = []
        pending_event: SessionEvent | None = None
        watermark = self._watermark
        for index, event in enumerate(events):
            kind = str(event.type)
            event_id = event.id
            if event_id:
                self._history_ids.add(event_id)
            new = self._note(event, kind, from_history=True)
            if event_id and kind not in _USER_EVENT_TYPES:
                watermark = event_id  # history events never move; user events may
            if kind in KICKOFF_TYPES:
                processed = event.processed_at is not None
                if processed and (index == armed_at or (armed_at is None and self._is_kickoff(event_id))):
                    armed_at = index
                    self._armed_in_history = True
                    self._arm(event)
            elif kind == "session.status_running":
                if new:
                    await self._status("running", event)
            elif kind == "session.status_rescheduled":
                if new:
                    await self._status("rescheduled", event)
            elif self._end is not None:
                continue  # already ended: only completing the transcript
            elif event.type == "session.status_idle" and armed_at is not None and index > armed_at:
                if isinstance(event.stop_reason, BetaManagedAgentsSessionRequiresAction):
                    pending = list(event.stop_reason.event_ids)
                    pending_event = event
                else:
                    pending = []
                    await self._finish_on_idle(event, from_history=True)
            elif kind in ("session.status_terminated", "session.deleted"):
                pending = []
                await self._finish_terminated(event, kind, from_history=True)
        self._watermark = watermark
        if pending and pending_event is not None and handle_pending and self._end is None:
            # Answers may come later in the same history, so decide once the read is complete.
            await self._requires_action(pending, pending_event)

    async def _unhandled_history(self) -> tuple[list[SessionEvent], bool]:
        """The history after the watermark in ascending order; True when that is the whole history.

        Without a watermark, or when it is not found, the whole history is returned.
        """
        if self._watermark is None:
            page = await self.client.beta.sessions.events.list(
                self.session_id, limit=HISTORY_PAGE_SIZE, order="asc"
            )
            events = [event async for event in page]
            self.stats.history_events_read += len(events)
            return events, True
        newer: list[SessionEvent] = []
        page = await self.client.beta.sessions.events.list(
            self.session_id, limit=HISTORY_PAGE_SIZE, order="desc"
        )
        async for event in page:
            self.stats.history_events_read += 1
            if event.id == self._watermark:
                newer.reverse()
                return newer, False
            newer.append(event)
        newer.reverse()
        self._armed_in_history = False
        return newer, True

    async def _await_history(self, event_id: str, what: str) -> None:
        """Read the history until ``event_id`` shows up in it (it lags the stream)."""
        delay = SETTLE_BACKOFF_START
        deadline = time.monotonic() + self.settings.idle_settle_timeout
        while event_id not in self._history_ids:
            await self._reconcile(handle_pending=False)
            if event_id in self._history_ids:
                return
            if time.monotonic() >= deadline:
                raise SessionStreamError(
                    f"Session {self.session_id}: {what} ({event_id}) was on the stream but never appeared "
                    f"in the event history within {self.settings.idle_settle_timeout:g} s."
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.settle_backoff_cap)

    async def _confirm_end_in_history(self) -> None:
        """After a gap, read the history until it holds the ending event, so nothing is missed.

        Without a gap (one connection, opened before our kickoff) the stream saw everything.
        """
        end = self._end
        if not self._gap or self._end_in_history or end is None or not end.event_id:
            return
        if end.kind not in ("idle", "terminated", "deleted"):
            return
        await self._await_history(end.event_id, "the event that ended the turn")

    # --- per event ---------------------------------------------------------------------------

    async def _on_stream_event(self, frame: object) -> None:
        try:
            event = stream_event(frame)
        except MalformedEventError as exc:
            raise SessionStreamError(
                f"Session {self.session_id}: the API sent {exc}; cannot tell what happened."
            ) from None
        if event is None:
            return
        kind = str(event.type)
        new = self._note(event, kind, from_history=False)
        if kind in KICKOFF_TYPES and event.processed_at is not None and self._is_kickoff(event.id):
            # The processed echo of our kickoff: whatever this stream sends after it was processed
            # after it, and an idle that came before it was stale (the start race).
            self._arm(event)
            self._stream_armed = True
            if self._send_turn is not None and self.stats.connections == 1:
                self._gap = False  # sent once this stream was open: the whole turn is on it
            if self._suspect is not None:
                self._clear_suspect()
        if kind in ("session.status_terminated", "session.deleted"):
            await self._finish_terminated(event, kind)  # terminal even when already seen
        elif event.type == "session.status_idle" and new:
            if self._stream_armed:
                await self._on_idle_in_order(event)
            else:
                self._suspect = event
                if self._suspect_since is None:
                    self._suspect_since = time.monotonic()
                self._wake.set()
        elif kind == "session.status_running" and new:
            self._clear_suspect()
            self._idle_status_since = None
            await self._status("running", event)
        elif kind == "session.status_rescheduled" and new:
            await self._status("rescheduled", event)

    def _arm(self, event: SessionEvent) -> None:
        self._state.armed = True
        if self._state.turn_started_at is None:
            self._state.turn_started_at = event.processed_at

    async def _on_idle_in_order(self, event: IdleEvent) -> None:
        """An idle that came after our kickoff was processed: the turn ends or tools wait."""
        if isinstance(event.stop_reason, BetaManagedAgentsSessionRequiresAction):
            await self._requires_action(list(event.stop_reason.event_ids), event)
        else:
            await self._finish_on_idle(event)

    async def _requires_action(self, pending: list[str], event: SessionEvent) -> None:
        """Report a ``requires_action`` idle once and answer its calls that are still open."""
        unanswered = [i for i in pending if i not in self._state.answered]
        if unanswered:
            if event.id not in self._state.requires_action_seen:
                self._state.requires_action_seen.add(event.id)
                await self._status("requires-action", event)
            await self._answer_pending(unanswered)

    def _dedupe_key(self, event: SessionEvent, kind: str) -> str | None:
        if event.id:
            return event.id
        processed = event.processed_at
        # Interrupt echoes may carry an empty id: fall back to type and timestamp.
        return f"{kind}@{processed.isoformat()}" if processed is not None else None

    def _note(self, event: SessionEvent, kind: str, *, from_history: bool) -> bool:
        """Record a sighting; hand a first sighting to the transcript and observer. Returns newness."""
        key = self._dedupe_key(event, kind)
        if key is None:
            if from_history:
                return False  # cannot dedupe; only the live sighting counts
        elif key in self._state.seen_keys:
            self.stats.duplicates_skipped += 1
            return False
        else:
            self._state.seen_keys.add(key)
        self.transcript.add(event, from_history=from_history)
        self.observer.on_event(event)
        self._track(event, kind)
        return True

    def _is_kickoff(self, event_id: str) -> bool:
        if self.resume and not self._kickoff_sent:
            return True  # re-attaching: any user kickoff in the history is ours
        return event_id in self._state.kickoff_ids

    def _track(self, event: SessionEvent, kind: str) -> None:
        state = self._state
        if isinstance(event, ToolUseEvent):
            state.tool_calls[event.id] = PendingToolCall.from_event(event)
        elif event.type in ("user.tool_confirmation", "user.tool_result"):
            state.answered.add(event.tool_use_id)
        elif event.type == "user.custom_tool_result":
            state.answered.add(event.custom_tool_use_id)
        elif kind in KICKOFF_TYPES:
            state.saw_user_kickoff = True

    async def _finish_on_idle(self, event: IdleEvent, *, from_history: bool = False) -> None:
        details = event.stop_details
        self._end = SessionEnd(
            kind="idle",
            # A frame the SDK could not fully parse may lack its stop reason.
            stop_reason=event.stop_reason.type if event.stop_reason is not None else None,
            stop_details=details.model_dump() if details is not None else None,
            event_id=event.id,
        )
        self._end_in_history = from_history
        await self._status("idle", event)

    async def _finish_terminated(self, event: SessionEvent, kind: str, *, from_history: bool = False) -> None:
        end_kind: Literal["terminated", "deleted"] = "deleted" if kind == "session.deleted" else "terminated"
        self._end = SessionEnd(kind=end_kind, event_id=event.id)
        self._end_in_history = from_history
        await self._status("terminated", event)

    async def _status(self, status: str, event: SessionEvent | None) -> None:
        if self._state.last_status == status and status != "requires-action":
            return
        self._state.last_status = status
        await self.observer.on_status(status, event)

    # --- sending -----------------------------------------------------------------------------

    async def _answer_pending(self, event_ids: list[str]) -> None:
        """Answer each unanswered call of a ``requires_action`` idle.

        Custom tools run through the dispatcher; confirmations come from a person's ``answers``,
        else the policy. Everything that can be answered is sent; calls the policy wants a person
        to judge end the loop as ``awaiting_approval`` (after the other answers went out). A call
        the stream never showed (it fell in a reconnect's gap) is read from the history first.
        """
        state = self._state
        unanswered = [i for i in event_ids if i not in state.answered]
        for event_id in unanswered:
            if event_id not in state.tool_calls:
                await self._await_history(event_id, "a tool call the session waits on")
        unanswered = [i for i in unanswered if i not in state.answered]
        calls = [state.tool_calls.get(i) or PendingToolCall(i, "agent.tool_use", "") for i in unanswered]
        custom = [c for c in calls if c.kind == "agent.custom_tool_use"]
        if custom and self.custom_tools is None:
            self._end = SessionEnd(
                kind="requires_action",
                pending_event_ids=tuple(event_ids),
                detail=f"custom tool {custom[0].name!r} needs a result and no handler is registered",
            )
            return
        confirmations: list[EventParam] = []
        confirmed: list[str] = []
        to_ask: list[PendingToolCall] = []
        for call in calls:
            if call.kind == "agent.custom_tool_use":
                continue
            answer = self.answers.get(call.event_id)
            verdict = answer.result if answer is not None else self.policy.decide(call.name)
            if verdict == "fail":
                self._end = SessionEnd(
                    kind="requires_action",
                    pending_event_ids=tuple(event_ids),
                    detail=f"tool {call.label!r} needs a confirmation and the policy says fail",
                )
                return
            if verdict == "ask":
                to_ask.append(call)
                continue
            if answer is None:
                answer = ToolAnswer(verdict, self.policy.deny_message if verdict == "deny" else None)
            confirmations.append(answer.event(call.event_id))
            confirmed.append(call.event_id)
        if custom and self.custom_tools is not None:
            results = await self.custom_tools(custom)
            await self._send_with_retries(results)
            state.answered.update(c.event_id for c in custom)
            self.stats.custom_results_sent += len(results)
        if confirmations:
            await self._send_with_retries(confirmations)
            state.answered.update(confirmed)
            self.stats.confirmations_sent += len(confirmations)
        if to_ask:
            self._end = SessionEnd(
                kind="awaiting_approval",
                pending_event_ids=tuple(c.event_id for c in to_ask),
                pending_calls=tuple(to_ask),
                detail="waiting for a person to approve or deny: " + ", ".join(c.label for c in to_ask),
            )

    async def _send_with_retries(self, events: Sequence[EventParam]) -> Any:
        # A repeated confirmation for the same tool use is harmless; the SDK's retries stay off
        # so that the policy's loop is the only one (managed_agents_core.retry_policy).
        once = self.client.with_options(max_retries=0)
        async for attempt in retrying(LOOP_ATTEMPTS):
            with attempt:
                return await once.beta.sessions.events.send(self.session_id, events=events)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_kickoff_unless_sent(self) -> None:
        """Re-attaching: send the kickoff only if the previous attempt never did.

        A kickoff sent just before the previous attempt died may not be listed yet (the history
        lags), so an empty answer is trusted only after ``history_lag_allowance`` seconds.
        """
        if not self._state.saw_user_kickoff and self.kickoff:
            await asyncio.sleep(self.settings.history_lag_allowance)
            await self._reconcile()
        if not self._state.saw_user_kickoff:
            await self._send_kickoff()

    async def _send_kickoff(self) -> None:
        """Send the kickoff exactly once, even if a send is committed and the answer lost.

        The SDK's own retry would repeat a committed ``user.message`` (a second turn), so it goes
        through :func:`~managed_agents_core.send_once.send_once`: after a failure that may have
        landed, look for it in the history first (for up to ``history_lag_allowance`` seconds,
        since the history lags).
        """
        self._kickoff_sent = True
        if not self.kickoff:
            return
        once = self.client.with_options(max_retries=0)
        kickoff = self.kickoff

        async def send() -> set[str]:
            sent = await once.beta.sessions.events.send(self.session_id, events=kickoff)
            return {str(e.id) for e in sent.data or []}

        async def find() -> set[str] | None:
            return await self._find_sent_kickoff() or None

        self._state.kickoff_ids.update(await send_once(send, find))

    async def _find_sent_kickoff(self) -> set[str]:
        """The user kickoffs in the history, waiting up to the lag allowance for them to show."""
        ids = await poll_history(
            self.client, self.session_id, lambda ids: bool(ids), within=self.settings.history_lag_allowance
        )
        return set(ids)


async def poll_history(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    enough: Callable[[list[str]], bool],
    *,
    within: float,
) -> list[str]:
    """Ids of the turn-starting user events in the history, listed until ``enough`` or ``within`` s.

    The history lags the writes that make it, so a write whose answer was lost is only taken
    as not made once it has stayed out of the history for ``within`` seconds.
    """
    deadline = time.monotonic() + within
    delay = SETTLE_BACKOFF_START
    while True:
        page = await client.beta.sessions.events.list(
            session_id,
            limit=HISTORY_PAGE_SIZE,
            order="asc",
            types=sorted(KICKOFF_TYPES),
        )
        ids = [str(event.id) async for event in page]
        remaining = deadline - time.monotonic()
        if enough(ids) or remaining <= 0:
            return ids
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)


async def interrupt_session(client: anthropic.AsyncAnthropic, session_id: str) -> None:
    """Send ``user.interrupt`` (the session goes idle at its next safe point)."""
    await client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt"}])


async def _best_effort_interrupt(client: anthropic.AsyncAnthropic, session_id: str) -> None:
    try:
        async with asyncio.timeout(10):
            await interrupt_session(client, session_id)
    except (anthropic.APIError, httpx2.HTTPError, TimeoutError) as exc:
        logger.warning("could not interrupt session %s: %s", session_id, type(exc).__name__)


async def wait_until_not_running(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    *,
    within: float | None = None,
    interval: float = 0.2,
) -> Any:
    """Poll ``sessions.retrieve`` until the status is not ``running`` (the post-idle race).

    Args:
        client: The async SDK client.
        session_id: The session.
        within: Longest wait in seconds (``post_idle_settle_timeout`` of the runtime settings when None).
        interval: Pause between reads.

    Returns:
        The last retrieved ``BetaManagedAgentsSession`` (possibly still running at the timeout).
    """
    limit = RuntimeSettings().post_idle_settle_timeout if within is None else within
    deadline = time.monotonic() + limit
    while True:
        session = await client.beta.sessions.retrieve(session_id)
        if session.status != "running" or time.monotonic() >= deadline:
            return session
        await asyncio.sleep(interval)


class SessionStreamError(ManagedAgentsError):
    """The event stream could not be read (a non-transient API error)."""
