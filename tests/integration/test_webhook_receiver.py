"""The webhook receiver wakes suspended detached runs: emulator -> signed delivery -> Prefect event.

The receiver (``managed_agents.webhooks.create_webhook_app``) runs with uvicorn on a loopback
port against the test session's real Prefect server; the emulator delivers to it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anthropic
import httpx
import pytest
import uvicorn
from prefect import flow, get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.states import Running, Suspended

from emulator import EmulatorConfig, free_port
from emulator.webhooks import new_webhook_secret, sign_headers, webhook_payload
from managed_agents.webhooks import WEBHOOK_PATH, create_webhook_app
from managed_agents_core.keys import DETACHED_TAG, session_tag
from tasks.detached import detach_pause_key
from tests.conftest import REALISTIC_SCALE
from tests.integration.session_helpers import (
    create_remote_agent,
    message,
    start_session,
    wait_for_event,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

SECRET = new_webhook_secret()


class Receiver:
    """The receiver app served by uvicorn in a thread (with the test's Prefect settings)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_webhook_app(SECRET), host="127.0.0.1", port=self.port, log_level="warning")
        )
        # Prefect's settings (the test server's API URL) live in a context variable: carry them over.
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self.server.run,), daemon=True)

    def start(self) -> Receiver:
        """Serve, once uvicorn listens."""
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        """POST a delivery to the receiver."""
        return httpx.post(f"{self.url}{WEBHOOK_PATH}", content=body, headers=headers, timeout=30)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The webhook receiver on a free loopback port."""
    served = Receiver().start()
    yield served
    served.stop()


@pytest.fixture
def emulator_config(receiver: Receiver) -> EmulatorConfig:
    """The realistic (scaled) emulator, delivering late and jittered webhooks to the receiver."""
    return EmulatorConfig.profile(
        "realistic",
        scale=REALISTIC_SCALE,
        webhook_url=f"{receiver.url}{WEBHOOK_PATH}",
        webhook_secret=SECRET,
    )


@flow(name="detached-webhook-test")
def detached_placeholder() -> None:
    """Stands in for a detached ``run_agent_session`` run (never executed)."""


def suspended_run(session_id: str) -> str:
    """A flow run tagged as a detached run of ``session_id``, in a ``Suspended`` state; its id."""

    async def create() -> str:
        async with get_client() as prefect:
            run = await prefect.create_flow_run(
                detached_placeholder, tags=[DETACHED_TAG, session_tag(session_id)]
            )
            await prefect.set_flow_run_state(
                run.id, Suspended(timeout_seconds=3600, pause_key=detach_pause_key(session_id)), force=True
            )
            return str(run.id)

    return asyncio.run(create())


def events_about(session_id: str, name: str) -> list[Any]:
    """The Prefect events ``name`` about the session (as persisted now)."""

    async def read() -> list[Any]:
        async with get_client() as prefect:
            page = await prefect.read_events(
                EventFilter(
                    event=EventNameFilter(name=[name]),
                    resource=EventResourceFilter(id=[f"managed-agents.session.{session_id}"]),
                ),
                limit=50,
            )
            return list(page.events)

    return asyncio.run(read())


def delivery(data_type: str, session_id: str, key: str = SECRET) -> tuple[str, dict[str, str]]:
    """A signed delivery (body, headers) as the service sends it."""
    payload = webhook_payload(data_type, session_id)
    body = json.dumps(payload, separators=(",", ":"))
    return body, sign_headers(key, payload["id"], body, datetime.now(UTC))


def assert_wakes(event: Any, flow_run_id: str, status: str) -> None:
    """The wake event names the suspended run first among its related resources."""
    assert event.related[0].id == f"prefect.flow-run.{flow_run_id}"
    assert event.related[0].role == "flow-run"
    assert event.payload == {"status": status, "source": "webhook", "flow_run_id": flow_run_id}


def test_an_idle_session_wakes_its_suspended_run(client: anthropic.Anthropic, receiver: Receiver) -> None:
    session_id = start_session(client, create_remote_agent(client))
    flow_run_id = suspended_run(session_id)
    client.beta.sessions.events.send(session_id, events=[message("work while the run sleeps")])

    event = asyncio.run(
        wait_for_event("managed-agents.session.idled", f"managed-agents.session.{session_id}", within=60)
    )
    assert_wakes(event, flow_run_id, "idle")
    assert httpx.get(f"{receiver.url}/healthz").json() == {"status": "ok"}


def test_a_bad_signature_gets_400_and_emits_nothing(receiver: Receiver) -> None:
    session_id = f"sesn_{uuid.uuid4().hex}"
    flow_run_id = suspended_run(session_id)

    body, headers = delivery("session.status_idled", session_id, key=new_webhook_secret())
    rejected = receiver.post(body, headers)
    assert rejected.status_code == 400
    assert rejected.text.startswith("rejected: bad signature") and rejected.text.count("\n") == 1
    assert headers["webhook-signature"] not in rejected.text and SECRET not in rejected.text
    body, headers = delivery("session.status_idled", session_id)
    unsigned = {k: v for k, v in headers.items() if k != "webhook-signature"}
    assert receiver.post(body, unsigned).status_code == 400
    tampered = body.replace(session_id, f"sesn_{uuid.uuid4().hex}")
    assert receiver.post(tampered, headers).status_code == 400

    # A good delivery after them (a terminated one): once its event is in, the idled never came.
    body, headers = delivery("session.status_terminated", session_id)
    answer = receiver.post(body, headers)
    assert answer.status_code == 200
    assert answer.json()["woken"] == [flow_run_id]
    event = asyncio.run(
        wait_for_event("managed-agents.session.terminated", f"managed-agents.session.{session_id}")
    )
    assert_wakes(event, flow_run_id, "terminated")
    assert events_about(session_id, "managed-agents.session.idled") == []


def test_a_repeated_delivery_emits_once(receiver: Receiver) -> None:
    session_id = f"sesn_{uuid.uuid4().hex}"
    flow_run_id = suspended_run(session_id)

    body, headers = delivery("session.status_idled", session_id)
    first = receiver.post(body, headers)
    assert first.status_code == 200
    assert first.json() == {
        "event_id": json.loads(body)["id"],
        "type": "session.status_idled",
        "duplicate": False,
        "ignored": False,
        "session_id": session_id,
        "status": "idle",
        "woken": [flow_run_id],
    }
    again = receiver.post(body, sign_headers(SECRET, json.loads(body)["id"], body))  # a retry, re-signed
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["woken"] == []

    # Other types are acknowledged and ignored.
    body, headers = delivery("session.status_run_started", session_id)
    ignored = receiver.post(body, headers)
    assert ignored.status_code == 200 and ignored.json()["ignored"] is True

    # A later marker (terminated): once it is in, the idled events are all in too.
    body, headers = delivery("session.status_terminated", session_id)
    assert receiver.post(body, headers).status_code == 200
    asyncio.run(wait_for_event("managed-agents.session.terminated", f"managed-agents.session.{session_id}"))
    idled = events_about(session_id, "managed-agents.session.idled")
    assert len(idled) == 1
    assert_wakes(idled[0], flow_run_id, "idle")


def test_a_session_without_suspended_runs_wakes_nothing(receiver: Receiver) -> None:
    body, headers = delivery("session.status_idled", f"sesn_{uuid.uuid4().hex}")
    answer = receiver.post(body, headers)
    assert answer.status_code == 200
    assert answer.json()["woken"] == [] and answer.json()["duplicate"] is False


def test_serve_refuses_to_start_without_a_signing_key() -> None:
    from typer.testing import CliRunner

    from managed_agents.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["webhooks", "serve", "--signing-key-env", "PMA_TEST_NO_SUCH_KEY"])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [
        "error: ConfigurationError: PMA_TEST_NO_SUCH_KEY is not set: the receiver needs the webhook "
        "signing key (whsec_...) to verify deliveries"
    ]
    bad = runner.invoke(app, ["webhooks", "serve"], env={"ANTHROPIC_WEBHOOK_SIGNING_KEY": "whsec_"})
    assert bad.exit_code == 2 and "not a whsec_<base64> secret" in bad.output


def test_a_session_that_stops_before_its_run_suspends_is_delivered_again(receiver: Receiver) -> None:
    # A fast session can idle between the detached run's prompt and its suspend: the run is
    # still Running (tagged just before the suspend). Refused with 503, the delivery is retried.
    session_id = f"sesn_{uuid.uuid4().hex}"

    async def detaching_run() -> str:
        async with get_client() as prefect:
            run = await prefect.create_flow_run(
                detached_placeholder, tags=[DETACHED_TAG, session_tag(session_id)]
            )
            await prefect.set_flow_run_state(run.id, Running(), force=True)
            return str(run.id)

    flow_run_id = asyncio.run(detaching_run())
    body, headers = delivery("session.status_idled", session_id)
    early = receiver.post(body, headers)
    assert early.status_code == 503 and "retry" in early.text

    async def suspend() -> None:
        async with get_client() as prefect:
            await prefect.set_flow_run_state(
                UUID(flow_run_id),
                Suspended(timeout_seconds=3600, pause_key=detach_pause_key(session_id)),
                force=True,
            )

    asyncio.run(suspend())
    retried = receiver.post(body, sign_headers(SECRET, json.loads(body)["id"], body))
    assert retried.status_code == 200 and retried.json()["woken"] == [flow_run_id]
