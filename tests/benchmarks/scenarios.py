"""What each benchmark scenario asks of the emulator's scripted agent, in full and quick sizes.

Both sides of a scenario (ours and the raw SDK) get the same :class:`Target` (emulator URL, key,
agent) and the same parameters, so they do the same API work against the same emulator.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANAGED_AGENTS_BETA = "managed-agents-2026-04-01"


@dataclass(frozen=True)
class Target:
    """Where and as whom a measurement runs.

    Attributes:
        base_url: The emulator's base URL.
        api_key: The API key the emulator accepts.
        agent_id: The agent every session runs.
        agent_version: The pinned agent version.
        environment_id: The environment every session runs in.
        block_name: The saved ``ManagedAgent`` block (ours), pinned to the same agent.
    """

    base_url: str
    api_key: str
    agent_id: str
    agent_version: int
    environment_id: str
    block_name: str

    def agent_reference(self) -> dict[str, Any]:
        """The pinned ``agent`` parameter of ``sessions.create``."""
        return {"type": "agent", "id": self.agent_id, "version": self.agent_version}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, to hand to a worker process."""
        return asdict(self)


@dataclass(frozen=True)
class SingleParams:
    """One scripted session with one input and one output file."""

    session_seconds: float
    input_bytes: int = 256 * 1024
    output_bytes: int = 1024 * 1024
    repeats: int = 5

    def prompt(self) -> str:
        """A turn of ``session_seconds``: a run of messages spaced evenly, then one output."""
        count = max(1, round(self.session_seconds / 0.5))
        return scripted(
            stream={"count": count, "delay": 0.5},
            outputs=[{"name": "result.bin", "size": self.output_bytes}],
        )


@dataclass(frozen=True)
class FanOutParams:
    """Many short sessions at once, each writing one small output file."""

    sessions: int
    session_seconds: float
    concurrency: int
    output_bytes: int = 4096
    repeats: int = 3
    flow_repeats: int = 1
    """Runs with ``item_runs="flow"`` (reported beside the task-run mode the target is for)."""

    def prompt(self, index: int) -> str:
        """A turn of ``session_seconds`` writing one small output."""
        count = max(1, round(self.session_seconds / 0.5))
        return scripted(
            reply=f"item {index} done",
            stream={"count": count, "delay": 0.5},
            outputs=[{"name": f"item-{index}.txt", "size": self.output_bytes, "seed": index}],
        )


@dataclass(frozen=True)
class EventsParams:
    """One session emitting many events with no delay."""

    events: int
    repeats: int = 3
    verbosities: tuple[str, ...] = ("summary", "tools", "full")

    def prompt(self) -> str:
        """A turn of ``events`` agent messages back to back."""
        return scripted(stream={"count": self.events, "type": "agent.message", "delay": 0})


@dataclass(frozen=True)
class LargeOutputParams:
    """One session with one large generated output file."""

    size_bytes: int
    repeats: int = 3

    def prompt(self) -> str:
        """A turn writing one output of ``size_bytes``."""
        return scripted(outputs=[{"name": "large.bin", "size": self.size_bytes, "seed": 7}])


@dataclass(frozen=True)
class EconomyParams:
    """A simple session (one input, one output) whose requests are counted."""

    input_bytes: int = 4096

    def prompt(self) -> str:
        """A short turn writing one small output."""
        return scripted(reply="economy", outputs=[{"name": "economy.txt", "size": 2048}])


@dataclass(frozen=True)
class Plan:
    """The sizes of one benchmark run."""

    single: SingleParams
    fanout: FanOutParams
    events: EventsParams
    large: LargeOutputParams
    economy: EconomyParams = field(default_factory=EconomyParams)
    scale: FanOutParams | None = None
    """Thousands of short sessions in the default batch mode (full run only)."""
    postgres: FanOutParams | None = None
    """The fan-out, both item modes, against a Postgres-backed Prefect server beside the
    SQLite-backed one (full run only)."""


FULL = Plan(
    single=SingleParams(session_seconds=10.0, repeats=5),
    fanout=FanOutParams(sessions=200, session_seconds=5.0, concurrency=50, repeats=3),
    events=EventsParams(events=20_000, repeats=5),
    large=LargeOutputParams(size_bytes=1024**3, repeats=3),
    scale=FanOutParams(sessions=2000, session_seconds=2.0, concurrency=200, repeats=1, flow_repeats=0),
    postgres=FanOutParams(sessions=200, session_seconds=5.0, concurrency=50, repeats=1, flow_repeats=1),
)
"""The sizes the targets are stated for."""

QUICK = Plan(
    single=SingleParams(session_seconds=2.0, repeats=3),
    fanout=FanOutParams(sessions=20, session_seconds=2.0, concurrency=10, repeats=2),
    events=EventsParams(events=5_000, repeats=2),
    large=LargeOutputParams(size_bytes=128 * 1024**2, repeats=2),
)
"""A few-minute smoke run of the same scenarios (CI)."""


def scripted(**keys: Any) -> str:
    """A test-mode prompt for the emulator's scripted agent (see ``emulator/SCENARIOS.md``).

    ``emulator.scenario_prompt`` written out: importing the emulator package would load FastAPI
    and uvicorn into the worker processes whose memory the benchmark measures.
    """
    return "#emulator " + json.dumps(keys)


def user_message(text: str) -> dict[str, Any]:
    """A ``user.message`` event param."""
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def write_input_file(folder: Path, size: int, tag: str) -> Path:
    """Write a fresh input file of ``size`` bytes whose content is unique to ``tag``.

    Unique content keeps our upload dedupe from skipping work the raw side does.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input-{tag}.csv"
    head = f"tag,{tag}\n".encode()
    path.write_bytes(head + os.urandom(max(0, size - len(head))))
    return path
