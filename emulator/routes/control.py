"""The control API under ``/_emulator`` (outside ``/v1``): request log, faults, reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..config import FaultConfig
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


@router.post("/reset")
async def reset(emulator: EmulatorDep) -> dict[str, str]:
    """Drop every object and the request log."""
    emulator.reset()
    return {"status": "reset"}
