"""Shared fixtures: a fresh emulator per test, real SDK clients, one Prefect server per session."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any


def _one_certificate_bundle() -> str:
    """A CA file holding the first certificate of certifi's bundle.

    Every Prefect client builds a TLS context from ``PREFECT_API_SSL_CERT_FILE`` (certifi's
    bundle when unset: about 30 ms of CPU, against 0.7 ms for one certificate), even for the
    ``http://`` loopback servers of this suite, and the suite builds thousands of clients. No
    test talks to a Prefect API over TLS, so nothing is verified with this file. The benchmark
    does not set it: its figures keep Prefect's own cost.
    """
    import certifi

    bundle = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----\n"
    path = Path(tempfile.mkdtemp(prefix="pma-test-ca-")) / "one-certificate.pem"
    path.write_text(bundle[bundle.index("-----BEGIN CERTIFICATE-----") : bundle.index(end) + len(end)])
    return str(path)


# Settings that must be in place before Prefect is imported anywhere. The folders made here are
# removed when this process's pytest ends (pytest_unconfigure).
_RESULTS = tempfile.mkdtemp(prefix="pma-test-results-")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = _RESULTS
_MADE_CA_FILE = "PREFECT_API_SSL_CERT_FILE" not in os.environ  # else the controller's, or the user's own
if _MADE_CA_FILE:
    os.environ["PREFECT_API_SSL_CERT_FILE"] = _one_certificate_bundle()
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
for _var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
    os.environ.pop(_var, None)

REALISTIC_SCALE = 0.15
"""The suite runs the emulator's realistic profile with its delays scaled to tenths of a second
(the same code paths; the reliability campaign runs the full values)."""
RUNTIME_TIMING = {
    "MANAGED_AGENTS_STATUS_POLL_INTERVAL": "1.0",
    "MANAGED_AGENTS_STREAM_READ_TIMEOUT": "4.0",
    "MANAGED_AGENTS_SETTLE_BACKOFF_CAP": "0.5",
    "MANAGED_AGENTS_IDLE_SETTLE_TIMEOUT": "30",
    "MANAGED_AGENTS_HISTORY_LAG_ALLOWANCE": "1.0",
    "MANAGED_AGENTS_POST_IDLE_SETTLE_TIMEOUT": "10",
    "MANAGED_AGENTS_OUTPUT_INDEXING_WINDOW": "0.6",
    "MANAGED_AGENTS_RETRY_BACKOFF_SCALE": "0.2",
}
"""The runtime's waits, scaled like the profile (set for every process the tests start)."""
for _name, _value in RUNTIME_TIMING.items():
    os.environ.setdefault(_name, _value)

PATH_ROOTS = {
    "MANAGED_AGENTS_INPUT_ROOTS": json.dumps([".", tempfile.gettempdir()]),
    "MANAGED_AGENTS_OUTPUT_ROOTS": json.dumps(["outputs", tempfile.gettempdir()]),
}
"""The default input and output roots (the working directory, ./outputs) plus the system temp
folder, where pytest's tmp_path lives (set for every process the tests start). The security
tests narrow them with monkeypatch."""
for _name, _value in PATH_ROOTS.items():
    os.environ.setdefault(_name, _value)

import anthropic  # noqa: E402
import pytest  # noqa: E402
from _pytest.terminal import TerminalReporter  # noqa: E402
from xdist.remote import Producer  # noqa: E402
from xdist.scheduler import LoadGroupScheduling  # noqa: E402

from emulator import EmulatorConfig, EmulatorServer  # noqa: E402

TEST_API_KEY = "sk-ant-test-0123456789-SECRET"


REALISTIC_SUITES = ("integration", "e2e", "reliability")
"""Test folders whose emulator lags and races like the real service by default."""


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Settings for the per-test emulator; override this fixture to change them.

    Integration, end-to-end and reliability tests get the realistic profile (scaled); contract
    and unit tests, which check exact emulator behaviour, get the instant one.
    """
    if any(part in REALISTIC_SUITES for part in request.node.path.parts):
        # Seeded per test: each test meets its own, repeatable, draw of closed and silent streams.
        seed = zlib.crc32(request.node.nodeid.encode())
        return EmulatorConfig.profile("realistic", scale=REALISTIC_SCALE, faults={"seed": seed})
    return EmulatorConfig()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """A fresh emulator on a free loopback port, stopped after the test."""
    with EmulatorServer(emulator_config) as server:
        yield server


def sdk_client(base_url: str, **options: Any) -> anthropic.Anthropic:
    """The real sync SDK client for ``base_url`` with the test key (``options``: any other
    client option). Every test client shares the product's one TLS context: building one per
    client costs about 30 ms of CPU, and the suite builds thousands."""
    from blocks.credentials import tls_context  # here: the pytest-xdist controller needs no Prefect

    http_client = anthropic.DefaultHttpxClient(verify=tls_context())
    return anthropic.Anthropic(api_key=TEST_API_KEY, base_url=base_url, http_client=http_client, **options)


def async_sdk_client(base_url: str, **options: Any) -> anthropic.AsyncAnthropic:
    """The real async SDK client for ``base_url`` with the test key (see :func:`sdk_client`)."""
    from blocks.credentials import tls_context

    http_client = anthropic.DefaultAsyncHttpxClient(verify=tls_context())
    return anthropic.AsyncAnthropic(
        api_key=TEST_API_KEY, base_url=base_url, http_client=http_client, **options
    )


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    """The real sync SDK client pointed at the emulator."""
    with sdk_client(emulator.url) as c:
        yield c


@pytest.fixture
async def async_client(emulator: EmulatorServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The real async SDK client pointed at the emulator."""
    async with async_sdk_client(emulator.url) as c:
        yield c


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or the only process, with ``-n 0``) starts the suite's PostgreSQL cluster,
    where every Prefect server of the suite gets a database (``tests/postgres.py``)."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller started it
        return
    from tests.postgres import start_suite_cluster

    cluster = start_suite_cluster()
    if cluster is not None:
        config.add_cleanup(cluster.stop)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the folders this process made before Prefect's import: its results folder, and
    the CA file's folder where this process made it (the controller, or the only process)."""
    shutil.rmtree(_RESULTS, ignore_errors=True)
    if _MADE_CA_FILE:
        shutil.rmtree(Path(os.environ["PREFECT_API_SSL_CERT_FILE"]).parent, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The 200-item batches (minutes each) first, so that no pytest-xdist worker ends the run
    alone with one of them."""
    items.sort(key=lambda item: item.get_closest_marker("batch200") is None)


SHARED_SETUP_FOLDERS = {"tests/e2e/": "e2e", "tests/ui/": "ui"}
"""Folders whose tests share a session fixture that takes a minute to set up (a ``prefect server
start`` with a work pool and a worker; one with the UI and a browser): pytest-xdist runs each
folder's tests on one worker, so that the setup happens once."""


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadGroupScheduling | None:
    """``--dist loadgroup`` that also keeps each of :data:`SHARED_SETUP_FOLDERS` on one worker.

    pytest-xdist groups tests by an ``xdist_group`` mark that it appends to the node id, which
    pytest 9.2 no longer lets a plugin rewrite; the scheduler sees node ids only, so the folders
    are named here.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    return SharedSetupScheduling(config, log)


class SharedSetupScheduling(LoadGroupScheduling):
    """pytest-xdist's ``loadgroup``, with each of :data:`SHARED_SETUP_FOLDERS` as one group."""

    def _split_scope(self, nodeid: str) -> str:
        for folder, group in SHARED_SETUP_FOLDERS.items():
            if nodeid.startswith(folder):
                return group
        return super()._split_scope(nodeid)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Print the figures tests recorded (``record_property(section, line)``), whatever ``-s``/``-q``
    say and whichever pytest-xdist worker ran them, one section per property name."""
    sections: dict[str, list[str]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                for name, line in getattr(report, "user_properties", ()):
                    sections.setdefault(name, []).append(str(line))
    for name, lines in sections.items():
        terminalreporter.section(name)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One real local Prefect server for the whole test session (per pytest-xdist worker).

    Request it (directly or with ``pytest.mark.usefixtures``) in tests that run flows.
    """
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.utilities.asyncutils import run_coro_as_sync

    from tests.postgres import suite_database_url
    from tests.prefect_server import PrefectServerProcess

    home = tmp_path_factory.mktemp("prefect-harness")
    with ExitStack() as stack:
        server = PrefectServerProcess(home, log_path=home / "server.log", database_url=suite_database_url())
        # Its start can coincide with the other worker's heaviest setup (the end-to-end tests'
        # server, deploys and worker) on two cores: 90 s was seen to run out.
        server.start(timeout=240)
        stack.callback(server.stop)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: server.api_url}))
        stack.enter_context(
            prefect.context._temporary_global_settings_context(prefect.context.get_settings_context())
        )
        yield

        async def drain() -> None:
            # As prefect_test_harness does: what the workers still hold reaches this server.
            with suppress(RuntimeError):  # never started
                drained = APILogWorker.instance().drain()
                if inspect.isawaitable(drained):
                    await drained
            drained_all = EventsWorker.drain_all()
            if inspect.isawaitable(drained_all):
                await drained_all

        run_coro_as_sync(drain())


@pytest.fixture
def tmp_outputs(tmp_path: Path) -> Path:
    """A per-test output folder."""
    out = tmp_path / "outputs"
    out.mkdir()
    return out
