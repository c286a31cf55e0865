"""Realism knobs: lists that lag the stream, late output indexing, status races, stream faults.

Each knob is off by default; each test turns one on (with durations in tenths of a second) and
shows, through the real SDK over real HTTP, that a client sees what the knob promises. Waits are
on conditions with deadlines; a fixed sleep only ever proves that something is still absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx2
import pytest
import uvicorn
from typer.testing import CliRunner

from emulator import EmulatorConfig, EmulatorServer, FaultConfig
from emulator.config import REALISTIC_PROFILE
from managed_agents.cli import app as cli_app
from tests.conftest import sdk_client
from tests.contract.session_support import (
    BETA,
    history,
    make_session,
    message,
    scenario,
    send,
    types_of,
)

T = TypeVar("T")

STREAMED_TURN = [
    "user.message",
    "session.status_running",
    "user.message",
    "span.model_request_start",
    "agent.thinking",
    "agent.message",
    "span.model_request_end",
    "session.usage",
    "session.status_idle",
]
DEADLINE = 5.0


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``condition`` every 50 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def read_until(stream: Any, predicate: Callable[[Any], bool]) -> list[Any]:
    """Read SDK stream events up to and including the first one matching ``predicate``."""
    out = []
    for event in stream:
        out.append(event)
        if predicate(event):
            return out
    raise AssertionError(f"stream ended early: {[e.type for e in out]}")


def is_idle(event: Any) -> bool:
    return bool(event.type == "session.status_idle")


def listed_ids(client: anthropic.Anthropic, session_id: str) -> list[str]:
    return [e["id"] for e in history(client, session_id)]


def injected(emulator: EmulatorServer) -> list[str]:
    return [r["injected"] for r in emulator.control.requests() if r["injected"]]


# -- history_lag ---------------------------------------------------------------------------


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(history_lag=1.0)])
def test_history_lag_lists_events_only_after_the_lag(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    with client.beta.sessions.events.stream(session_id) as stream:
        (echo,) = send(client, session_id, scenario(reply="lagging"))
        assert echo["id"] not in listed_ids(client, session_id)
        streamed = read_until(stream, is_idle)  # the live stream is not delayed
    assert types_of([e.model_dump() for e in streamed]) == STREAMED_TURN
    idle_id = streamed[-1].id
    assert idle_id not in listed_ids(client, session_id)  # on the stream, not yet in the history
    listed = wait_for(
        lambda: (events := history(client, session_id)) and events[-1]["id"] == idle_id and events,
        "the idle to be listed",
    )
    # After the lag the history is the usual one: the message once, where it was processed.
    assert types_of(listed) == STREAMED_TURN[1:]
    assert [e["id"] for e in listed] == [e.id for e in streamed[1:]]
    assert listed[1]["processed_at"] is not None


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(history_lag=1.0)])
def test_history_lag_lists_a_processed_event_as_queued_for_the_lag(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]

    def listed_second() -> tuple[dict[str, Any], str] | None:
        events = history(client, session_id)
        ids = [e["id"] for e in events]
        if second["id"] not in ids:
            return None
        index = ids.index(second["id"])
        return events[index], ids[index - 1]

    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, scenario(delay=0.15, stream={"count": 6}))
        (second,) = send(client, session_id, scenario(reply="second", thinking=False))
        # Accepted while the first turn runs: listed, as queued, once the lag has passed.
        queued, queued_after = wait_for(listed_second, "the queued message to be listed")
        assert queued["processed_at"] is None
        read_until(stream, lambda e: e.id == second["id"] and e.processed_at is not None)
        # Processed now, yet for the lag the list still shows it as it was: queued, in place.
        copy, copy_after = wait_for(listed_second, "the message to be listed")
        assert (copy["processed_at"], copy_after) == (None, queued_after)
        wait_for(
            lambda: (found := listed_second()) is not None and found[0]["processed_at"] is not None and found,
            "the processed message to be listed",
        )
        streamed = read_until(stream, is_idle)
    final = wait_for(
        lambda: (events := history(client, session_id)) and events[-1]["id"] == streamed[-1].id and events,
        "the second turn to be listed",
    )
    ids = [e["id"] for e in final]
    assert ids.count(second["id"]) == 1
    position = ids.index(second["id"])
    assert final[position - 1]["type"] == "session.status_running"  # where it was processed
    assert all(e["processed_at"] is not None for e in final)


def test_history_lag_shows_everything_after_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(history_lag=30.0, state_file=tmp_path / "state.json")
    with EmulatorServer(config) as first, sdk_client(first.url) as c:
        session_id = make_session(c)["id"]
        with c.beta.sessions.events.stream(session_id) as stream:
            send(c, session_id, message("hello"))
            streamed = read_until(stream, is_idle)
        assert history(c, session_id) == []  # everything is younger than the lag
    with (
        EmulatorServer(config) as second,
        sdk_client(second.url) as c,
    ):
        assert [e["id"] for e in history(c, session_id)] == [e.id for e in streamed[1:]]


# -- queued_events_position ----------------------------------------------------------------


def _queued_behind_a_waiting_turn(client: anthropic.Anthropic) -> tuple[str, list[str], list[str]]:
    """A session whose turn waits on a custom tool, with two messages queued behind it.

    The first queued message is sent while the turn still runs (so inline it sits amid the turn's
    events), the second once the turn waits. Neither is ever processed. Returns the session id,
    the queued ids and the ids in emission order (what an inline list shows).
    """
    session_id = make_session(client)["id"]
    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, scenario(delay=0.1, custom_tools=[{"name": "lookup_ticket"}]))
        streamed = read_until(stream, lambda e: e.type == "session.status_running")
        (early,) = send(client, session_id, message("queued early"))
        streamed += read_until(stream, is_idle)
        (late,) = send(client, session_id, message("queued late"))
        streamed += read_until(stream, lambda e: e.id == late["id"])
    # A user event is streamed twice (queued, then processed); it is listed where it was processed.
    emitted = [e.id for e in streamed]
    inline = [i for n, i in enumerate(emitted) if i not in emitted[n + 1 :]]
    return session_id, [early["id"], late["id"]], inline


@pytest.mark.parametrize(
    "emulator_config",
    [
        EmulatorConfig(queued_events_position="inline"),
        EmulatorConfig(queued_events_position="first"),
        EmulatorConfig(queued_events_position="last"),
    ],
    ids=["inline", "first", "last"],
)
def test_queued_events_position(
    client: anthropic.Anthropic, emulator: EmulatorServer, emulator_config: EmulatorConfig
) -> None:
    session_id, queued, inline = _queued_behind_a_waiting_turn(client)
    assert inline[-1] == queued[1] and inline.index(queued[0]) < len(inline) - 1
    processed = [i for i in inline if i not in queued]
    expected = {
        "inline": inline,
        "first": [i for i in inline if i in queued] + processed,
        "last": processed + [i for i in inline if i in queued],
    }[emulator_config.queued_events_position]
    listed = history(client, session_id)
    assert [e["id"] for e in listed] == expected
    assert [e["id"] for e in listed if e["processed_at"] is None] == queued
    assert [e["id"] for e in history(client, session_id, order="desc")] == expected[::-1]
    assert [e["id"] for e in history(client, session_id, limit=2)] == expected  # pages agree


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(queued_events_position="mixed")])
def test_queued_events_position_mixed_is_a_seeded_draw_per_request(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id, _, _ = _queued_behind_a_waiting_turn(client)

    def arrangements() -> list[str]:
        out = []
        for _ in range(12):
            listed = history(client, session_id)
            flags = [e["processed_at"] is None for e in listed]
            assert flags in (
                [True, True] + [False] * (len(flags) - 2),
                [False] * (len(flags) - 2) + [True, True],
            )
            out.append("first" if flags[0] else "last")
        return out

    emulator.control.set_faults(seed=5)
    drawn = arrangements()
    assert set(drawn) == {"first", "last"}
    emulator.control.set_faults(seed=5)  # the same seed draws the same arrangements again
    assert arrangements() == drawn


# -- output_indexing_window ----------------------------------------------------------------


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(output_indexing_window=1.5)])
def test_output_indexing_window_lists_a_turns_files_one_by_one(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    names = ["a.txt", "b.txt", "c.txt"]

    def listed() -> list[str]:
        # Lists are newest first: reverse to creation order.
        return [f.filename for f in client.beta.files.list(scope_id=session_id, betas=[BETA])][::-1]

    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, scenario(delay=0.05, outputs=[{"name": n, "size": 10} for n in names]))
        read_until(stream, lambda e: e.type == "agent.message")  # written after the outputs
        assert listed() == []  # the files exist, but nothing is indexed before the idle
        read_until(stream, is_idle)
    seen: list[list[str]] = []

    def all_listed() -> bool:
        seen.append(listed())
        return len(seen[-1]) == 3

    wait_for(all_listed, "every output to be listed")
    assert all(names[: len(s)] == s for s in seen)  # in creation order, one by one
    assert any(0 < len(s) < 3 for s in seen), seen  # a partial listing was observed
    (first,) = [f for f in client.beta.files.list(scope_id=session_id, betas=[BETA]) if f.filename == "a.txt"]
    assert len(client.beta.files.download(first.id).read()) == 10


# -- post_idle_running ---------------------------------------------------------------------


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(post_idle_running=1.0)])
def test_post_idle_running_keeps_reporting_running_after_the_idle(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, message("hello"))
        read_until(stream, is_idle)
    # The idle is on the stream, but retrieve and list still say running...
    assert client.beta.sessions.retrieve(session_id).status == "running"
    assert [s.id for s in client.beta.sessions.list(statuses=["running"])] == [session_id]
    # ... and archive/delete are refused exactly as while really running.
    with pytest.raises(anthropic.BadRequestError, match="while it is running; interrupt it first"):
        client.beta.sessions.archive(session_id)
    with pytest.raises(anthropic.BadRequestError, match="while it is running"):
        client.beta.sessions.delete(session_id)
    wait_for(lambda: client.beta.sessions.retrieve(session_id).status == "idle", "the status to catch up")
    assert client.beta.sessions.archive(session_id).archived_at is not None


# -- status_leads_idle ---------------------------------------------------------------------


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(status_leads_idle=0.6)])
def test_status_leads_idle_says_idle_before_the_idle_event(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, message("hello"))
        before = read_until(stream, lambda e: e.type == "session.usage")
        session = wait_for(
            lambda: (s := client.beta.sessions.retrieve(session_id)).status == "idle" and s,
            "retrieve to say idle",
        )
        (idle,) = read_until(stream, is_idle)
    # The status changed well before the idle event was emitted...
    assert (idle.processed_at - session.updated_at).total_seconds() >= 0.5
    # ... and the event order is unchanged, on the stream and in the history.
    assert types_of([e.model_dump() for e in [*before, idle]]) == STREAMED_TURN
    assert [e["id"] for e in history(client, session_id)] == [e.id for e in [*before, idle][1:]]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(status_leads_idle=30.0)])
def test_status_leads_idle_emits_the_idle_before_any_later_event(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    with client.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, message("first"))
        first = read_until(stream, lambda e: e.type == "session.usage")
        wait_for(lambda: client.beta.sessions.retrieve(session_id).status == "idle", "retrieve to say idle")
        (second,) = send(client, session_id, message("second"))
        after = read_until(stream, lambda e: e.type == "agent.message")
    # The held-back idle comes out first, before the next message's echo: order is kept.
    assert [e.type for e in after[:3]] == ["session.status_idle", "user.message", "session.status_running"]
    assert after[1].id == second["id"]
    assert [e.type for e in first] == STREAMED_TURN[:-1]
    listed = types_of(history(client, session_id))
    assert listed[: len(STREAMED_TURN) - 1] == STREAMED_TURN[1:]


# -- stream faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(faults=FaultConfig(close_stream_after_idle_rate=1.0))]
)
def test_close_stream_after_idle_ends_the_sdk_stream_cleanly(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    patient = client.with_options(timeout=httpx2.Timeout(10.0))  # a hang would fail, not block
    with patient.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, message("hello"))
        received = [event.type for event in stream]  # ends by itself, no exception
    assert received == STREAMED_TURN
    assert injected(emulator) == ["close_after_idle"]


@pytest.mark.parametrize(
    "emulator_config",
    [
        EmulatorConfig(
            ping_interval=0.1, faults=FaultConfig(silent_stream_rate=1.0, silent_stream_after_events=2)
        )
    ],
)
def test_silent_stream_is_only_noticed_by_the_clients_read_timeout(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session_id = make_session(client)["id"]
    received = []
    impatient = client.with_options(timeout=httpx2.Timeout(10.0, read=1.0))  # 10 ping intervals
    with impatient.beta.sessions.events.stream(session_id) as stream:
        send(client, session_id, message("hello"))
        with pytest.raises((httpx2.ReadTimeout, anthropic.APITimeoutError)):
            for event in stream:
                received.append(event.type)
                if event.type == "session.status_idle":
                    break  # not silent after all: fail ("did not raise") rather than hang
    assert received == ["user.message", "session.status_running"]
    # The turn went on regardless: a new connection and the history see it.
    wait_for(lambda: client.beta.sessions.retrieve(session_id).status == "idle", "the turn to end")
    assert types_of(history(client, session_id)) == STREAMED_TURN[1:]
    assert "silent_stream" in injected(emulator)


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(faults=FaultConfig(stream_open_429_rate=1.0, retry_after_seconds=2))]
)
def test_stream_open_429_carries_retry_after(client: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    session_id = make_session(client)["id"]
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.with_options(max_retries=0).beta.sessions.events.stream(session_id)
    error: Any = caught.value
    assert error.status_code == 429
    assert error.body["error"]["type"] == "rate_limit_error"
    assert error.response.headers["retry-after"] == "2"
    assert history(client, session_id) == []  # other requests are untouched
    assert injected(emulator) == ["stream_429"]


# -- profiles ------------------------------------------------------------------------------


def test_profiles() -> None:
    assert EmulatorConfig.profile("instant") == EmulatorConfig()
    realistic = EmulatorConfig.profile("realistic")
    expected = {k: v for k, v in REALISTIC_PROFILE.items() if k != "faults"}
    assert realistic.model_dump(include=set(expected)) == expected
    assert (
        realistic.faults.model_dump(include=set(REALISTIC_PROFILE["faults"])) == REALISTIC_PROFILE["faults"]
    )
    # Every realism knob is on.
    assert realistic.history_lag > 0 and realistic.output_indexing_window > 0
    assert realistic.post_idle_running > 0 and realistic.status_leads_idle > 0
    assert realistic.queued_events_position == "mixed"
    faults = realistic.faults
    assert faults.close_stream_after_idle_rate > 0 and faults.silent_stream_rate > 0
    assert faults.stream_open_429_rate > 0
    # scale multiplies durations only; overrides win.
    fast = EmulatorConfig.profile("realistic", scale=0.1, post_idle_running=0.5, faults={"seed": 9})
    assert (fast.history_lag, fast.output_listing_delay, fast.output_indexing_window) == (0.2, 0.1, 0.2)
    assert (fast.status_leads_idle, fast.ping_interval, fast.faults.retry_after_seconds) == (0.03, 1.5, 0.1)
    assert fast.post_idle_running == 0.5
    assert fast.faults.seed == 9
    assert fast.faults.silent_stream_after_events == 3 and fast.faults.stream_open_429_rate == 0.1
    assert fast.faults.close_stream_after_idle_rate == 0.25 and fast.faults.silent_stream_rate == 0.05
    with pytest.raises(ValueError, match="scale"):
        EmulatorConfig.profile("realistic", scale=0)


def test_cli_profile_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[EmulatorConfig] = []

    def fake_run(app: Any, **_: Any) -> None:
        served.append(app.state.emulator.config)
        app.state.emulator.close()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["emulator"])
    assert result.exit_code == 0, result.output
    assert served.pop() == EmulatorConfig()
    args = [
        "emulator",
        "--profile",
        "realistic",
        "--profile-scale",
        "0.5",
        "--history-lag",
        "9",
        "--seed",
        "3",
    ]
    args += ["--silent-stream-after", "7", "--stream-open-429-rate", "0.5"]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    config = served.pop()
    assert config.history_lag == 9  # explicit options win over the profile
    assert (config.output_listing_delay, config.post_idle_running, config.ping_interval) == (0.5, 0.75, 7.5)
    assert config.queued_events_position == "mixed"
    assert (config.faults.seed, config.faults.silent_stream_after_events) == (3, 7)
    assert (config.faults.stream_open_429_rate, config.faults.retry_after_seconds) == (0.5, 0.5)
    assert config.faults.close_stream_after_idle_rate == 0.25
    args = ["emulator", "--output-indexing-window", "2", "--queued-events-position", "last"]
    args += [
        "--status-leads-idle",
        "0.2",
        "--close-stream-after-idle-rate",
        "1",
        "--silent-stream-rate",
        "0.5",
    ]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    config = served.pop()
    assert (config.output_indexing_window, config.queued_events_position, config.status_leads_idle) == (
        2,
        "last",
        0.2,
    )
    assert (config.faults.close_stream_after_idle_rate, config.faults.silent_stream_rate) == (1, 0.5)
    assert config.history_lag == 0 and config.post_idle_running == 0
