"""An Automation on our events, created through the Prefect API against the real server.

"When a session fails (budget reached, refusal, retries exhausted, terminated), send a
notification": the trigger matches ``managed-agents.session.failed`` (emitted by the
``stream-session`` task in the worker's flow-run process), the action is ``SendNotification``
through a ``CustomWebhookNotificationBlock``. The webhook receiver is a small HTTP server in
the test process, so the test sees exactly what the server's actions service delivered.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import PrefectClient
from prefect.events import EventTrigger
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import Posture
from prefect.settings import PREFECT_API_URL, temporary_settings

from emulator import EmulatorServer
from managed_agents_core.keys import run_session_id
from tests.e2e.conftest import PrefectServer, worker_log
from tests.integration.session_helpers import scenario

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def api(deployed: PrefectServer) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(deployed.api_url) as client:
        yield client


async def test_failed_session_sends_a_notification(
    deployed: PrefectServer,
    api: PrefectClient,
    e2e_emulator: EmulatorServer,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    suffix = uuid.uuid4().hex[:6]
    with temporary_settings({PREFECT_API_URL: deployed.api_url}):
        notifier = CustomWebhookNotificationBlock(
            name="session-alerts",
            url=url,
            json_data={"title": "{{subject}}", "text": "{{body}}"},
        )
        block_id = await notifier.asave(f"session-alerts-{suffix}")
        automation = await Automation(
            name=f"notify-on-failed-session-{suffix}",
            description="Send a notification when a managed-agents session fails.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "managed-agents.session.*"},
                expect={"managed-agents.session.failed"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="Session {{ event.resource.name }} failed",
                    body="stop_reason={{ event.payload.stop_reason }} error={{ event.payload.error }}",
                )
            ],
        ).acreate()
    assert automation.id is not None
    # Give the triggers service a moment to load the new automation.
    await asyncio.sleep(3)

    setup = await api.read_deployment_by_name("deploy-agent/setup")
    block_name = f"alert-writer-{suffix}"
    created = await api.create_flow_run_from_deployment(
        setup.id, parameters={"spec": "flows/specs/example-agent.yaml", "block_name": block_name}
    )
    await _wait_final(api, created.id, deployed)

    session_deployment = await api.read_deployment_by_name("run-agent-session/on-demand")
    failing = await api.create_flow_run_from_deployment(
        session_deployment.id, parameters={"agent": block_name, "prompt": scenario(stop="budget_reached")}
    )
    run = await _wait_final(api, failing.id, deployed)
    assert run.state is not None and run.state.is_failed()
    session_id = run_session_id(run.tags, run.labels)

    deadline = time.monotonic() + 90
    while not received:
        assert time.monotonic() < deadline, f"no notification arrived\n{worker_log(deployed)}"
        await asyncio.sleep(1)
    (notice,) = received
    assert notice["title"] == f"Session {session_id} failed"
    assert "stop_reason=budget_reached" in notice["text"] and "SessionBudgetReachedError" in notice["text"]

    # A completed session does not trigger it.
    ok = await api.create_flow_run_from_deployment(
        session_deployment.id, parameters={"agent": block_name, "prompt": scenario(reply="fine")}
    )
    done = await _wait_final(api, ok.id, deployed)
    assert done.state is not None and done.state.is_completed()
    await asyncio.sleep(5)
    assert len(received) == 1


async def _wait_final(api: PrefectClient, run_id: Any, server: PrefectServer) -> Any:
    deadline = time.monotonic() + 240
    while True:
        run = await api.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        assert time.monotonic() < deadline, f"run stuck in {run.state}\n{worker_log(server)}"
        await asyncio.sleep(1)
