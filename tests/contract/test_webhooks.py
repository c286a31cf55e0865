"""Webhook deliveries: what the emulator POSTs is what the SDK's ``beta.webhooks.unwrap`` verifies.

A real HTTP listener (a stdlib server on a loopback port, in a thread) stands in for the
customer's endpoint; every delivery is checked with the SDK's own verifier and models.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import (
    BetaWebhookEvent,
    BetaWebhookSessionStatusIdledEventData,
    BetaWebhookSessionStatusRunStartedEventData,
    BetaWebhookSessionStatusTerminatedEventData,
)
from standardwebhooks.webhooks import WebhookVerificationError

from emulator import EmulatorConfig, EmulatorServer
from emulator.webhooks import get_dispatcher, new_webhook_secret
from tests.contract.session_support import make_session, message, scenario
from tests.contract.strict import strict

SECRET = new_webhook_secret()


@dataclass
class Delivery:
    """One POST the listener received, and what it answered."""

    headers: dict[str, str]
    body: str
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON body."""
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def data_type(self) -> str:
        """``data.type`` of the delivery."""
        return str(self.payload["data"]["type"])


class Listener:
    """A real HTTP endpoint on a loopback port that records deliveries.

    ``answers`` are the statuses of the next POSTs (then 200).
    """

    def __init__(self) -> None:
        self.received: list[Delivery] = []
        self.answers: deque[int] = deque()
        self.changed = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                with listener.changed:
                    status = listener.answers.popleft() if listener.answers else 200
                    listener.received.append(
                        Delivery({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                    listener.changed.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/anthropic"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-listener", daemon=True)

    def wait_for(self, done: Callable[[list[Delivery]], bool], within: float = 15.0) -> list[Delivery]:
        """The deliveries once ``done(deliveries)`` holds; fails after ``within`` seconds."""
        with self.changed:
            ok = self.changed.wait_for(lambda: done(self.received), timeout=within)
            assert ok, f"deliveries so far: {[(d.data_type, d.answered) for d in self.received]}"
            return list(self.received)

    def of(self, session_id: str, data_type: str | None = None) -> list[Delivery]:
        """The deliveries about ``session_id`` (of ``data_type`` when given), in arrival order."""
        with self.changed:
            return [
                d
                for d in self.received
                if d.payload["data"]["id"] == session_id and data_type in (None, d.data_type)
            ]


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A webhook endpoint on a free loopback port."""
    endpoint = Listener()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture
def webhook_settings() -> dict[str, Any]:
    """Extra ``EmulatorConfig`` webhook fields of a test (parametrize this fixture to change them)."""
    return {}


@pytest.fixture
def emulator_config(listener: Listener, webhook_settings: dict[str, Any]) -> EmulatorConfig:
    """The instant emulator, delivering to the test's listener (short retry backoff)."""
    settings: dict[str, Any] = {"webhook_retry_backoff": 0.05, **webhook_settings}
    return EmulatorConfig(webhook_url=listener.url, webhook_secret=SECRET, **settings)


def unwrap(client: anthropic.Anthropic, delivery: Delivery, key: str = SECRET) -> BetaWebhookEvent:
    """Verify and parse a delivery with the SDK, and validate it strictly against its model."""
    event = client.beta.webhooks.unwrap(delivery.body, headers=delivery.headers, key=key)
    strict(BetaWebhookEvent, delivery.payload)
    return event


def test_a_turn_delivers_signed_run_started_and_idled(
    client: anthropic.Anthropic, listener: Listener
) -> None:
    session_id = make_session(client)["id"]
    client.beta.sessions.events.send(session_id, events=[message("hello")])
    # Both are sent at once, each on a connection of its own: they may arrive in either order.
    sent = {"session.status_run_started", "session.status_idled"}
    listener.wait_for(lambda _: sent <= {d.data_type for d in listener.of(session_id)})

    deliveries = listener.of(session_id)
    assert sorted(d.data_type for d in deliveries) == ["session.status_idled", "session.status_run_started"]
    for delivery in deliveries:
        event = unwrap(client, delivery)
        assert event.type == "event"
        assert event.id == delivery.headers["webhook-id"]  # the event id is the delivery id
        assert event.id.startswith("wevt_")
        assert event.data.id == session_id
        assert set(delivery.payload) == {"type", "id", "created_at", "data"}  # thin payload
        assert set(delivery.payload["data"]) == {"type", "id", "organization_id", "workspace_id"}
        expected = {
            "session.status_run_started": BetaWebhookSessionStatusRunStartedEventData,
            "session.status_idled": BetaWebhookSessionStatusIdledEventData,
        }[delivery.data_type]
        assert isinstance(event.data, expected)
        assert delivery.headers["webhook-signature"].startswith("v1,")
        assert delivery.headers["webhook-timestamp"].isdigit()
    assert len({d.payload["id"] for d in deliveries}) == 2

    # The signature is real: another key or a changed body fails the SDK's verification.
    idled = listener.of(session_id, "session.status_idled")[0]
    with pytest.raises(WebhookVerificationError):
        unwrap(client, idled, key=new_webhook_secret())
    tampered = Delivery(idled.headers, idled.body.replace(session_id, "sesn_other"), 200)
    with pytest.raises(WebhookVerificationError):
        client.beta.webhooks.unwrap(tampered.body, headers=tampered.headers, key=SECRET)


def test_a_failed_delivery_is_retried_with_the_same_event_id(
    client: anthropic.Anthropic, listener: Listener
) -> None:
    session_id = make_session(client)["id"]
    listener.answers.extend([500, 503])  # the first two POSTs fail (run_started's, most likely)
    client.beta.sessions.events.send(session_id, events=[message("hello")])
    listener.wait_for(lambda got: sum(d.answered == 200 for d in got) == 2)

    by_id: dict[str, list[Delivery]] = {}
    for delivery in listener.of(session_id):
        by_id.setdefault(delivery.payload["id"], []).append(delivery)
    assert len(by_id) == 2  # run_started and idled, each delivered in the end
    attempts = sorted(len(tries) for tries in by_id.values())
    assert sum(attempts) == 4
    for tries in by_id.values():
        assert tries[-1].answered == 200
        assert {t.body for t in tries} == {tries[0].body}  # same event, same body
        assert {t.headers["webhook-id"] for t in tries} == {tries[0].payload["id"]}
        for attempt in tries:
            unwrap(client, attempt)  # every attempt is signed (re-signed at its own time)


@pytest.mark.parametrize("webhook_settings", [{"webhook_retries": 2}])
def test_a_delivery_is_dropped_after_its_retries(
    client: anthropic.Anthropic, listener: Listener, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    listener.answers.extend([500] * 100)
    client.beta.sessions.events.send(session_id, events=[message("hello")])
    dispatcher = get_dispatcher(emulator.app.state.emulator)
    assert dispatcher is not None
    got = listener.wait_for(lambda got: len(got) == 6)
    deadline = time.monotonic() + 10
    while dispatcher.pending:  # the last attempt's answer is being read: then it is dropped
        assert time.monotonic() < deadline, "deliveries still pending after their last retry"
        time.sleep(0.01)
    assert sorted(len([d for d in got if d.payload["id"] == i]) for i in {d.payload["id"] for d in got}) == [
        3,
        3,
    ]
    assert listener.of(session_id, "session.status_idled")  # the idled one was tried too
    records = [r for r in dispatcher.deliveries if r.get("status") == 500]
    assert [r["attempt"] for r in records if r["type"] == "session.status_idled"] == [1, 2, 3]


def test_terminate_delivers_status_terminated(client: anthropic.Anthropic, listener: Listener) -> None:
    session_id = make_session(client)["id"]
    client.beta.sessions.events.send(session_id, events=[scenario(stop="terminated")])
    listener.wait_for(lambda _: bool(listener.of(session_id, "session.status_terminated")))
    (terminated,) = listener.of(session_id, "session.status_terminated")
    event = unwrap(client, terminated)
    assert isinstance(event.data, BetaWebhookSessionStatusTerminatedEventData)
    assert event.data.id == session_id
    assert not listener.of(session_id, "session.status_idled")


@pytest.mark.parametrize("webhook_settings", [{"webhook_delay": 0.2, "webhook_jitter": 0.5}])
def test_late_and_jittered_deliveries_all_arrive(client: anthropic.Anthropic, listener: Listener) -> None:
    session_id = make_session(client)["id"]
    for _ in range(3):
        client.beta.sessions.events.send(session_id, events=[message("hello")])
    # Each delivery waits its own jitter: a turn's run_started may come after a later idled.
    listener.wait_for(
        lambda _: (
            len(listener.of(session_id, "session.status_idled")) >= 3
            and len(listener.of(session_id, "session.status_run_started")) >= 3
        )
    )
    assert len(listener.of(session_id, "session.status_idled")) == 3
    assert len(listener.of(session_id, "session.status_run_started")) == 3
    for delivery in listener.of(session_id):
        unwrap(client, delivery)


@pytest.mark.parametrize("emulator_config", [EmulatorConfig()])
def test_no_url_no_deliveries(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    dispatcher = get_dispatcher(emulator.app.state.emulator)
    assert dispatcher is not None and not dispatcher.enabled
    session_id = make_session(client)["id"]
    client.beta.sessions.events.send(session_id, events=[message("hello")])
    assert dispatcher.pending == 0 and not dispatcher.deliveries


def test_the_secret_must_be_a_whsec_secret() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        EmulatorConfig(webhook_url="http://127.0.0.1:1/x", webhook_secret="plain-text")
    assert EmulatorConfig(webhook_secret=SECRET).webhook_secret == SECRET


def test_the_cli_wants_a_secret_with_a_url() -> None:
    from typer.testing import CliRunner

    from managed_agents.cli import app

    result = CliRunner().invoke(
        app, ["emulator", "--webhook-url", "http://127.0.0.1:1/hook"], env={"EMULATOR_WEBHOOK_SECRET": ""}
    )
    assert result.exit_code == 2
    assert "--webhook-url needs --webhook-secret" in result.output
