"""Routes for files (to be filled in)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ..runtime import Emulator

router = APIRouter(prefix="/v1")


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes (and any services it needs) on the app."""
    app.include_router(router)
