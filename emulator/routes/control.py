"""The control API under ``/_emulator`` (outside ``/v1``): request log, faults, reset."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ..config import FaultConfig
from ..engine import get_engine
from ..runtime import EmulatorDep

router = APIRouter(prefix="/_emulator", tags=["control"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


@router.get("/requests")
async def list_requests(emulator: EmulatorDep) -> dict[str, Any]:
    """Return the request log: method, path, query, status of every ``/v1`` request."""
    return {"data": [r.as_dict() for r in emulator.requests]}


@router.delete("/requests")
async def clear_requests(emulator: EmulatorDep) -> dict[str, Any]:
    """Empty the request log."""
    emulator.requests.clear()
    return {"data": []}


@router.get("/faults")
async def get_faults(emulator: EmulatorDep) -> dict[str, Any]:
    """Return the active fault settings."""
    return emulator.config.faults.model_dump()


@router.put("/faults")
async def set_faults(faults: FaultConfig, emulator: EmulatorDep) -> dict[str, Any]:
    """Replace the fault settings (send ``{}`` to switch every fault off)."""
    emulator.config.faults = faults
    injector = emulator.services.get("faults")
    if injector is not None and hasattr(injector, "reconfigure"):
        injector.reconfigure(faults)
    return faults.model_dump()


@router.post("/settle")
async def settle(emulator: EmulatorDep, longest: float = 10.0) -> dict[str, Any]:
    """Wait until the lags and races in play now are over (history, idle races, output indexing).

    Tests call it before comparing what a client saw with the server's truth as of the call
    (events emitted later, e.g. by a session that keeps running, are not waited for).
    """
    remaining = max(get_engine(emulator).unsettled_for(), 0.0)
    await asyncio.sleep(min(remaining, longest))
    return {"settled": remaining <= longest, "waited": min(remaining, longest)}


@router.post("/reset")
async def reset(emulator: EmulatorDep) -> dict[str, str]:
    """Drop every object and the request log."""
    emulator.reset()
    return {"status": "reset"}
