"""The one starter of a separate ``prefect server start`` for the tests and the benchmark.

Every Prefect server of the suite comes from here: the ``prefect_harness`` fixture's (one that
every pytest process of the run shares, for in-process flow tests: :class:`SharedPrefectServer`),
the end-to-end and browser tests' and the benchmark's. (Only the testing-plugin test uses
Prefect's ``prefect_test_harness``, as a user's own test would.) The server gets a throwaway
home and database (a SQLite file in its home, or the suite's PostgreSQL database the caller
passes: ``tests/postgres.py``), a free loopback port and an environment of its own; child
processes (the CLI, workers, benchmark clients) take :attr:`PrefectServerProcess.env`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
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


def stop_process_group(process: subprocess.Popen[Any] | int, grace: float = 20.0) -> None:
    """SIGTERM the group a process leads (started with ``start_new_session=True``), then SIGKILL
    it if the process has not ended within ``grace`` seconds.

    Args:
        process: A child of this process, or the pid of a group leader another process started
            (its parent, or init, reaps it).
        grace: Seconds to wait for the end after SIGTERM.
    """
    pid = process if isinstance(process, int) else process.pid
    if _ended(process, 0):
        return
    with suppress(ProcessLookupError):  # it ended just now
        os.killpg(pid, signal.SIGTERM)
        if not _ended(process, grace):
            os.killpg(pid, signal.SIGKILL)
            _ended(process, 10.0)


def _ended(process: subprocess.Popen[Any] | int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process to end (a zombie counts as ended)."""
    if not isinstance(process, int):
        try:
            process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z" or time.monotonic() >= deadline:
            return state == "Z"
        time.sleep(0.1)


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


class SharedPrefectServer:
    """One Prefect server for every pytest process of a run, started by the first that needs it.

    The pytest controller makes ``folder`` and stops the server when the run ends
    (:meth:`stop`); a pytest-xdist worker that asks for the server (:meth:`api_url`) starts it
    under a lock, or waits for the worker that is starting it, and finds its address in
    ``folder``. The server runs in a process group of its own, so it outlives the worker that
    started it. One server instead of one per worker saves each extra worker a server start and
    the CPU an idle server's services take; the tests filter what they read by their own flow
    runs, names and keys, so they do not see each other's.

    Args:
        folder: The run's folder for the server's home, log, lock and address.
        database_url: A function that returns the server's database URL (called once, by the
            process that starts it; None: a SQLite file in its home).
        prepare: Called once with the API URL, by the process that started the server, before
            any other process gets the URL: for what the processes would otherwise all create
            at once (Prefect registers a block type by a read, then a create that fails with 409
            for the second process to get there; the server makes its encryption key at the
            first block saved with a secret, and a second process's first save meets 409 too).
    """

    def __init__(
        self,
        folder: Path,
        database_url: Callable[[], str | None] = lambda: None,
        prepare: Callable[[str], None] = lambda api_url: None,
    ) -> None:
        self.folder = folder
        self._database_url = database_url
        self._prepare = prepare
        self._address = folder / "prefect-server.json"

    def api_url(self, timeout: float = 240.0) -> str:
        """The server's ``PREFECT_API_URL``, after starting it if no process of the run has.

        Raises:
            RuntimeError: It did not start within ``timeout`` seconds.
        """
        with open(self.folder / "prefect-server.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not self._address.exists():
                home = self.folder / "prefect-server"
                home.mkdir(exist_ok=True)
                server = PrefectServerProcess(
                    home, log_path=home / "server.log", database_url=self._database_url()
                )
                server.start(timeout=timeout)
                assert server.proc is not None
                try:
                    self._prepare(server.api_url)
                except BaseException:
                    server.stop()
                    raise
                self._address.write_text(json.dumps({"pid": server.proc.pid, "api_url": server.api_url}))
            return str(json.loads(self._address.read_text())["api_url"])

    def stop(self) -> None:
        """Stop the server if a process of the run started it, and remove ``folder``."""
        if self._address.exists():
            stop_process_group(int(json.loads(self._address.read_text())["pid"]))
        shutil.rmtree(self.folder, ignore_errors=True)
