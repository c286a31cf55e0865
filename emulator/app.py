"""The FastAPI application that stands in for the Managed Agents API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import EmulatorConfig
from .engine import SessionEngine
from .errors import ApiError, api_error_handler, http_error_handler, validation_error_handler
from .faults import FaultMiddleware
from .middleware import ApiMiddleware
from .routes import (
    agents,
    control,
    environments,
    events,
    files,
    memory_stores,
    resources,
    sessions,
    threads,
    vaults,
)
from .runtime import Emulator
from .script import run_turn
from .webhooks import WebhookDispatcher


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """Build the emulator app.

    Args:
        config: Settings; defaults to :class:`EmulatorConfig` defaults.

    Returns:
        A FastAPI app whose ``state.emulator`` is the live :class:`Emulator`.
    """
    emulator = Emulator(config or EmulatorConfig())
    # Registered first: started before the engine recovers sessions (whose idles cause deliveries).
    emulator.services["webhooks"] = WebhookDispatcher(emulator)
    # The engine runs turns; the script decides what a turn does (kept apart: no import cycle).
    emulator.services["sessions"] = SessionEngine(emulator, run_turn)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for service in list(emulator.services.values()):
            start = getattr(service, "start", None)
            if start is not None:
                await start()
        try:
            yield
        finally:
            for service in list(emulator.services.values()):
                stop = getattr(service, "stop", None)
                if stop is not None:
                    await stop()
            emulator.save()
            emulator.close()

    app = FastAPI(title="Managed Agents API emulator", lifespan=lifespan, docs_url="/_emulator/docs")
    app.state.emulator = emulator
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    for module in (agents, environments, sessions, events, threads, resources, files, memory_stores, vaults):
        module.install(app, emulator)
    app.include_router(control.router)
    # Outermost first: ApiMiddleware sees (and logs) what the fault injector answers.
    app.add_middleware(FaultMiddleware, emulator=emulator)
    app.add_middleware(ApiMiddleware, emulator=emulator)
    return app
