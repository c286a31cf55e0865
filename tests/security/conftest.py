"""Security fixtures: the worker's key in the environment, a listener that must hear nothing,
narrowed roots and a saved block.

Everything is real: the SDK talks HTTP to the emulator (the worker's legitimate API) and, where
an attack tries, to a plain HTTP listener on a loopback port; flows run on the test Prefect
server; files are real files under pytest's ``tmp_path``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import pytest

from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import RemoteAgent, create_remote_agent, save_agent_block

from .helpers import PARAMETER_KEY, WORKER_KEY, Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    """An HTTP listener an attacker controls (loopback, free port); answers 200 ``{}`` to anything."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("latin-1") if length else ""
            received.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
            )
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def worker_env(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The worker's environment: its own key, and the API it belongs to (the emulator)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", WORKER_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    return WORKER_KEY


@dataclass(frozen=True)
class Roots:
    """Narrowed roots for one test, and a place outside them."""

    inputs: Path
    outputs: Path
    outside: Path


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Roots:
    """Input root ``<tmp>/in``, output root ``<tmp>/out``; ``<tmp>/outside`` holds a secret."""
    narrowed = Roots(tmp_path / "in", tmp_path / "out", tmp_path / "outside")
    for folder in (narrowed.inputs, narrowed.outputs, narrowed.outside):
        folder.mkdir()
    (narrowed.inputs / "ok.csv").write_text("a,b\n1,2\n")
    (narrowed.outside / "credentials").write_text(f"aws_secret_access_key = {PARAMETER_KEY}\n")
    monkeypatch.setenv("MANAGED_AGENTS_INPUT_ROOTS", json.dumps([str(narrowed.inputs)]))
    monkeypatch.setenv("MANAGED_AGENTS_OUTPUT_ROOTS", json.dumps([str(narrowed.outputs)]))
    return narrowed


@pytest.fixture
def remote_agent(client: anthropic.Anthropic) -> RemoteAgent:
    """An agent and environment on the per-test emulator."""
    return create_remote_agent(client)


@pytest.fixture
def saved_agent(emulator: EmulatorServer, remote_agent: RemoteAgent, prefect_harness: None) -> str:
    """A saved ``ManagedAgent`` block (its own key and base URL); yields its name. The emulator's
    request log is cleared, so a test counts only what its own run sent."""
    name = save_agent_block(remote_agent, emulator.url, TEST_API_KEY, verbosity="summary")
    emulator.control.clear_requests()
    return name
