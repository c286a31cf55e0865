"""The baseline: plain ``anthropic`` SDK code doing the same API work as our flows.

This is what a careful user would write without the integration: upload, create a pinned
session, open the stream, send the prompt, read until the turn ends, list and download the
outputs. No reconnects, no dedupe, no retries beyond the SDK's own, no Prefect.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from pathlib import Path
from typing import Any

import anthropic
import anyio

from .scenarios import MANAGED_AGENTS_BETA, FanOutParams, Target, user_message


def turn_ended(event: Any) -> bool:
    """The idle gate: an idle that is not ``requires_action``, or a terminal event."""
    kind = getattr(event, "type", "")
    if kind == "session.status_idle":
        return getattr(getattr(event, "stop_reason", None), "type", None) != "requires_action"
    return kind in ("session.status_terminated", "session.deleted")


def sync_client(target: Target) -> anthropic.Anthropic:
    """A sync SDK client on the target."""
    return anthropic.Anthropic(api_key=target.api_key, base_url=target.base_url)


def async_client(target: Target) -> anthropic.AsyncAnthropic:
    """An async SDK client on the target."""
    return anthropic.AsyncAnthropic(api_key=target.api_key, base_url=target.base_url)


def run_session(
    client: anthropic.Anthropic,
    target: Target,
    prompt: str,
    input_path: Path | None,
    output_dir: Path,
) -> dict[str, Any]:
    """One session, start to finish, with the sync SDK.

    Returns:
        ``{"session_id", "events", "outputs", "output_bytes"}``.
    """
    resources: list[dict[str, Any]] = []
    if input_path is not None:
        mime = mimetypes.guess_type(input_path.name)[0] or "application/octet-stream"
        with input_path.open("rb") as fh:
            meta = client.beta.files.upload(file=(input_path.name, fh, mime))
        resources.append(
            {"type": "file", "file_id": meta.id, "mount_path": f"/mnt/session/uploads/{meta.filename}"}
        )
    session = client.beta.sessions.create(
        agent=target.agent_reference(),  # type: ignore[arg-type]
        environment_id=target.environment_id,
        resources=resources,  # type: ignore[arg-type]
    )
    events = 0
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(session.id, events=[user_message(prompt)])  # type: ignore[list-item]
        for event in stream:
            events += 1
            if turn_ended(event):
                break
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = 0
    total = 0
    for meta in client.beta.files.list(scope_id=session.id, betas=[MANAGED_AGENTS_BETA]):
        with client.beta.files.with_streaming_response.download(meta.id) as response:
            response.stream_to_file(output_dir / Path(meta.filename).name)
        outputs += 1
        total += meta.size_bytes
    return {"session_id": session.id, "events": events, "outputs": outputs, "output_bytes": total}


async def arun_session(
    client: anthropic.AsyncAnthropic, target: Target, prompt: str, output_dir: Path
) -> int:
    """One session without inputs, with the async SDK; returns the number of outputs."""
    session = await client.beta.sessions.create(
        agent=target.agent_reference(),  # type: ignore[arg-type]
        environment_id=target.environment_id,
    )
    stream = await client.beta.sessions.events.stream(session.id)
    async with stream:
        await client.beta.sessions.events.send(session.id, events=[user_message(prompt)])  # type: ignore[list-item]
        async for event in stream:
            if turn_ended(event):
                break
    await anyio.Path(output_dir).mkdir(parents=True, exist_ok=True)
    outputs = 0
    async for meta in client.beta.files.list(scope_id=session.id, betas=[MANAGED_AGENTS_BETA]):
        async with client.beta.files.with_streaming_response.download(meta.id) as response:
            await response.stream_to_file(output_dir / Path(meta.filename).name)
        outputs += 1
    return outputs


async def fan_out(target: Target, params: FanOutParams, output_dir: Path) -> dict[str, Any]:
    """``params.sessions`` sessions, ``params.concurrency`` at a time, with one async client."""
    limit = asyncio.Semaphore(params.concurrency)

    async def one(index: int) -> int:
        async with limit:
            return await arun_session(client, target, params.prompt(index), output_dir / f"item-{index}")

    async with async_client(target) as client:
        results = await asyncio.gather(*(one(i) for i in range(params.sessions)), return_exceptions=True)
    completed = sum(1 for r in results if isinstance(r, int) and r >= 1)
    return {"sessions": params.sessions, "completed": completed}


async def stream_events(client: anthropic.AsyncAnthropic, session_id: str, prompt: str) -> dict[str, Any]:
    """Open the stream, send the prompt, read every event until the turn ends.

    Returns:
        ``{"events", "stream_seconds", "events_per_second"}``.
    """
    started = time.perf_counter()
    events = 0
    stream = await client.beta.sessions.events.stream(session_id)
    async with stream:
        await client.beta.sessions.events.send(session_id, events=[user_message(prompt)])  # type: ignore[list-item]
        async for event in stream:
            events += 1
            if turn_ended(event):
                break
    elapsed = time.perf_counter() - started
    return {"events": events, "stream_seconds": elapsed, "events_per_second": events / elapsed}


def download_file(client: anthropic.Anthropic, file_id: str, size: int, output_dir: Path) -> dict[str, Any]:
    """``files.with_streaming_response.download(...)`` then ``stream_to_file``: the SDK's own way to
    save a large file (its docstring says so: ``download(...).write_to_file`` reads the whole body
    into memory first)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "large.bin"
    started = time.perf_counter()
    with client.beta.files.with_streaming_response.download(file_id) as response:
        response.stream_to_file(path)
    elapsed = time.perf_counter() - started
    written = path.stat().st_size
    path.unlink()
    return {"bytes": written, "download_seconds": elapsed, "mib_per_second": written / elapsed / 1024**2}
