"""``managed-agents sessions``: look at an agent's sessions without opening the Console.

Every command takes the ``ManagedAgent`` block (``--agent``): its credentials reach the API,
and its agent scopes the listing and guards ``archive``. Reads only, except ``archive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import anthropic
import typer
from anthropic.types.beta import BetaFileMetadata, BetaManagedAgentsSession

from managed_agents.output import JsonOption, print_fields, print_json, print_table, typed_errors
from managed_agents_core.exceptions import SessionNotAttachableError
from managed_agents_core.keys import FLOW_RUN_KEY, read_key
from managed_agents_core.lifecycle import ainterrupt_and_archive
from managed_agents_core.outputs import MANAGED_AGENTS_BETA, session_input_copy_ids
from managed_agents_core.results import ThreadSummary, UsageSummary, cost_text
from managed_agents_core.retry_policy import unreachable_error
from managed_agents_core.threads import reconcile_threads
from managed_agents_core.transcript import Transcript

if TYPE_CHECKING:
    from blocks.agent import ManagedAgent

app = typer.Typer(
    no_args_is_help=True,
    help="Look at an agent's sessions without opening the Console: list, show, transcript, archive.",
)


class Status(StrEnum):
    """A session's status."""

    idle = "idle"
    running = "running"
    rescheduling = "rescheduling"
    terminated = "terminated"


AgentOption = Annotated[
    str, typer.Option("--agent", "-a", help="Name of the ManagedAgent block (its key and its agent).")
]
SessionArgument = Annotated[str, typer.Argument(help="The session id (sesn_...).")]

_AGE = re.compile(r"^(\d+)([mhd])$")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_age(text: str) -> timedelta | None:
    """``30m``, ``12h``, ``7d`` as a timedelta; ``all`` as None.

    Raises:
        typer.BadParameter: Anything else.
    """
    if text == "all":
        return None
    match = _AGE.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: give minutes, hours or days (30m, 12h, 7d) or 'all'")
    return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


@contextlib.asynccontextmanager
async def api(block: ManagedAgent) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The block's async client; a connection failure becomes one error naming the API's origin."""
    try:
        async with block.credentials.get_async_client() as client:
            yield client
    except anthropic.APIConnectionError as exc:
        raise unreachable_error(exc, attempts=block.credentials.max_retries + 1) from None


def load_block(name: str) -> ManagedAgent:
    """The saved ``ManagedAgent`` block (Prefect is imported here, not when the CLI starts)."""
    from blocks.agent import require_agent_block

    return require_agent_block(name)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def session_record(session: BetaManagedAgentsSession, block: ManagedAgent) -> dict[str, Any]:
    """What a listing says about one session (the JSON form; the table shows a part)."""
    usage = UsageSummary.from_session_usage(session.usage)
    return {
        "id": session.id,
        "status": session.status,
        "title": session.title,
        "created_at": session.created_at,
        "archived_at": session.archived_at,
        "agent_version": session.agent.version,
        "cost_usd": usage.cost_usd,
        "flow_run_id": read_key(session.metadata, FLOW_RUN_KEY),
        "console_url": block.console_url(session.id),
    }


async def _owned(
    client: anthropic.AsyncAnthropic, block: ManagedAgent, session_id: str
) -> BetaManagedAgentsSession:
    """The session, if it was started from the block's agent."""
    session = await client.beta.sessions.retrieve(session_id)
    if session.agent.id != block.agent_id:
        raise SessionNotAttachableError(
            f"Session {session_id} runs agent {session.agent.id}, not {block.agent_id} of this block: "
            "name the block of its agent with --agent.",
            session_id=session_id,
            console_url=block.console_url(session_id),
        )
    return session


@app.command("ls")
@typed_errors
def list_sessions(
    agent: AgentOption,
    status: Annotated[
        list[Status] | None, typer.Option("--status", "-s", help="Only sessions in this status (repeatable).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="Only sessions created within this age: 30m, 12h, 7d, or 'all'.")
    ] = "7d",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    include_archived: Annotated[bool, typer.Option(help="List archived sessions too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the block's agent's sessions, newest first: status, title, age, cost, flow run."""
    block = load_block(agent)
    age = parse_age(since)

    async def read() -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"agent_id": block.agent_id, "include_archived": include_archived}
        if status:
            filters["statuses"] = [s.value for s in status]
        if age is not None:
            filters["created_at_gte"] = datetime.now(UTC) - age
        records: list[dict[str, Any]] = []
        async with api(block) as client:
            async for session in client.beta.sessions.list(limit=min(limit, 100), order="desc", **filters):
                records.append(session_record(session, block))
                if len(records) >= limit:
                    break
        return records

    records = asyncio.run(read())
    if as_json:
        print_json(records)
        return
    print_table(
        f"Sessions of agent {block.agent_name} ({block.agent_id}), {len(records)} shown",
        ("id", "status", "title", "created", "cost", "flow run"),
        [
            (
                r["id"] + (" (archived)" if r["archived_at"] else ""),
                r["status"],
                r["title"],
                _when(r["created_at"]),
                "-" if r["cost_usd"] is None else f"${r['cost_usd']:.2f}",
                r["flow_run_id"],
            )
            for r in records
        ],
    )


_THREAD_FIELDS = {"thread_id", "agent_name", "primary", "status", "usage"}
"""What ``sessions show --json`` says of each thread (the history's view; tasks are counted by a run)."""


@app.command("show")
@typed_errors
def show_session(session_id: SessionArgument, agent: AgentOption, as_json: JsonOption = False) -> None:
    """One session: status, usage and cost, its output files and its Console link."""
    block = load_block(agent)

    async def read() -> tuple[BetaManagedAgentsSession, list[BetaFileMetadata], list[ThreadSummary]]:
        async with api(block) as client:
            session = await _owned(client, block, session_id)
            inputs = await session_input_copy_ids(client, session_id)
            files = [
                f
                async for f in client.beta.files.list(
                    scope_id=session_id, limit=100, betas=[MANAGED_AGENTS_BETA]
                )
                if f.id not in inputs
            ]
            threads: list[ThreadSummary] = []
            if session.agent.multiagent is not None:  # only a coordinator's session has threads to show
                listed = [t async for t in client.beta.sessions.threads.list(session_id)]
                threads = reconcile_threads(listed, {})
        return session, files, threads

    session, files, threads = asyncio.run(read())
    usage = UsageSummary.from_session_usage(session.usage)
    record = {
        **session_record(session, block),
        "usage": usage.model_dump(mode="json"),
        "outputs": [{"id": f.id, "filename": f.filename, "size_bytes": f.size_bytes} for f in files],
        "threads": [t.model_dump(mode="json", include=_THREAD_FIELDS) for t in threads],
    }
    if as_json:
        print_json(record)
        return
    print_fields(
        f"Session {session.id}",
        {
            "status": session.status + (" (archived)" if record["archived_at"] else ""),
            "title": record["title"],
            "agent": f"{session.agent.name} v{session.agent.version}",
            "created": _when(session.created_at),
            "usage": f"{usage.input_tokens} input / {usage.output_tokens} output tokens",
            "cost": cost_text(usage),
            "flow run": record["flow_run_id"],
            "console": record["console_url"],
        },
    )
    print_table(
        f"Output files ({len(files)})",
        ("file", "bytes", "id"),
        [(f.filename, f.size_bytes, f.id) for f in files],
    )
    if threads:
        print_table(
            f"Agents ({len(threads)} threads)",
            ("agent", "thread", "status", "tokens in / out", "cost"),
            [
                (
                    t.agent_name + (" (coordinator)" if t.primary else ""),
                    t.thread_id,
                    t.status,
                    f"{t.usage.input_tokens} / {t.usage.output_tokens}" if t.usage else "-",
                    cost_text(t.usage),
                )
                for t in threads
            ],
        )


@app.command("transcript")
@typed_errors
def show_transcript(session_id: SessionArgument, agent: AgentOption, as_json: JsonOption = False) -> None:
    """The session's transcript from its history: messages, tool calls and results, errors."""
    block = load_block(agent)

    async def read() -> Transcript:
        transcript = Transcript()
        async with api(block) as client:
            await _owned(client, block, session_id)
            async for event in client.beta.sessions.events.list(session_id, limit=1000, order="asc"):
                transcript.add(event)
        return transcript

    transcript = asyncio.run(read())
    entries = [{"role": e.role, "text": e.text, "event_id": e.event_id} for e in transcript.entries]
    if as_json:
        print_json(entries)
        return
    for entry in entries:
        typer.echo(f"[{entry['role']}] {entry['text']}")
    if transcript.omitted_entries:
        typer.echo(f"... {transcript.omitted_entries} more entries not shown")
    typer.echo(f"{transcript.event_count} events, {cost_text(transcript.usage)}")


@app.command("archive")
@typed_errors
def archive_session(session_id: SessionArgument, agent: AgentOption, as_json: JsonOption = False) -> None:
    """Interrupt the session if it runs, then archive it (a session of another agent is refused)."""
    block = load_block(agent)

    async def archive() -> str:
        async with api(block) as client:
            await _owned(client, block, session_id)
            return await ainterrupt_and_archive(client, session_id)

    outcome = asyncio.run(archive())
    if as_json:
        print_json({"id": session_id, "outcome": outcome})
    else:
        typer.echo(f"Session {session_id}: {outcome}")
