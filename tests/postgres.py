"""Throwaway PostgreSQL clusters: the suite's one cluster, and the benchmark's.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<n>/bin``):
``initdb`` into a temporary folder, ``postgres`` on a free loopback port with trust
authentication (loopback only). PostgreSQL refuses to run as root, so under root the cluster
runs as the package's ``postgres`` user.

The suite's Prefect servers (the ``prefect_harness`` fixture's, one per pytest worker, and the
end-to-end and browser tests') each take a fresh database of one cluster that the pytest
controller starts (:func:`start_suite_cluster`, :func:`suite_database_url`), as a production
Prefect server would run on PostgreSQL. On SQLite, concurrent flow runs meet ``database is
locked`` answers that Prefect's client waits out for 2, 4, 8 s, and a server start migrates a
new database for twice the CPU. ``PMA_TEST_DATABASE`` chooses: ``postgres`` (CI: fail without
PostgreSQL), ``sqlite`` (every server on its own SQLite file, as before), or unset (PostgreSQL
when it is installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from emulator import free_port
from tests.prefect_server import StartedProcess, stop_process_group

DATABASE = "prefect"
CHOICE_ENV = "PMA_TEST_DATABASE"
SUITE_PORT_ENV = "PMA_TEST_POSTGRES_PORT"
"""Set by the pytest controller to the suite cluster's port; pytest-xdist workers inherit it."""


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` folder (None when none is installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def database_url(port: int | str, database: str) -> str:
    """The SQLAlchemy URL Prefect takes (``PREFECT_API_DATABASE_CONNECTION_URL``)."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


def create_database(bin_dir: Path, port: int | str, database: str) -> str:
    """Create ``database`` in the cluster on ``port`` and return its URL."""
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
        check=True,
        capture_output=True,
    )
    return database_url(port, database)


class PostgresProcess(StartedProcess):
    """``postgres`` on a free loopback port with a fresh cluster, removed at stop.

    Args:
        durable: Flush to disk as a production server does (False: no ``fsync``, for the
            suite's throwaway data; the benchmark keeps it on, as its SQLite server does).

    Raises:
        RuntimeError: No PostgreSQL server is installed (``apt-get install postgresql``), or it
            did not start.
    """

    def __init__(self, *, durable: bool = True) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server found: install Debian's postgresql package")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pma-postgres-"))
        self.data = self.root / "data"
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL of the cluster's ``prefect`` database (created at start)."""
        return database_url(self.port, DATABASE)

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def start(self, timeout: float = 60.0) -> PostgresProcess:
        """Create the cluster, start the server and create the ``prefect`` database."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        args += ["-h", "127.0.0.1", "-k", str(self.root), "-c", "max_connections=300"]
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(
            self._as_owner(args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start on port {self.port}")
            time.sleep(0.2)
        create_database(self.bin, self.port, DATABASE)
        return self

    def stop(self) -> None:
        """Stop the server (its process group; the Prefect server using it is stopped first) and
        remove the cluster."""
        if self.proc is not None:
            stop_process_group(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def start_suite_cluster() -> PostgresProcess | None:
    """Start the suite's cluster as :data:`CHOICE_ENV` says, and announce its port to the
    processes started after (pytest-xdist workers) in :data:`SUITE_PORT_ENV`.

    Returns:
        The cluster, or None when the suite runs on SQLite.

    Raises:
        RuntimeError: ``PMA_TEST_DATABASE=postgres`` and no PostgreSQL server is installed, or
            the value is neither ``postgres`` nor ``sqlite``.
    """
    choice = os.environ.get(CHOICE_ENV, "")
    if choice not in ("", "postgres", "sqlite"):
        raise RuntimeError(f"{CHOICE_ENV}={choice!r}: use 'postgres', 'sqlite' or leave it unset")
    if choice == "sqlite" or (choice == "" and postgres_bin() is None):
        return None
    cluster = PostgresProcess(durable=False).start()
    os.environ[SUITE_PORT_ENV] = str(cluster.port)
    return cluster


def suite_database_url() -> str | None:
    """A new, empty database in the suite's cluster for one Prefect server (None when the suite
    runs on SQLite: the server then makes its own SQLite file)."""
    port = os.environ.get(SUITE_PORT_ENV)
    bin_dir = postgres_bin()
    if not port or bin_dir is None:
        return None
    return create_database(bin_dir, port, f"prefect_{uuid.uuid4().hex[:12]}")
