"""The emulator's in-memory store, optionally persisted to a JSON file (``--state``).

Objects are kept as the JSON dicts the API returns, so responses need no conversion and the
state file is plain JSON. File contents live in ``blob_dir``, not in the state file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class RequestRecord:
    """One line of the request log."""

    method: str
    path: str
    query: str
    status: int
    injected: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the record as JSON."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "injected": self.injected,
        }


@dataclass
class Store:
    """Every persisted object, keyed by id.

    ``agent_versions`` maps an agent id to the list of its snapshots (index = version - 1).
    ``events`` maps a session id to its persisted history (never previews).
    ``files`` holds metadata plus private keys starting with ``_`` (blob path, generator spec,
    listable-after time) that the routes strip before answering.
    """

    agent_versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Session id -> its threads (primary first), see :mod:`emulator.threads`."""
    thread_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Child thread id -> the thread's own history (the primary thread's is ``events``)."""
    session_resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    memories: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    vaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    vault_credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Credentials without their secrets (the emulator never keeps one)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the whole store as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Store:
        """Rebuild a store from :meth:`to_json` output (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class StatePersistence:
    """Loads and atomically saves a :class:`Store` to ``path``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> Store:
        """Return the saved store, or an empty one when there is no file yet."""
        if self.path is None or not self.path.exists():
            return Store()
        return Store.from_json(json.loads(self.path.read_text()))

    def save(self, store: Store) -> None:
        """Write the store atomically (temp file + rename); a no-op without a path."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(store.to_json(), fh)
        os.replace(tmp, self.path)
