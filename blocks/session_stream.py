"""The consolidating session event loop: no gap, no duplicate, exact end of turn.

Follows the SDK's own ``lib/tools/_beta_session_runner.py``: open the SSE stream *first*, then
send the kickoff, then read the history with ``events.list`` and tail the stream, de-duplicating
by event id. Any dropped stream, connection error or clean end of stream reconnects with backoff
(0.5 s doubling to 10 s) and backfills again; 401/403 is fatal. The SDK never reconnects itself.

The gate: a ``session.status_idle`` whose ``stop_reason`` is not ``requires_action`` ends the turn,
but only if it comes *after* our kickoff was processed (the start race: a session may report a
stale idle before its first ``running``). The history decides that: it is the service's own
order, so an idle counts only when the history lists it after the processed echo of our kickoff
(or after a ``session.status_running`` that follows our kickoff). An idle first seen on the
stream is checked against the history; a stale, stream-only idle never appears there. Once our
kickoff is known to be processed (its processed echo on the stream, or the history), that check
is one newest-first page, so ending a turn costs the same for 20 events or 20,000.
``session.status_terminated`` / ``session.deleted`` end the loop always, even when already seen.

No Prefect here: callers pass an observer for logs, progress and Prefect events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anthropic
import httpx2
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from .exceptions import ManagedAgentsError
from .outcome import SessionEnd
from .tool_calls import PendingToolCall, ToolAnswer
from .transcript import Transcript
from .transient import is_transient_error

logger = logging.getLogger(__name__)

RECONNECT_BACKOFF_START = 0.5
RECONNECT_BACKOFF_CAP = 10.0
HISTORY_PAGE_SIZE = 1000
MAX_FAILED_CONNECTIONS = 5
"""Connections in a row that may fail (error, error frame) without an event before giving up
(about 8 s of backoff); any delivered event resets the count."""
IDLE_CHECK_READS = 4
IDLE_CHECK_PAUSE = 0.1
"""An idle first seen on the stream is checked against up to this many history reads."""
TAIL_READ_SIZE = 100
"""Newest events read (descending) to confirm that a stream idle is persisted."""
INTERRUPT_GRACE_SECONDS = 15.0
"""How long to wait for the session to go idle after our own ``user.interrupt``."""

_USER_KICKOFF_TYPES = frozenset({"user.message", "user.define_outcome"})
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
_TOOL_USE_TYPES = frozenset({"agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use"})
_STATUS_TYPES = frozenset(
    {
        "session.status_running",
        "session.status_idle",
        "session.status_rescheduled",
        "session.status_terminated",
        "session.deleted",
    }
)


def is_fatal_stream_error(exc: BaseException) -> bool:
    """True for a 4xx that reconnecting cannot fix (bad key, missing session)."""
    return (
        isinstance(exc, anthropic.APIStatusError)
        and 400 <= exc.status_code < 500
        and not is_transient_error(exc)
    )


Verdict = Literal["allow", "deny", "fail", "ask"]


class ConfirmationPolicy(BaseModel):
    """How to answer tool calls that wait for a confirmation (``requires_action``).

    ``ask`` hands the decision to a person: the engine stops and returns the pending calls, and
    the runtime flow pauses (or suspends) with a form in the Prefect UI. Custom tool calls
    (``agent.custom_tool_use``) are answered by the registered Python functions, not by this
    policy; without a handler for them the run fails.
    """

    default: Verdict = Field(
        default="fail",
        description="Answer for tools not listed below: allow, deny, ask a person in the Prefect UI, or fail.",
    )
    allow_tools: list[str] = Field(default_factory=list, description="Tool names that are always allowed.")
    deny_tools: list[str] = Field(default_factory=list, description="Tool names that are always denied.")
    ask_tools: list[str] = Field(
        default_factory=list, description="Tool names a person approves or denies in the Prefect UI."
    )
    deny_message: str | None = Field(
        default="Denied by the Prefect confirmation policy.",
        description="Message passed to the model with a denial.",
    )
    approval_timeout_seconds: int = Field(
        default=3600, gt=0, description="How long to wait for a person's answer before on_timeout applies."
    )
    on_timeout: Literal["deny", "fail"] = Field(
        default="deny",
        description="What happens when nobody answers in time: deny the calls, or fail the run.",
    )
    approval_mode: Literal["auto", "pause", "suspend"] = Field(
        default="auto",
        description="pause keeps the process waiting; suspend releases the worker (deployments only); "
        "auto suspends deployment runs and pauses the others.",
    )

    def asks(self) -> bool:
        """True when some tool call may be handed to a person."""
        return self.default == "ask" or any(self.decide(tool) == "ask" for tool in self.ask_tools)

    def decide(self, tool_name: str) -> Verdict:
        """Return the answer for one tool call by name (deny wins over allow, allow over ask)."""
        if tool_name in self.deny_tools:
            return "deny"
        if tool_name in self.allow_tools:
            return "allow"
        if tool_name in self.ask_tools:
            return "ask"
        return self.default


class CustomToolDispatcher(Protocol):
    """Runs ``agent.custom_tool_use`` calls and returns one ``user.custom_tool_result`` each."""

    async def __call__(self, calls: Sequence[PendingToolCall]) -> list[dict[str, Any]]:
        """Run the calls (concurrently) and return their result event params, one per call."""


class StreamObserver(Protocol):
    """What the engine reports while it runs (logs, progress, Prefect events)."""

    def on_event(self, event: Any) -> None:
        """Called once per distinct event, in order. Must be cheap: no network, no heavy logging."""

    async def on_status(self, status: str, event: Any) -> None:
        """Called on each session status change: running, idle, requires-action, rescheduled, terminated."""

    async def on_reconnect(self, attempt: int, error: BaseException | None) -> None:
        """Called before each reconnect (``error`` is None after a clean end of stream)."""


class NullObserver:
    """An observer that ignores everything."""

    def on_event(self, event: Any) -> None:
        """Ignore the event."""

    async def on_status(self, status: str, event: Any) -> None:
        """Ignore the status change."""

    async def on_reconnect(self, attempt: int, error: BaseException | None) -> None:
        """Ignore the reconnect."""


@dataclass
class StreamStats:
    """Counters of one engine run (for logs and tests)."""

    connections: int = 0
    reconnects: int = 0
    history_reads: int = 0
    history_events_read: int = 0
    tail_reads: int = 0
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
    kickoff_seen: bool = False
    """The history listed our kickoff (perhaps still queued): a later ``running`` arms the gate."""


class SessionStream:
    """Drive one session to the end of its turn, consolidating stream and history.

    Example:
        ```python
        async with anthropic.AsyncAnthropic() as client:
            engine = SessionStream(client, session.id, kickoff=[{"type": "user.message", ...}])
            end = await engine.run()
            outcome = classify(end, engine.transcript.errors, session_id=session.id, console_url=url)
        ```

    Args:
        client: The async SDK client.
        session_id: The session to drive.
        kickoff: Events to send once the stream is open (``user.message`` / ``user.define_outcome``).
            With ``resume=True`` they are sent only if the history shows no user message yet.
        resume: Re-attach to a session this run started before (a retry): the history decides.
        turn_event_ids: Ids of user events already sent that start the turn to follow (a
            follow-up message sent by the caller). The turn's end is the first idle after them;
            nothing is sent.
        policy: Answers for tool confirmations.
        answers: Verdicts a person gave, by tool-use event id; they win over the policy.
        custom_tools: Runs ``agent.custom_tool_use`` calls; without it such calls end the run.
        max_duration: Wall-clock seconds after which the session is interrupted (``timeout`` end).
        transcript: Where distinct events are accumulated (a new one when None).
        observer: Receives events and status changes.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        session_id: str,
        *,
        kickoff: Iterable[dict[str, Any]] | None = None,
        resume: bool = False,
        turn_event_ids: Iterable[str] | None = None,
        policy: ConfirmationPolicy | None = None,
        answers: Mapping[str, ToolAnswer] | None = None,
        custom_tools: CustomToolDispatcher | None = None,
        max_duration: float | None = None,
        transcript: Transcript | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.kickoff = list(kickoff or [])
        self.resume = resume
        self.policy = policy or ConfirmationPolicy()
        self.answers = dict(answers or {})
        self.custom_tools = custom_tools
        self.max_duration = max_duration
        self.transcript = transcript if transcript is not None else Transcript()
        self.observer: StreamObserver = observer or NullObserver()
        self.stats = StreamStats()
        self._state = _Tracked()
        self._kickoff_sent = False
        self._end: SessionEnd | None = None
        self._anchor: str | None = None  # the newest persisted event handled in order
        turn_ids = [str(i) for i in turn_event_ids or []]
        if turn_ids:
            if self.kickoff:
                raise ValueError(
                    "pass either kickoff events to send or turn_event_ids already sent, not both"
                )
            self._state.kickoff_ids.update(turn_ids)
            self._kickoff_sent = True

    # --- public ------------------------------------------------------------------------------

    async def run(self) -> SessionEnd:
        """Stream until the turn ends; return how it ended (classify it with ``blocks.outcome``).

        On our own ``max_duration`` the session is interrupted and a ``timeout`` end returned.
        If the caller cancels this coroutine, a best-effort ``user.interrupt`` is sent first.

        Raises:
            anthropic.APIStatusError: A non-transient API error (401, 403, 404...).
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
            delivered = False
            try:
                stream = await self.client.beta.sessions.events.stream(self.session_id)
                self.stats.connections += 1
                async with stream:
                    if not self.resume and not self._kickoff_sent:
                        await self._send_kickoff()
                    await self._reconcile()
                    if self.resume and not self._kickoff_sent and not self._state.saw_user_kickoff:
                        await self._send_kickoff()
                    if self._end is None:
                        try:
                            async for event in stream:
                                delivered = True
                                failures = 0
                                await self._on_stream_event(event)
                                if self._end is not None:
                                    break
                        except ValueError as exc:  # json.JSONDecodeError: a data line that is not JSON
                            raise SessionStreamError(
                                f"Session {self.session_id}: the API sent an event that is not valid JSON ({exc})."
                            ) from exc
                if self._end is not None:
                    return self._end
            except (anthropic.APIError, httpx2.HTTPError) as exc:
                if is_fatal_stream_error(exc):
                    raise
                error = exc
                failures += 1
                if failures >= MAX_FAILED_CONNECTIONS:
                    raise SessionStreamError(
                        f"Session {self.session_id}: the event stream failed {failures} times in a row "
                        f"without delivering an event (last: {type(exc).__name__}: {exc}). The session "
                        "keeps its state; rerun to re-attach."
                    ) from exc
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

    async def _reconcile(self, look_for: str | None = None) -> bool:
        """Read the history the engine has not handled yet and decide the gate from it.

        History order is the service's order, so it alone decides whether an idle comes after
        our kickoff was processed. The first read covers the whole history; later reads (after
        a reconnect) only the events after the last one handled in order (the anchor), read
        newest first until the anchor, so a reconnect costs the gap, not the session's length.
        Also answers still-pending ``requires_action`` calls.

        Args:
            look_for: An event id whose presence in the history is reported.

        Returns:
            True when ``look_for`` was in the history read.
        """
        self.stats.history_reads += 1
        events, whole = await self._unhandled_history()
        found = False
        kickoff_at: int | None = None
        armed_at: int | None = None
        if not whole:  # every event read comes after the anchor, so after what it saw
            if self._state.armed:
                armed_at = -1
            elif self._state.kickoff_seen:
                kickoff_at = -1
        pending: list[str] = []
        pending_event: Any = None
        for index, event in enumerate(events):
            kind = str(getattr(event, "type", ""))
            event_id = str(getattr(event, "id", "") or "")
            if event_id and event_id == look_for:
                found = True
            new = self._note(event, kind, from_history=True)
            if event_id and kind not in _USER_EVENT_TYPES:
                self._anchor = event_id  # history events never move; user events may
            if kind in _USER_KICKOFF_TYPES:
                if self._is_kickoff(event_id):
                    self._state.kickoff_seen = True
                    kickoff_at = index if kickoff_at is None else kickoff_at
                    if armed_at is None and getattr(event, "processed_at", None) is not None:
                        armed_at = index
                        self._state.armed = True
            elif kind == "session.status_running":
                if armed_at is None and kickoff_at is not None:
                    armed_at = index
                    self._state.armed = True
                if new:
                    await self._status("running", event)
            elif kind == "session.status_rescheduled":
                if new:
                    await self._status("rescheduled", event)
            elif kind == "session.status_idle" and armed_at is not None and index > armed_at:
                reason = getattr(event, "stop_reason", None)
                if getattr(reason, "type", None) == "requires_action":
                    pending = [str(i) for i in (getattr(reason, "event_ids", None) or [])]
                    pending_event = event
                else:
                    await self._finish_on_idle(event)
                    return found
            elif kind in ("session.status_terminated", "session.deleted"):
                await self._finish_terminated(event, kind)
                return found
        if pending:
            # Answers may come later in the same history, so decide once the read is complete.
            await self._requires_action(pending, pending_event)
        return found

    async def _unhandled_history(self) -> tuple[list[Any], bool]:
        """The history after the anchor in ascending order; True when that is the whole history.

        Without an anchor, or when the anchor is not found, the whole history is returned.
        """
        if self._anchor is None:
            page = await self.client.beta.sessions.events.list(
                self.session_id, limit=HISTORY_PAGE_SIZE, order="asc"
            )
            events = [event async for event in page]
            self.stats.history_events_read += len(events)
            return events, True
        newer: list[Any] = []
        page = await self.client.beta.sessions.events.list(
            self.session_id, limit=HISTORY_PAGE_SIZE, order="desc"
        )
        async for event in page:
            self.stats.history_events_read += 1
            if str(getattr(event, "id", "") or "") == self._anchor:
                newer.reverse()
                return newer, False
            newer.append(event)
        newer.reverse()
        return newer, True

    async def _requires_action(self, pending: list[str], event: Any) -> None:
        """Report a ``requires_action`` idle once and answer its calls that are still open."""
        unanswered = [i for i in pending if i not in self._state.answered]
        if unanswered:
            if event.id not in self._state.requires_action_seen:
                self._state.requires_action_seen.add(event.id)
                await self._status("requires-action", event)
            await self._answer_pending(unanswered)

    async def _on_stream_event(self, event: Any) -> None:
        kind = str(getattr(event, "type", "") or "")
        if kind in ("event_start", "event_delta", "ping"):
            return
        if not kind:
            raise SessionStreamError(
                f"Session {self.session_id}: the API sent an event without a type "
                f"(id {getattr(event, 'id', None)!r}); cannot tell what happened."
            )
        new = self._note(event, kind, from_history=False)
        event_id = str(getattr(event, "id", "") or "")
        # A new stream event is newer than all seen; a stream idle may be stale (never persisted).
        if new and event_id and kind not in _USER_EVENT_TYPES and kind != "session.status_idle":
            self._anchor = event_id
        if (
            kind in _USER_KICKOFF_TYPES
            and getattr(event, "processed_at", None) is not None
            and self._is_kickoff(str(getattr(event, "id", "") or ""))
        ):
            # The processed echo of our kickoff: whatever this stream sends after it was
            # processed after it (the echo repeats a known id, so newness does not matter).
            self._state.armed = True
        if kind in ("session.status_terminated", "session.deleted"):
            await self._finish_terminated(event, kind)  # terminal even when already seen
        elif kind == "session.status_idle" and new:
            await self._verify_idle(event)
        elif kind == "session.status_running" and new:
            await self._status("running", event)
        elif kind == "session.status_rescheduled" and new:
            await self._status("rescheduled", event)

    async def _verify_idle(self, event: Any) -> None:
        """Let the history judge an idle first seen on the stream.

        A real idle is persisted; a stale, stream-only idle (the start race) never shows up in
        the history. Once our kickoff is known to be processed, an idle this stream delivers
        later came after it, so finding it among the newest events is enough (one short read,
        whatever the session's length). Before that, the whole history decides whether the idle
        comes after our kickoff. The history may lag the stream briefly, hence a few reads.
        """
        event_id = str(getattr(event, "id", "") or "")
        for attempt in range(IDLE_CHECK_READS):
            if self._state.armed:
                found, complete = await self._in_newest_events(event_id)
                if found:
                    await self._on_idle_in_order(event)
                    return
                if not complete:  # more than a page came after it: read the whole history
                    found = await self._reconcile(look_for=event_id)
            else:
                found = await self._reconcile(look_for=event_id)
            if found or self._end is not None:
                return
            await asyncio.sleep(IDLE_CHECK_PAUSE * (attempt + 1))
        logger.debug("session %s: idle %s is not in the history; ignoring it", self.session_id, event_id)

    async def _in_newest_events(self, event_id: str) -> tuple[bool, bool]:
        """Whether ``event_id`` is among the newest events; and whether that read saw them all."""
        self.stats.tail_reads += 1
        page = await self.client.beta.sessions.events.list(
            self.session_id, limit=TAIL_READ_SIZE, order="desc"
        )
        found = any(str(getattr(e, "id", "") or "") == event_id for e in page.data)
        return found, not page.has_next_page()

    async def _on_idle_in_order(self, event: Any) -> None:
        """An idle that came after our kickoff was processed: the turn ends or tools wait."""
        reason = getattr(event, "stop_reason", None)
        if getattr(reason, "type", None) == "requires_action":
            await self._requires_action([str(i) for i in (getattr(reason, "event_ids", None) or [])], event)
        else:
            await self._finish_on_idle(event)

    # --- per event ---------------------------------------------------------------------------

    def _dedupe_key(self, event: Any, kind: str) -> str | None:
        event_id = getattr(event, "id", None) or ""
        if event_id:
            return str(event_id)
        processed = getattr(event, "processed_at", None)
        # Interrupt echoes may carry an empty id: fall back to type and timestamp.
        return f"{kind}@{processed.isoformat()}" if processed is not None else None

    def _note(self, event: Any, kind: str, *, from_history: bool) -> bool:
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
        self.transcript.add(event)
        self.observer.on_event(event)
        self._track(event, kind)
        return True

    def _is_kickoff(self, event_id: str) -> bool:
        if self.resume and not self._kickoff_sent:
            return True  # re-attaching: any user kickoff in the history is ours
        return event_id in self._state.kickoff_ids

    def _track(self, event: Any, kind: str) -> None:
        state = self._state
        if kind in _TOOL_USE_TYPES:
            state.tool_calls[str(event.id)] = PendingToolCall.from_event(event)
        elif kind == "user.tool_confirmation":
            state.answered.add(str(getattr(event, "tool_use_id", "")))
        elif kind in ("user.custom_tool_result", "user.tool_result"):
            state.answered.add(
                str(getattr(event, "custom_tool_use_id", None) or getattr(event, "tool_use_id", ""))
            )
        elif kind in _USER_KICKOFF_TYPES:
            state.saw_user_kickoff = True

    async def _finish_on_idle(self, event: Any) -> None:
        reason_type = str(getattr(getattr(event, "stop_reason", None), "type", "") or "")
        details = getattr(event, "stop_details", None)
        self._end = SessionEnd(
            kind="idle",
            stop_reason=reason_type or None,
            stop_details=details.model_dump() if details is not None else None,
            event_id=str(getattr(event, "id", "") or ""),
        )
        await self._status("idle", event)

    async def _finish_terminated(self, event: Any, kind: str) -> None:
        end_kind: Literal["terminated", "deleted"] = "deleted" if kind == "session.deleted" else "terminated"
        self._end = SessionEnd(kind=end_kind, event_id=str(getattr(event, "id", "") or ""))
        await self._status("terminated", event)

    async def _status(self, status: str, event: Any) -> None:
        if self._state.last_status == status and status != "requires-action":
            return
        self._state.last_status = status
        await self.observer.on_status(status, event)

    # --- sending -----------------------------------------------------------------------------

    async def _answer_pending(self, event_ids: list[str]) -> None:
        """Answer each unanswered call of a ``requires_action`` idle.

        Custom tools run through the dispatcher; confirmations come from a person's ``answers``,
        else the policy. Everything that can be answered is sent; calls the policy wants a person
        to judge end the loop as ``awaiting_approval`` (after the other answers went out).
        """
        state = self._state
        unanswered = [i for i in event_ids if i not in state.answered]
        calls = [state.tool_calls.get(i) or PendingToolCall(i, "agent.tool_use", "") for i in unanswered]
        custom = [c for c in calls if c.kind == "agent.custom_tool_use"]
        if custom and self.custom_tools is None:
            self._end = SessionEnd(
                kind="requires_action",
                pending_event_ids=tuple(event_ids),
                detail=f"custom tool {custom[0].name!r} needs a result and no handler is registered",
            )
            return
        confirmations: list[dict[str, Any]] = []
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
        if custom and self.custom_tools is not None:
            results = await self.custom_tools(custom)
            await self._send_with_retries(results)
            state.answered.update(str(r["custom_tool_use_id"]) for r in results)
            self.stats.custom_results_sent += len(results)
        if confirmations:
            await self._send_with_retries(confirmations)
            state.answered.update(str(c["tool_use_id"]) for c in confirmations)
            self.stats.confirmations_sent += len(confirmations)
        if to_ask:
            self._end = SessionEnd(
                kind="awaiting_approval",
                pending_event_ids=tuple(c.event_id for c in to_ask),
                pending_calls=tuple(to_ask),
                detail="waiting for a person to approve or deny: " + ", ".join(c.label for c in to_ask),
            )

    async def _send_with_retries(self, events: list[dict[str, Any]]) -> Any:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(6),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(is_transient_error),
            reraise=True,
        ):
            with attempt:
                return await self.client.beta.sessions.events.send(self.session_id, events=events)  # type: ignore[arg-type]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_kickoff(self) -> None:
        """Send the kickoff exactly once, even if a send is committed and the answer lost.

        The SDK's own retry would repeat a committed ``user.message`` (a second turn), so send
        without SDK retries and, after a connection error, look for it in the history first.
        """
        self._kickoff_sent = True
        if not self.kickoff:
            return
        once = self.client.with_options(max_retries=0)
        uncertain = False
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(8),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(is_transient_error),
            reraise=True,
        ):
            with attempt:
                if uncertain:
                    found = await self._find_sent_kickoff()
                    if found:
                        self._state.kickoff_ids.update(found)
                        return
                try:
                    sent = await once.beta.sessions.events.send(self.session_id, events=self.kickoff)  # type: ignore[arg-type]
                except anthropic.APIConnectionError:
                    uncertain = True
                    raise
                self._state.kickoff_ids.update(str(e.id) for e in sent.data or [])

    async def _find_sent_kickoff(self) -> set[str]:
        found: set[str] = set()
        page = await self.client.beta.sessions.events.list(
            self.session_id,
            limit=HISTORY_PAGE_SIZE,
            order="asc",
            types=["user.message", "user.define_outcome"],
        )
        async for event in page:
            found.add(str(event.id))
        return found


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
    within: float = 5.0,
    interval: float = 0.2,
) -> Any:
    """Poll ``sessions.retrieve`` until the status is not ``running`` (the post-idle race).

    Returns:
        The last retrieved ``BetaManagedAgentsSession`` (possibly still running at the timeout).
    """
    deadline = time.monotonic() + within
    while True:
        session = await client.beta.sessions.retrieve(session_id)
        if session.status != "running" or time.monotonic() >= deadline:
            return session
        await asyncio.sleep(interval)


class SessionStreamError(ManagedAgentsError):
    """The event stream could not be read (a non-transient API error)."""
