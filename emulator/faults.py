"""Fault injection (filled in by the fault-injection work)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .runtime import Emulator


class FaultMiddleware:
    """Injects configured faults into ``/v1`` traffic."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
