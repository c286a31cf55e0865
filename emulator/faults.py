"""Seeded, deterministic fault injection for ``/v1`` traffic (``config.faults``).

Pure ASGI middleware (so SSE is never buffered). Each injected fault is written to the
request log (``RequestRecord.injected``). Modes, all off by default:

* ``fail_rate``: answer that fraction of requests with an error envelope picked from
  ``fail_statuses`` (429 carries ``retry-after``) *before* they are processed.
* ``drop_stream_after_events``: break every SSE connection (session and thread streams) after
  k event frames (pings are not counted); the client sees an incomplete chunked body.
* ``commit_then_drop``: process matching requests, then send the response head and half
  of the body and break the connection, so a client retry repeats a committed write.
* ``slow_answers``: process matching requests, then hold the answer for a number of seconds
  (cancelling a client in that window leaves a committed write it never heard about).
* ``slow_download_bytes_per_second`` / ``cut_download_after_bytes``: throttle, or break
  after N bytes, the bodies of ``GET /v1/files/{id}/content``.
* ``stream_open_429_rate``: answer that fraction of ``GET .../events/stream`` (and thread
  ``GET .../threads/{id}/stream``) requests 429
  (``retry-after: retry_after_seconds``) before anything is streamed (logged ``stream_429``).
* ``close_stream_after_idle_rate`` / ``silent_stream_rate``: drawn per SSE connection when it
  opens (:meth:`FaultInjector.draw_stream_faults`) and applied by the stream itself
  (:mod:`emulator.routes.events`, logged ``close_after_idle`` / ``silent_stream``).

Each random mode draws from its own generator, seeded from ``seed`` and the mode's name, so
switching one mode on never changes which requests another mode picks. The engine and the
events list draw from the same kind of generators (:meth:`FaultInjector.coin`).

``PUT /_emulator/faults`` calls :meth:`FaultInjector.reconfigure`, which also resets the
random generator and the counters, so a given seed always fails the same requests.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import FaultConfig
from .errors import ApiError
from .ids import new_id
from .runtime import Emulator
from .sse import FRAME_SEPARATOR, is_ping

_DOWNLOAD_PATH = re.compile(r"^/v1/files/[^/]+/content$")
_STREAM_PATH = re.compile(r"^/v1/sessions/[^/]+/(events|threads/[^/]+)/stream$")
_MESSAGES = {
    429: "Rate limited (injected fault).",
    500: "Internal server error (injected fault).",
    503: "Service unavailable (injected fault).",
    529: "Overloaded (injected fault).",
}


class _DropConnection(Exception):
    """Raised from ``send`` to abandon a response half-way (the server then closes the socket)."""


@dataclass(frozen=True)
class StreamFaults:
    """What one SSE connection drew when it opened."""

    close_after_idle: bool = False
    """Close the connection cleanly right after it delivered a ``session.status_idle`` frame."""
    silent_after: int | None = None
    """Deliver nothing more (no events, no pings) after this many event frames."""


class FaultInjector:
    """The fault settings plus their seeded random generator and counters.

    Args:
        faults: The initial settings.
    """

    def __init__(self, faults: FaultConfig) -> None:
        self.reconfigure(faults)

    def reconfigure(self, faults: FaultConfig) -> None:
        """Switch to new settings and restart the generators and counters."""
        self.config = faults
        self.rng = random.Random(faults.seed)
        self._rngs: dict[str, random.Random] = {}
        self.commit_drops_left = faults.commit_then_drop_times
        self.cuts_left = faults.cut_download_times

    def _rng(self, name: str) -> random.Random:
        rng = self._rngs.get(name)
        if rng is None:
            rng = self._rngs[name] = random.Random(f"{self.config.seed}:{name}")
        return rng

    def coin(self, name: str, rate: float = 0.5) -> bool:
        """Draw True with probability ``rate`` from the seeded generator called ``name``.

        A rate of 0 never draws (so the sequence of a mode that is off does not move); a rate
        of 1 always answers True.
        """
        if rate <= 0:
            return False
        return self._rng(name).random() < rate

    def take_stream_429(self) -> bool:
        """True when this stream-opening request is to be answered 429."""
        return self.coin("stream_open_429", self.config.stream_open_429_rate)

    def draw_stream_faults(self) -> StreamFaults:
        """Draw the faults of an SSE connection that is opening."""
        cfg = self.config
        closes = self.coin("close_stream_after_idle", cfg.close_stream_after_idle_rate)
        silent = self.coin("silent_stream", cfg.silent_stream_rate)
        return StreamFaults(
            close_after_idle=closes, silent_after=cfg.silent_stream_after_events if silent else None
        )

    def pick_failure(self, method: str, path: str) -> int | None:
        """Return the status to inject for this request, or ``None``."""
        cfg = self.config
        if cfg.fail_rate <= 0 or not cfg.fail_statuses:
            return None
        if cfg.fail_paths and not any(_path_rule_matches(rule, method, path) for rule in cfg.fail_paths):
            return None
        if self.rng.random() >= cfg.fail_rate:
            return None
        return self.rng.choice(cfg.fail_statuses)

    def take_commit_then_drop(self, method: str, path: str) -> bool:
        """True (and count it) when this request is to be committed, then dropped."""
        if self.commit_drops_left <= 0:
            return False
        for rule in self.config.commit_then_drop:
            rule_method, _, fragment = rule.strip().partition(" ")
            if rule_method.upper() == method and fragment.strip() in path:
                self.commit_drops_left -= 1
                return True
        return False

    def answer_delay(self, method: str, path: str) -> float:
        """Seconds to hold the answer of this request (0 when no ``slow_answers`` rule matches)."""
        for rule in self.config.slow_answers:
            rule_method, fragment, seconds = rule.split()
            if rule_method.upper() == method and fragment in path:
                return float(seconds)
        return 0.0

    def take_download_cut(self) -> int | None:
        """Return the byte count after which to cut this download, or ``None``."""
        limit = self.config.cut_download_after_bytes
        if limit is None or self.cuts_left <= 0:
            return None
        self.cuts_left -= 1
        return limit


def get_injector(emulator: Emulator) -> FaultInjector:
    """Return the app's fault injector, registering it as the ``faults`` service."""
    injector = emulator.services.get("faults")
    if injector is None:
        injector = emulator.services["faults"] = FaultInjector(emulator.config.faults)
    assert isinstance(injector, FaultInjector)
    return injector


def note_fault(scope: Scope, fault: str) -> None:
    """Add ``fault`` to the ``injected`` field of this request's log record."""
    record = scope.get("state", {}).get("request_record")
    if record is not None:
        record.injected = fault if record.injected is None else f"{record.injected},{fault}"


class FaultMiddleware:
    """Injects the configured faults into ``/v1`` requests."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator
        self.injector = get_injector(emulator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        injector = self.injector
        cfg = injector.config
        status = injector.pick_failure(method, path)
        if status is not None:
            note_fault(scope, f"error_{status}")
            headers = {"retry-after": f"{cfg.retry_after_seconds:g}"} if status == 429 else None
            error = ApiError(status, _MESSAGES.get(status, f"Injected error {status}."), headers=headers)
            request_id = scope.get("state", {}).get("request_id") or new_id("req")
            await error.response(request_id)(scope, receive, send)
            return
        if method == "GET" and _STREAM_PATH.match(path) and injector.take_stream_429():
            note_fault(scope, "stream_429")
            headers = {"retry-after": f"{cfg.retry_after_seconds:g}"}
            error = ApiError(429, _MESSAGES[429], headers=headers)
            request_id = scope.get("state", {}).get("request_id") or new_id("req")
            await error.response(request_id)(scope, receive, send)
            return
        wrapped = send
        if _STREAM_PATH.match(path) and cfg.drop_stream_after_events:
            wrapped = self._drop_stream(scope, send, cfg.drop_stream_after_events)
        elif injector.take_commit_then_drop(method, path):
            wrapped = self._commit_then_drop(scope, send)
        elif delay := injector.answer_delay(method, path):
            wrapped = self._hold_answer(scope, send, delay)
        elif method == "GET" and _DOWNLOAD_PATH.match(path):
            cut = injector.take_download_cut()
            rate = cfg.slow_download_bytes_per_second
            if cut is not None or rate is not None:
                wrapped = self._shape_download(scope, send, cut, rate)
        if wrapped is send:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, wrapped)
        except Exception as exc:
            if not _is_drop(exc):
                raise
            # Returning without finishing the response makes the server close the socket.

    @staticmethod
    def _drop_stream(scope: Scope, send: Send, limit: int) -> Send:
        sent = 0

        async def wrapper(message: Message) -> None:
            nonlocal sent
            if message["type"] != "http.response.body":
                await send(message)
                return
            out: list[bytes] = []
            for frame in message.get("body", b"").split(FRAME_SEPARATOR):
                if not frame:
                    continue
                out.append(frame + FRAME_SEPARATOR)
                if is_ping(frame):
                    continue
                sent += 1
                if sent >= limit:
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
                    note_fault(scope, "drop_stream")
                    raise _DropConnection
            await send(message)

        return wrapper

    @staticmethod
    def _commit_then_drop(scope: Scope, send: Send) -> Send:
        async def wrapper(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            note_fault(scope, "commit_then_drop")
            raise _DropConnection

        return wrapper

    @staticmethod
    def _hold_answer(scope: Scope, send: Send, seconds: float) -> Send:
        note_fault(scope, "slow_answer")

        async def wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(seconds)
            await send(message)

        return wrapper

    @staticmethod
    def _shape_download(scope: Scope, send: Send, cut: int | None, rate: int | None) -> Send:
        sent = 0
        if rate is not None:
            note_fault(scope, "slow_download")

        async def wrapper(message: Message) -> None:
            nonlocal sent
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if cut is not None and sent + len(body) >= cut and (more or sent + len(body) > cut):
                body = body[: cut - sent]
                await _paced(send, body, rate)
                note_fault(scope, "cut_download")
                raise _DropConnection
            await _paced(send, body, rate, more_body=more)
            sent += len(body)

        return wrapper


async def _paced(send: Send, body: bytes, rate: int | None, *, more_body: bool = True) -> None:
    """Send ``body`` at ``rate`` bytes per second (in tenth-of-a-second slices)."""
    if rate is None or not body:
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        return
    step = max(1, rate // 10)
    for start in range(0, len(body), step):
        piece = body[start : start + step]
        last = start + step >= len(body)
        await send({"type": "http.response.body", "body": piece, "more_body": more_body or not last})
        await asyncio.sleep(len(piece) / rate)


def _is_drop(exc: BaseException) -> bool:
    if isinstance(exc, _DropConnection):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_drop(e) for e in exc.exceptions)
    cause: Any = exc.__cause__ or exc.__context__
    return isinstance(cause, _DropConnection)


def _path_rule_matches(rule: str, method: str, path: str) -> bool:
    """``"/events"`` matches any path containing it; ``"POST /events"`` only POSTs to such a path."""
    verb, _, part = rule.partition(" ")
    if part:
        return method.upper() == verb.upper() and part in path
    return rule in path
