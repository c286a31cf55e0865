"""Fault injection: every mode shown to happen, deterministic by seed, and off by default."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest

from emulator import EmulatorConfig, EmulatorServer, FaultConfig
from tests.conftest import sdk_client
from tests.contract.session_support import (
    BETA,
    HEADERS,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
)


def _injected(emulator: EmulatorServer) -> list[str]:
    return [r["injected"] for r in emulator.control.requests() if r["injected"]]


def _statuses(emulator: EmulatorServer, count: int) -> list[int]:
    with httpx.Client(base_url=emulator.url, headers=HEADERS) as http:
        return [http.get("/v1/sessions").status_code for _ in range(count)]


def _agent_and_environment(client: anthropic.Anthropic, name: str) -> tuple[Any, Any]:
    agent = client.beta.agents.create(name=name, model="claude-opus-4-8")
    env = client.beta.environments.create(
        name=f"{name}-env", config={"type": "cloud", "networking": {"type": "unrestricted"}}
    )
    return agent, env


def test_everything_is_off_by_default(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    faults = httpx.get(f"{emulator.url}/_emulator/faults").json()
    assert faults == FaultConfig().model_dump()
    session = make_session(client)
    events = run_turn(
        client, emulator.url, session["id"], scenario(stream={"count": 50}, outputs=[{"size": 50_000}])
    )
    assert len(events) > 50
    (output,) = client.beta.files.list(scope_id=session["id"], betas=[BETA])
    assert len(client.beta.files.download(output.id).read()) == 50_000
    assert _statuses(emulator, 20) == [200] * 20
    assert _injected(emulator) == []
    assert len(list(client.beta.sessions.list())) == 1


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_injected_errors(
    client: anthropic.Anthropic,
    emulator: EmulatorServer,
    status: int,
    error_class: type[Exception],
    error_type: str,
) -> None:
    emulator.control.set_faults(fail_rate=1.0, fail_statuses=[status], retry_after_seconds=2)
    no_retry = client.with_options(max_retries=0)
    with pytest.raises(error_class) as exc:
        no_retry.beta.sessions.list()
    error: Any = exc.value
    assert error.status_code == status
    assert error.body["error"]["type"] == error_type
    assert error.response.headers["request-id"].startswith("req_")
    if status == 429:
        assert error.response.headers["retry-after"] == "2"
    # The control API is never failed.
    assert emulator.control.healthy()
    assert _injected(emulator) == [f"error_{status}"]


def test_failures_are_seeded_and_deterministic(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    emulator.control.set_faults(seed=42, fail_rate=0.5, fail_statuses=[500, 529])
    first = _statuses(emulator, 30)
    emulator.control.set_faults(seed=42, fail_rate=0.5, fail_statuses=[500, 529])
    second = _statuses(emulator, 30)
    assert first == second
    assert set(first) == {200, 500, 529}
    emulator.control.set_faults(seed=7, fail_rate=0.5, fail_statuses=[500, 529])
    assert _statuses(emulator, 30) != first


def test_fail_paths_limit_failures(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    emulator.control.set_faults(fail_rate=1.0, fail_statuses=[500], fail_paths=["/events"])
    session = make_session(client)  # agents, environments, sessions: untouched
    with pytest.raises(anthropic.InternalServerError):
        client.with_options(max_retries=0).beta.sessions.events.list(session["id"])


def test_sdk_retries_through_transient_failures(emulator: EmulatorServer) -> None:
    emulator.control.set_faults(seed=3, fail_rate=0.3, fail_statuses=[429, 529], retry_after_seconds=0)
    with sdk_client(emulator.url, max_retries=8) as patient:
        for _ in range(10):
            patient.beta.sessions.list()
    assert _injected(emulator)


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(ping_interval=0.05, faults=FaultConfig(drop_stream_after_events=3))]
)
def test_stream_dropped_after_k_events(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session = make_session(client)
    received = []
    with raw_stream(emulator.url, session["id"]) as stream:
        time.sleep(0.2)  # pings arrive first: they are not counted
        send(client, session["id"], message("hello"))
        with pytest.raises(httpx.RemoteProtocolError):
            for event in stream.events(pings=True):
                received.append(event["type"])
    assert [t for t in received if t != "ping"] == ["user.message", "session.status_running", "user.message"]
    assert "ping" in received
    assert "drop_stream" in _injected(emulator)


def test_commit_then_drop_makes_the_sdk_retry_create_a_duplicate(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    agent, env = _agent_and_environment(client, "dup")
    emulator.control.set_faults(commit_then_drop=["POST /v1/sessions"], commit_then_drop_times=1)
    created = client.beta.sessions.create(agent=agent.id, environment_id=env.id, title="once")
    titles = [s.title for s in client.beta.sessions.list()]
    assert titles == ["once", "once"]
    assert created.id in [s.id for s in client.beta.sessions.list()]
    assert _injected(emulator) == ["commit_then_drop"]
    # Without SDK retries the client sees the broken connection itself.
    emulator.control.set_faults(commit_then_drop=["POST /v1/sessions"], commit_then_drop_times=1)
    with pytest.raises(anthropic.APIConnectionError):
        client.with_options(max_retries=0).beta.sessions.create(agent=agent.id, environment_id=env.id)
    assert len(list(client.beta.sessions.list())) == 3


def test_slow_answer_commits_first_and_answers_late(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    agent, env = _agent_and_environment(client, "late")
    emulator.control.set_faults(slow_answers=["POST /v1/sessions 1.5"])
    impatient = client.with_options(max_retries=0, timeout=0.5)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.beta.sessions.create(agent=agent.id, environment_id=env.id, title="unheard")
    assert [s.title for s in client.beta.sessions.list()] == ["unheard"]  # committed all the same
    started = time.monotonic()
    client.beta.agents.retrieve(agent.id)  # other requests answer at once
    assert time.monotonic() - started < 1.0
    with pytest.raises(ValueError, match="METHOD path-substring SECONDS"):
        FaultConfig(slow_answers=["POST /v1/sessions"])


def test_slow_download(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    data = bytes(range(256)) * 80  # 20 kB
    upload = client.beta.files.upload(file=("slow.bin", data, "application/octet-stream"))
    emulator.control.set_faults(slow_download_bytes_per_second=40_000)
    started = time.monotonic()
    assert client.beta.files.download(upload.id).read() == data
    assert time.monotonic() - started >= 0.4
    assert _injected(emulator) == ["slow_download"]


def test_cut_download(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    data = b"x" * 50_000
    upload = client.beta.files.upload(file=("cut.bin", data, "application/octet-stream"))
    emulator.control.set_faults(cut_download_after_bytes=1000, cut_download_times=1)
    with (
        httpx.Client(base_url=emulator.url, headers=HEADERS) as http,
        http.stream("GET", f"/v1/files/{upload.id}/content") as response,
    ):
        assert response.headers["content-length"] == "50000"
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_bytes():
                received.extend(chunk)
    assert len(received) == 1000
    # The next download is whole again (cut_download_times=1).
    assert client.beta.files.download(upload.id).read() == data
    emulator.control.set_faults(cut_download_after_bytes=0, cut_download_times=1)
    with pytest.raises(anthropic.APIConnectionError):
        client.with_options(max_retries=0).beta.files.download(upload.id).read()
    assert _injected(emulator) == ["cut_download", "cut_download"]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(output_listing_delay=5.0)])
def test_output_listing_delay(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    # Seconds of delay, so a busy machine still lists before the file shows; then wait for it.
    session = make_session(client)
    run_turn(client, emulator.url, session["id"], message("go"))
    assert list(client.beta.files.list(scope_id=session["id"], betas=[BETA])) == []
    deadline = time.monotonic() + 30
    while not (listed := list(client.beta.files.list(scope_id=session["id"], betas=[BETA]))):
        assert time.monotonic() < deadline, "the output was never listed"
        time.sleep(0.2)
    assert [f.filename for f in listed] == ["report.md"]
