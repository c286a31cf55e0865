"""The one starter of a separate ``prefect server start`` for the tests and the benchmark.

Every Prefect server of the suite comes from here: the ``prefect_harness`` fixture's (one per
pytest worker, for in-process flow tests; ``tests/conftest.py``), the end-to-end and browser
tests' and the benchmark's. (Only the testing-plugin test uses Prefect's ``prefect_test_harness``,
as a user's own test would.) The server gets a throwaway home and database (a SQLite file in
its home, or the suite's PostgreSQL database the caller passes: ``tests/postgres.py``), a free
loopback port and an environment of its own; child processes (the CLI, workers, benchmark
clients) take :attr:`PrefectServerProcess.env`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from emulator import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def start_module(
    module: str, args: list[str], env: dict[str, str], log: Path | None
) -> subprocess.Popen[bytes]:
    """Run ``python -m <module> <args>`` in its own process group, output appended to ``log``."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def start_prefect(args: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """Run ``python -m prefect <args>`` (see :func:`start_module`)."""
    return start_module("prefect", args, env, log)


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers 200.

    Raises:
        RuntimeError: ``process`` ended, or ``timeout`` seconds passed, first (with the end of
            ``log``).
    """
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            raise RuntimeError(f"nothing healthy at {url} within {timeout:g} s\n{tail}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def stop_process_group(process: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM the process's group, then SIGKILL it if it has not ended within ``grace`` seconds."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        process.wait(timeout=10)


class StartedProcess:
    """A process the tests start and stop, in a ``with`` block or by hand."""

    def start(self) -> Self:
        """Start it and wait until it is ready; return self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it and remove what it made."""
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


class PrefectServerProcess(StartedProcess):
    """``prefect server start`` on a free loopback port with a throwaway database.

    Args:
        home: Its ``PREFECT_HOME`` (a temporary folder, removed at stop, when None).
        services: Run the server's services (the event persister, the task-run recorder, ...)
            as every real server does; False passes ``--no-services``.
        log_path: Where the server's output goes (discarded when None).
        ui: Serve the Prefect UI too (at :attr:`ui_url`), for the browser tests.
        database_url: The server's database (a throwaway SQLite file in its home when None;
            the suite passes a database of its PostgreSQL cluster, the benchmark one of its own
            to compare).
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        services: bool = True,
        log_path: Path | None = None,
        ui: bool = False,
        database_url: str | None = None,
    ) -> None:
        self.port = free_port()
        self._owns_home = home is None
        self.home = home if home is not None else Path(tempfile.mkdtemp(prefix="pma-prefect-"))
        self.services = services
        self.log_path = log_path
        self.ui = ui
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The ``PREFECT_API_URL`` of this server."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """Where the UI is served (with ``ui=True``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """An environment for a child process that talks to this server (and no other Prefect
        settings or Anthropic credentials of the test process)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_"))}
        env.update(
            {
                "PREFECT_API_URL": self.api_url,
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "PREFECT_LOGGING_LEVEL": "INFO",
                "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(self.home / "results"),
                "PWD": str(PROJECT_ROOT),
            }
        )
        if "PREFECT_API_SSL_CERT_FILE" in os.environ:  # the suite's (tests/conftest.py)
            env["PREFECT_API_SSL_CERT_FILE"] = os.environ["PREFECT_API_SSL_CERT_FILE"]
        return env

    def start(self, timeout: float = 180.0) -> PrefectServerProcess:
        """Start the server and wait for its health check.

        Raises:
            RuntimeError: It is running already (``with server.start():`` would start it twice
                and leave the first one running), or it did not start.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the Prefect server on {self.api_url} is running already")
        args = [
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--analytics-off",
        ]
        if not self.ui:
            args.append("--no-ui")
        if not self.services:
            args.append("--no-services")
        env = {**self.env, "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
        if self.ui:  # the UI calls the API at this URL (port 4200 otherwise)
            env["PREFECT_UI_API_URL"] = self.api_url
        env.pop("PREFECT_API_URL")
        self.proc = start_prefect(args, env, self.log_path)
        try:
            wait_until_healthy(f"{self.api_url}/health", self.proc, timeout, self.log_path)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"Prefect server did not start on {self.api_url}: {exc}") from None
        return self

    def stop(self) -> None:
        """Stop the server (and remove its home when it made it)."""
        if self.proc is not None:
            stop_process_group(self.proc)
        self.proc = None
        if self._owns_home:
            shutil.rmtree(self.home, ignore_errors=True)
