"""A throwaway PostgreSQL cluster for the benchmark's Postgres-backed Prefect server.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<n>/bin``):
``initdb`` into a temporary folder, ``postgres`` on a free loopback port with trust
authentication (loopback only), one database ``prefect``. PostgreSQL refuses to run as root,
so under root the cluster runs as the package's ``postgres`` user. Measurement only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from emulator import free_port
from tests.prefect_server import stop_process_group

DATABASE = "prefect"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` folder (None when none is installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PostgresProcess:
    """``postgres`` on a free loopback port with a fresh cluster, removed at stop.

    Raises:
        RuntimeError: No PostgreSQL server is installed (``apt-get install postgresql``), or it
            did not start.
    """

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server found: install Debian's postgresql package")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pma-postgres-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect takes (``PREFECT_API_DATABASE_CONNECTION_URL``)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def start(self, timeout: float = 60.0) -> PostgresProcess:
        """Create the cluster, start the server and create the database."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            self._as_owner(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    "-c",
                    "max_connections=200",
                ]
            ),
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
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE],
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        """Stop the server (its process group; the Prefect server using it is stopped first) and
        remove the cluster."""
        if self.proc is not None:
            stop_process_group(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
