"""The suite's one Prefect server starter refuses to start a server twice."""

from __future__ import annotations

import subprocess

import pytest

from tests.prefect_server import PrefectServerProcess


def test_a_running_server_is_not_started_again() -> None:
    # A second start would overwrite the handle of the first server, which then outlives the
    # tests (``with server.start():`` did that once). A stand-in process plays the running
    # server: what is checked is the starter's refusal, before it starts anything.
    server = PrefectServerProcess()
    server.proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        with pytest.raises(RuntimeError, match="running already"):
            server.start()
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert server.proc is None and not server.home.exists()
