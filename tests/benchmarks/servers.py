"""The servers a benchmark run needs, each in its own process so their CPU and memory are not
counted against the client being measured: the emulator and a local Prefect server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from emulator import free_port


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its live descendants (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, ..., utime (field 14) and stime (15) of stat(5).
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == current)
    return total


INSTANT_RUNTIME = {
    "MANAGED_AGENTS_OUTPUT_INDEXING_WINDOW": "0",
    "MANAGED_AGENTS_INPUT_ROOTS": os.pathsep.join([".", tempfile.gettempdir()]),
    "MANAGED_AGENTS_OUTPUT_ROOTS": os.pathsep.join(["outputs", tempfile.gettempdir()]),
}
"""The benchmark's emulator runs the instant profile, which lists outputs as soon as the turn
ends; the runtime is told so, as the raw script lists once (both sides do the same work). The
benchmark's inputs and outputs live in temporary folders, which the roots must allow
(docs/security.md)."""


class PrefectServerProcess:
    """``prefect server start`` on a free loopback port with a throwaway SQLite database.

    Args:
        log_path: Where the server's output goes (discarded when None).
    """

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="pma-bench-prefect-"))
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The ``PREFECT_API_URL`` of this server."""
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        """Environment variables that point a Prefect client at this server."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 180.0) -> PrefectServerProcess:
        """Start the server and wait for its health check."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-services",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env(), "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"},
        )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prefect server did not start on {self.api_url}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        """Stop the server and remove its database."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PrefectServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
