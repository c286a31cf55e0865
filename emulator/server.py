"""Serve the emulator with uvicorn: in a background thread (tests) or a child process (restarts)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from .app import create_app
from .config import EmulatorConfig, FaultConfig


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ControlClient:
    """Tiny stdlib client for the ``/_emulator`` control API.

    Args:
        base_url: The emulator's base URL, e.g. ``http://127.0.0.1:8765``.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}/_emulator{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def requests(self) -> list[dict[str, Any]]:
        """Return the request log."""
        return list(self._call("GET", "/requests")["data"])

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._call("DELETE", "/requests")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault settings; call with no arguments to switch all faults off."""
        return dict(self._call("PUT", "/faults", FaultConfig(**faults).model_dump()))

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the lags and races in play now are over; True when they were (False when
        ``timeout`` came first)."""
        return bool(self._call("POST", f"/settle?longest={timeout:g}")["settled"])

    def reset(self) -> None:
        """Drop every object and the request log."""
        self._call("POST", "/reset")

    def healthy(self) -> bool:
        """Return True when the emulator answers."""
        try:
            return bool(self._call("GET", "/health")["status"] == "ok")
        except OSError:
            return False


class _Served:
    """What both ways of serving share: the address, the control client, ``with`` support."""

    host = "127.0.0.1"
    port: int

    @property
    def url(self) -> str:
        """Base URL to give the SDK (``base_url``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def control(self) -> ControlClient:
        """Control API client for this emulator."""
        return ControlClient(self.url)

    def start(self) -> Self:
        """Start serving; return self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmulatorServer(_Served):
    """Run the emulator in a background thread on a loopback port.

    Example:
        ```python
        with EmulatorServer() as emu:
            client = anthropic.Anthropic(api_key="test", base_url=emu.url)
        ```

    Args:
        config: Emulator settings.
        host: Interface to bind (loopback by default).
        port: Port to bind; a free one when 0.
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port or free_port(host)
        self.app = create_app(self.config)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host=host, port=self.port, log_level="warning", lifespan="on")
        )
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> Self:
        """Start serving and wait until the port accepts requests."""
        self._thread = threading.Thread(target=self._server.run, name="emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None


class EmulatorProcess(_Served):
    """Run ``python -m emulator`` (the ``managed-agents emulator`` command) as a child process
    (for kill/restart tests).

    Args:
        args: Extra CLI options, e.g. ``["--state", "state.json"]``.
        port: Port to bind; a free one when 0.
    """

    def __init__(self, args: list[str] | None = None, port: int = 0, log_path: Path | None = None) -> None:
        self.args = args or []
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        """Start the child and wait for its health check."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while not self.control.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator process did not start on {self.url}")
            time.sleep(0.1)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the child (SIGKILL when ``kill``), waiting for it to exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
