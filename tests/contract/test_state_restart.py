"""--state: objects survive kill -9 and a restart; running sessions fail clearly (SCENARIOS.md)."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic

from emulator import EmulatorProcess
from emulator.engine import SAVE_INTERVAL
from tests.conftest import sdk_client
from tests.contract.session_support import (
    BETA,
    history,
    make_session,
    message,
    raw_stream,
    run_turn,
    scenario,
    send,
    types_of,
)


def _client(proc: EmulatorProcess) -> anthropic.Anthropic:
    return sdk_client(proc.url)


def test_state_survives_kill_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = EmulatorProcess(["--state", str(state)], log_path=tmp_path / "emulator.log").start()
    try:
        with _client(proc) as client:
            upload = client.beta.files.upload(file=("in.txt", b"one\ntwo\n", "text/plain"))
            done = make_session(client, resources=[{"type": "file", "file_id": upload.id}], title="done")
            run_turn(client, proc.url, done["id"], scenario(remember="kept", report=True))
            done_history = history(client, done["id"])
            (report,) = client.beta.files.list(scope_id=done["id"], betas=[BETA])

            running = make_session(client, title="running")
            waiting = make_session(client, title="waiting")
            with raw_stream(proc.url, waiting["id"]) as stream:
                send(client, waiting["id"], scenario(custom_tools=[{"name": "lookup_ticket"}]))
                for event in stream.events():
                    if event["type"] == "session.status_idle":
                        break
            send(client, running["id"], scenario(stream={"count": 10_000, "delay": 0.05}))
            time.sleep(SAVE_INTERVAL * 3)
            assert client.beta.sessions.retrieve(running["id"]).status == "running"
    finally:
        proc.stop(kill=True)

    proc = EmulatorProcess(
        ["--state", str(state)], port=proc.port, log_path=tmp_path / "emulator.log"
    ).start()
    try:
        with _client(proc) as client:
            assert {s.title for s in client.beta.sessions.list()} == {"done", "running", "waiting"}
            assert client.beta.agents.retrieve(done["agent"]["id"]).id == done["agent"]["id"]
            assert client.beta.environments.retrieve(done["environment_id"]).id == done["environment_id"]
            assert client.beta.files.download(upload.id).read() == b"one\ntwo\n"
            assert "in.txt" in client.beta.files.download(report.id).text()
            assert history(client, done["id"]) == done_history
            assert client.beta.sessions.retrieve(done["id"]).status == "idle"

            for session in (running, waiting):
                restored = client.beta.sessions.retrieve(session["id"])
                assert restored.status == "idle"
                tail = history(client, session["id"])[-2:]
                assert types_of(tail) == ["session.error", "session.status_idle"]
                assert tail[0]["error"]["type"] == "unknown_error"
                assert tail[0]["error"]["retry_status"] == {"type": "terminal"}
                assert tail[1]["stop_reason"] == {"type": "retries_exhausted"}

            # Recovered sessions take new turns; script state (notes) survived too.
            again = run_turn(client, proc.url, running["id"], message("again"))
            assert again[-1]["stop_reason"] == {"type": "end_turn"}
            recall = run_turn(client, proc.url, done["id"], scenario(recall=True))
            assert "Remembered: kept." in recall[-4]["content"][0]["text"]
    finally:
        proc.stop()
    # A clean stop writes the final state: the last turn is in the file.
    proc = EmulatorProcess(["--state", str(state)], port=proc.port).start()
    try:
        with _client(proc) as client:
            assert types_of(history(client, running["id"]))[-1] == "session.status_idle"
            assert history(client, running["id"])[-1]["stop_reason"] == {"type": "end_turn"}
    finally:
        proc.stop()
