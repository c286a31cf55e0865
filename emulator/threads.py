"""Session threads (reference §9): every session's primary thread and the child threads that
delegation (the ``delegate`` scenario key, see ``emulator/SCENARIOS.md``) creates.

Threads are stored per session in ``store.threads[session_id]`` (primary first, then children in
creation order); a child thread's own history is ``store.thread_events[thread_id]``. Both are
saved with the rest of the store. The primary thread's history is the session's own, and its
``status``, ``usage``, ``stats``, ``updated_at`` and ``archived_at`` are derived from the session
whenever it is read, so they always mirror it. A child thread's live streams are keyed by its
thread id in the session engine, so they reuse the session stream machinery.

Decisions where the reference says UNKNOWN:

* Status events of a child thread (``session.thread_status_*``) are one event with one id,
  written to the child's history and cross-posted, identical, to the primary history.
* A child's usage is ``null`` until its first idle (as the SDK documents); its tokens and list
  cost are added to the session's usage as each of its model requests ends. The primary
  thread's usage is the session's usage less its children's, so the session total is exactly
  the sum over threads; ``active_seconds`` is wall time and is not split (the session's and the
  primary thread's are the coordinator's running time). ``session.stats.active_seconds`` sums
  each thread's active time.
* ``startup_seconds`` is 0 for every thread (emulated containers start at once).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Protocol

from .agents import SESSION_AGENT_KEYS, get_agent_snapshot
from .errors import ApiError, not_found
from .ids import new_id, now_iso, parse_ts
from .runtime import Emulator
from .usage import add_request, minus, zero_usage


class SessionEngine(Protocol):
    """What threads use of ``engine.SessionEngine`` (which calls into this module: the engine is
    named here by its shape, so the two modules do not import each other)."""

    emulator: Emulator

    def mark_dirty(self) -> None:
        """Schedule a state flush."""

    def public_status(self, session: dict[str, Any]) -> str:
        """The status ``retrieve`` reports."""

    def emit(self, session_id: str, event: dict[str, Any], *, persist: bool = True) -> dict[str, Any]:
        """Emit a session event."""

    def record(self, key: str, history: list[dict[str, Any]] | None, event: dict[str, Any]) -> dict[str, Any]:
        """Append an event to a history and broadcast it to ``key``'s streams."""

    def listable_history(
        self, session_id: str, history: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The history a list shows now."""

    def forget(self, session_id: str) -> None:
        """Drop a stream key's runtime state."""


THREAD_AGENT_KEYS = tuple(key for key in SESSION_AGENT_KEYS if key != "multiagent")
"""A thread's agent snapshot: the session's, without the roster (threads run one agent each)."""

STATUSES = frozenset({"running", "idle", "rescheduling", "terminated"})


def _new_thread(session: dict[str, Any], agent: dict[str, Any], parent: str | None) -> dict[str, Any]:
    stamp = session["created_at"] if parent is None else now_iso()
    return {
        "type": "session_thread",
        "id": new_id("sthr"),
        "session_id": session["id"],
        "agent": {key: agent.get(key) for key in THREAD_AGENT_KEYS},
        "parent_thread_id": parent,
        "status": "idle",
        "stats": None,
        "usage": None,
        "archived_at": None,
        "workflow_run_id": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def session_threads(engine: SessionEngine, session: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a session's threads, primary first (made here for sessions saved without one)."""
    threads = engine.emulator.store.threads.get(session["id"])
    if not threads:
        threads = engine.emulator.store.threads[session["id"]] = [
            _new_thread(session, session["agent"], None)
        ]
        engine.mark_dirty()
    return threads


def get_thread(engine: SessionEngine, session: dict[str, Any], thread_id: str) -> dict[str, Any]:
    """Return one thread of the session, or raise 404."""
    for thread in session_threads(engine, session):
        if thread["id"] == thread_id:
            return thread
    raise not_found("session_thread", thread_id)


def is_primary(thread: dict[str, Any]) -> bool:
    """True for the session's primary thread."""
    return thread["parent_thread_id"] is None


def public_thread(engine: SessionEngine, session: dict[str, Any], thread: dict[str, Any]) -> dict[str, Any]:
    """Return the API body (``BetaManagedAgentsSessionThread``) of a stored thread."""
    body = {k: v for k, v in thread.items() if not k.startswith("_")}
    if is_primary(thread):
        children = session_threads(engine, session)[1:]
        usage = minus(session["usage"], [c["_usage"] for c in children])
        active = float(session["usage"].get("active_seconds", 0.0))
        usage["active_seconds"] = active
        end = session.get("_ended_at") or session.get("archived_at")
        body.update(
            status=engine.public_status(session),
            usage=usage,
            stats=_stats(active, session["created_at"], end),
            archived_at=session.get("archived_at"),
            updated_at=session["updated_at"],
        )
    elif thread["stats"] is not None:
        end = thread.get("archived_at") or thread.get("_ended_at")
        body["stats"] = _stats(thread["stats"]["active_seconds"], thread["created_at"], end)
    return body


def _stats(active: float, created_at: str, ended_at: str | None) -> dict[str, Any]:
    end = parse_ts(ended_at) if ended_at else datetime.now(UTC)
    duration = round((end - parse_ts(created_at)).total_seconds(), 3)
    return {"active_seconds": active, "duration_seconds": duration, "startup_seconds": 0.0}


def history(engine: SessionEngine, session: dict[str, Any], thread: dict[str, Any]) -> list[dict[str, Any]]:
    """The events the thread's ``events.list`` shows now (``config.history_lag`` applies)."""
    if is_primary(thread):
        return engine.listable_history(session["id"])
    events = engine.emulator.store.thread_events.setdefault(thread["id"], [])
    return engine.listable_history(thread["id"], events)


def archive(engine: SessionEngine, session: dict[str, Any], thread: dict[str, Any]) -> None:
    """Archive a child thread (idempotent).

    Raises:
        ApiError: 400 for the primary thread (archive the session) and for a running thread.
    """
    if is_primary(thread):
        raise ApiError(400, f"Thread {thread['id']!r} is the session's primary thread; archive the session.")
    if thread["status"] in ("running", "rescheduling"):
        raise ApiError(400, f"Cannot archive thread {thread['id']!r} while it is running.")
    if thread["archived_at"] is None:
        thread["archived_at"] = thread["updated_at"] = now_iso()
        engine.mark_dirty()


def forget(engine: SessionEngine, session_id: str) -> None:
    """Drop a deleted session's threads and end their streams."""
    for thread in engine.emulator.store.threads.pop(session_id, [])[1:]:
        engine.forget(thread["id"])
        engine.emulator.store.thread_events.pop(thread["id"], None)


# -- the multiagent roster -----------------------------------------------------------------


def session_multiagent(emulator: Emulator, agent: dict[str, Any]) -> dict[str, Any] | None:
    """The session's copy of an agent's multiagent configuration: every roster reference
    resolved into the full agent definition (``BetaManagedAgentsSessionMultiagent``).

    Args:
        emulator: The emulator (to look the referenced agents up).
        agent: The session's agent snapshot (overrides applied); it stands for a ``self`` entry.
    """
    multiagent = agent.get("multiagent")
    if multiagent is None:
        return None
    if multiagent["type"] == "coordinator":
        return {
            "type": "coordinator",
            "agents": [_definition(emulator, agent, e) for e in multiagent["agents"]],
        }
    out = dict(multiagent)
    for member in ("subagents", "workflows"):
        spec = multiagent[member]
        if spec["type"] == "enabled":
            agents = [_definition(emulator, agent, e) for e in spec["predefined_agents"]]
            out[member] = {**spec, "predefined_agents": agents}
    return out


def _definition(emulator: Emulator, agent: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if entry["type"] != "agent":
        return dict(entry)
    if entry["id"] == agent["id"]:
        snapshot = agent
    elif "name" in entry:
        snapshot = entry
    else:
        snapshot = get_agent_snapshot(emulator, entry["id"], entry.get("version"))
    return {key: snapshot.get(key) for key in THREAD_AGENT_KEYS}


def callees(emulator: Emulator, agent: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Resolve delegation targets against the roster of the session's agent snapshot ``agent``.

    A name matches a roster agent's id, else its name; ``self`` is the coordinator itself when
    its roster holds it.

    Returns:
        The callee agent definitions, one per name.

    Raises:
        ApiError: 400 when ``agent`` has no multiagent configuration, or a name matches no
            roster agent (or more than one).
    """
    roster = callable_agents(emulator, agent)
    if roster is None:
        raise ApiError(
            400,
            f"delegate: agent {agent['name']!r} ({agent['id']}) has no multiagent configuration; "
            "only an agent with a multiagent roster can delegate.",
        )
    return [_pick(roster, agent, name) for name in names]


def callable_agents(emulator: Emulator, agent: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The agents of the roster of the session's agent snapshot ``agent`` that run threads
    (advisors are models the coordinator consults); None when it has no multiagent configuration.

    Args:
        emulator: The emulator (to look the referenced agents up).
        agent: The session's agent snapshot.
    """
    multiagent = session_multiagent(emulator, agent)
    if multiagent is None:
        return None
    if multiagent["type"] == "coordinator":
        entries = multiagent["agents"]
    else:
        subagents = multiagent["subagents"]
        entries = subagents["predefined_agents"] if subagents["type"] == "enabled" else []
    return [entry for entry in entries if entry["type"] == "agent"]


def _pick(roster: list[dict[str, Any]], agent: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "self":
        matches = [a for a in roster if a["id"] == agent["id"]]
    else:
        matches = [a for a in roster if a["id"] == name] or [a for a in roster if a["name"] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ApiError(400, f"delegate: {name!r} names {len(matches)} roster agents; use an agent id.")
    callable_ = ", ".join(f"{a['name']!r} ({a['id']})" for a in roster) or "none"
    raise ApiError(
        400,
        f"delegate: {name!r} is not on the multiagent roster of agent {agent['id']!r} (callable: {callable_}).",
    )


# -- child threads at work -----------------------------------------------------------------


class ChildThread:
    """A child thread while its coordinator's turn drives it.

    Its own events go to its history and its streams; its status events are cross-posted to
    the primary history; messages between it and the primary thread appear on both sides.

    Args:
        engine: The session engine.
        session: The stored session.
        thread: The stored child thread.
    """

    def __init__(self, engine: SessionEngine, session: dict[str, Any], thread: dict[str, Any]) -> None:
        self.engine = engine
        self.session = session
        self.thread = thread
        self.primary_id = str(session_threads(engine, session)[0]["id"])
        self.open_request: str | None = None

    @classmethod
    def start(cls, engine: SessionEngine, session: dict[str, Any], callee: dict[str, Any]) -> ChildThread:
        """Create a child thread running ``callee`` and emit ``session.thread_created``."""
        threads = session_threads(engine, session)
        thread = _new_thread(session, callee, threads[0]["id"])
        thread["_usage"] = zero_usage()
        threads.append(thread)
        engine.emulator.store.thread_events[thread["id"]] = []
        child = cls(engine, session, thread)
        child.primary("session.thread_created", session_thread_id=thread["id"], agent_name=child.name)
        return child

    @property
    def name(self) -> str:
        """The name of the agent the thread runs."""
        return str(self.thread["agent"]["name"])

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Emit one event on the child thread (its history and streams)."""
        events = self.engine.emulator.store.thread_events.setdefault(self.thread["id"], [])
        return self.engine.record(self.thread["id"], events, {"type": type_, "id": new_id("sevt"), **fields})

    def primary(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Emit one event on the primary thread (the session's history and streams)."""
        return self.engine.emit(self.session["id"], {"type": type_, "id": new_id("sevt"), **fields})

    def _status(self, type_: str, status: str, **fields: Any) -> None:
        self.thread["status"] = status
        self.thread["updated_at"] = now_iso()
        event = self.emit(type_, session_thread_id=self.thread["id"], agent_name=self.name, **fields)
        self.engine.emit(self.session["id"], dict(event))

    def send_task(self, text: str) -> None:
        """The coordinator's message to the thread: sent on the primary, received here."""
        content = [{"type": "text", "text": text}]
        self.primary(
            "agent.thread_message_sent",
            to_session_thread_id=self.thread["id"],
            to_agent_name=self.name,
            content=content,
        )
        self.emit("agent.thread_message_received", from_session_thread_id=self.primary_id, content=content)

    def running(self) -> None:
        """Start running: ``session.thread_status_running`` (cross-posted)."""
        if self.thread["stats"] is None:
            self.thread["stats"] = {"active_seconds": 0.0, "duration_seconds": 0.0, "startup_seconds": 0.0}
        self.thread["_running_since"] = time.time()
        self._status("session.thread_status_running", "running")

    def model_request_start(self) -> None:
        """Emit ``span.model_request_start`` on the thread."""
        self.open_request = self.emit("span.model_request_start")["id"]

    def say(self, text: str) -> None:
        """Emit the thread's ``agent.message``."""
        self.emit("agent.message", content=[{"type": "text", "text": text}])

    def model_request_end(self, input_tokens: int, output_tokens: int, cost_cents: int) -> None:
        """Emit ``span.model_request_end``; add its usage to the thread's and the session's."""
        self.emit(
            "span.model_request_end",
            model_request_start_id=self.open_request,
            is_error=False,
            model_usage={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        )
        self.open_request = None
        add_request(self.thread["_usage"], input_tokens, output_tokens, cost_cents)
        add_request(self.session["usage"], input_tokens, output_tokens, cost_cents)

    def answer(self, text: str) -> None:
        """The thread's reply: sent here; :meth:`deliver` makes the primary receive it."""
        content = [{"type": "text", "text": text}]
        self.emit("agent.thread_message_sent", to_session_thread_id=self.primary_id, content=content)

    def deliver(self, text: str) -> None:
        """The primary thread receives the reply (``agent.thread_message_received``)."""
        self.primary(
            "agent.thread_message_received",
            from_session_thread_id=self.thread["id"],
            from_agent_name=self.name,
            content=[{"type": "text", "text": text}],
        )

    def idle(self, stop_reason: dict[str, Any]) -> None:
        """Go idle: account active time, publish usage, emit ``session.thread_status_idle``."""
        since = self.thread.pop("_running_since", None)
        elapsed = round(time.time() - since, 3) if since is not None else 0.0
        stats = self.thread["stats"]
        stats["active_seconds"] = round(stats["active_seconds"] + elapsed, 3)
        session_stats = self.session["stats"]
        session_stats["active_seconds"] = round(session_stats.get("active_seconds", 0) + elapsed, 3)
        self.thread["usage"] = {**self.thread["_usage"], "active_seconds": stats["active_seconds"]}
        self._status("session.thread_status_idle", "idle", stop_reason=stop_reason, stop_details=None)

    def stop(self, stop_reason: dict[str, Any]) -> None:
        """End the thread's work early (interrupt, failure): close its request, go idle."""
        if self.open_request is not None:
            self.model_request_end(0, 0, 0)
        if self.thread["status"] in ("running", "rescheduling"):
            self.idle(stop_reason)

    def terminate(self) -> None:
        """Terminate the thread with its session: ``session.thread_status_terminated``."""
        self.thread.pop("_running_since", None)
        self.thread["_ended_at"] = now_iso()
        self._status("session.thread_status_terminated", "terminated")


def stop_running_children(
    engine: SessionEngine, session: dict[str, Any], stop_reason: dict[str, Any]
) -> None:
    """Idle every child thread still running (its turn died with a previous process)."""
    for thread in session_threads(engine, session)[1:]:
        if thread["status"] in ("running", "rescheduling"):
            thread.pop("_running_since", None)
            ChildThread(engine, session, thread).idle(stop_reason)


def terminate_children(engine: SessionEngine, session: dict[str, Any]) -> None:
    """Terminate every child thread of a session that is being terminated."""
    for thread in session_threads(engine, session)[1:]:
        if thread["status"] != "terminated":
            ChildThread(engine, session, thread).terminate()
