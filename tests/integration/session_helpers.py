"""Helpers shared by the session-engine integration tests: a real agent and environment."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anthropic

from emulator import scenario_prompt

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteAgent:
    """An agent and environment created on the emulator through the SDK."""

    agent_id: str
    version: int
    environment_id: str

    def reference(self) -> dict[str, Any]:
        """The pinned ``agent`` parameter of ``sessions.create``."""
        return {"type": "agent", "id": self.agent_id, "version": self.version}


def create_remote_agent(client: anthropic.Anthropic, *, ask_tools: tuple[str, ...] = ()) -> RemoteAgent:
    """Create an agent (optionally with always_ask tools) and an environment."""
    configs = [{"name": name, "permission_policy": {"type": "always_ask"}} for name in ask_tools]
    agent = client.beta.agents.create(
        name=f"engine-test-{uuid.uuid4().hex[:8]}",
        model="claude-opus-4-8",
        system="You test the session engine.",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "default_config": {"enabled": True, "permission_policy": {"type": "always_allow"}},
                "configs": configs,  # type: ignore[typeddict-item]
            }
        ],
    )
    env = client.beta.environments.create(
        name=f"engine-env-{uuid.uuid4().hex[:8]}",
        config={"type": "cloud", "networking": {"type": "unrestricted"}},
    )
    return RemoteAgent(agent.id, agent.version, env.id)


def start_session(client: anthropic.Anthropic, agent: RemoteAgent) -> str:
    """A new session of ``agent`` (no prompt sent yet); its id."""
    return client.beta.sessions.create(agent=agent.reference(), environment_id=agent.environment_id).id  # type: ignore[arg-type]


def scenario(**keys: Any) -> str:
    """A test-mode prompt for the emulator's scripted agent (see emulator/SCENARIOS.md)."""
    return scenario_prompt(**keys)


def message(text: str) -> dict[str, Any]:
    """A ``user.message`` event param."""
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def settled(client: anthropic.Anthropic) -> anthropic.Anthropic:
    """Wait until the emulator's lags and races are over (its history, status and file lists
    are then the server's truth), and return the client: ``settled(client).beta...``."""
    from emulator import ControlClient

    assert ControlClient(str(client.base_url)).settle(), "the emulator did not settle in 10 s"
    return client


def history_ids(client: anthropic.Anthropic, session_id: str) -> list[str]:
    """Every persisted event id of a session, in history order (once the emulator has settled)."""
    return [e.id for e in settled(client).beta.sessions.events.list(session_id, limit=1000)]


def save_agent_block(
    remote: RemoteAgent,
    base_url: str,
    api_key: str,
    *,
    verbosity: Literal["summary", "tools", "full"] = "full",
) -> str:
    """Save a ``ManagedAgent`` block for ``remote`` on the current Prefect server; return its name."""
    name = f"engine-test-{uuid.uuid4().hex[:10]}"
    agent_block(remote, base_url, api_key, log_verbosity=verbosity).save(name, _sync=True)  # type: ignore[call-arg]
    return name


def agent_block(
    remote: RemoteAgent, base_url: str, api_key: str, *, agent_name: str = "engine-test", **fields: Any
) -> ManagedAgent:
    """An unsaved ``ManagedAgent`` block for ``remote`` (``fields``: any other block field)."""
    from blocks.agent import ManagedAgent
    from blocks.credentials import AnthropicCredentials

    return ManagedAgent(
        credentials=AnthropicCredentials(api_key=api_key, base_url=base_url),
        agent_id=remote.agent_id,
        version=remote.version,
        environment_id=remote.environment_id,
        agent_name=agent_name,
        **fields,
    )


def session_creates(requests: list[dict[str, Any]]) -> int:
    """How many ``POST /v1/sessions`` the emulator answered or committed."""
    return sum(1 for r in requests if r["method"] == "POST" and r["path"] == "/v1/sessions")


async def eventually(read: Callable[[], Awaitable[T | None]], what: str, within: float = 30.0) -> T:
    """What ``read`` returns once it is not None or empty, read every 0.2 s; fails after
    ``within`` seconds. For what the Prefect server records asynchronously: events, logs, and
    task runs (written from the engine's events by the server's task-run recorder)."""
    deadline = time.monotonic() + within
    while True:
        found = await read()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not seen within {within} s"
        await asyncio.sleep(0.2)


async def wait_for_event(event: str, resource_id: str, within: float = 30.0) -> Any:
    """The first Prefect event ``event`` about ``resource_id``, waited for (events are sent by a
    background worker and persisted asynchronously); fails after ``within`` seconds."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    async with get_client() as prefect:

        async def read() -> Any:
            page = await prefect.read_events(
                EventFilter(
                    event=EventNameFilter(name=[event]), resource=EventResourceFilter(id=[resource_id])
                ),
                limit=5,
            )
            return page.events[0] if page.events else None

        return await eventually(read, f"{event} about {resource_id}", within)


async def wait_for_log(flow_run_id: Any, needle: str, within: float = 30.0) -> str:
    """The first log line of a flow run that holds ``needle``, waited for (Prefect ships logs in
    batches); fails after ``within`` seconds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as prefect:

        async def read() -> str | None:
            logs = await prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            return next((log.message for log in logs if needle in log.message), None)

        return await eventually(read, f"a log line with {needle!r}", within)


async def wait_for_task_run(task_run_id: Any, within: float = 30.0) -> Any:
    """A task run as the server recorded it, waited for: the server writes task runs from the
    engine's events, so one can be missing for a while after its flow run has finished."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as prefect:

        async def read() -> Any:
            try:
                return await prefect.read_task_run(uuid.UUID(str(task_run_id)))
            except ObjectNotFound:
                return None

        return await eventually(read, f"task run {task_run_id}", within)
