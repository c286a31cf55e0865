"""The emulator's live context: config, store, request log and blob storage."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from .config import EmulatorConfig
from .state import RequestRecord, StatePersistence, Store


class Emulator:
    """Holds everything route handlers share. One instance per app.

    Args:
        config: The emulator's settings.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.persistence = StatePersistence(config.state_file)
        self.store: Store = self.persistence.load()
        self.requests: list[RequestRecord] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.blob_dir is not None:
            self.blob_dir = config.blob_dir
        elif config.state_file is not None:
            self.blob_dir = config.state_file.with_name(config.state_file.name + ".blobs")
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="managed-agents-emulator-")
            self.blob_dir = Path(self._tmp.name)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        # Extensions (session engine, fault injector) attach themselves here by name.
        self.services: dict[str, Any] = {}

    def save(self) -> None:
        """Persist the store when ``--state`` is set (call after every write)."""
        self.persistence.save(self.store)

    def reset(self) -> None:
        """Drop every object and the request log (control API)."""
        self.store = Store()
        self.requests.clear()
        self.save()

    def close(self) -> None:
        """Release the temporary blob folder."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def get_emulator(request: Request) -> Emulator:
    """FastAPI dependency returning the app's :class:`Emulator`."""
    emulator = request.app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


EmulatorDep = Annotated[Emulator, Depends(get_emulator)]
"""Route-parameter annotation that injects the app's :class:`Emulator`."""
