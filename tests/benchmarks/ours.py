"""Our side of each scenario: the flows and blocks, called the way a user calls them."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic
import anyio
from pydantic import SecretStr

import flows
from blocks.credentials import AnthropicCredentials
from flows.batch import arun_agent_batch
from flows.session import arun_agent_session, run_agent_session
from managed_agents_core.batch_items import BatchItem, BatchResult
from managed_agents_core.lifecycle import LoggingObserver, Verbosity
from managed_agents_core.outputs import acollect_session_outputs
from managed_agents_core.session_stream import SessionStream
from managed_agents_core.turn import TurnRequest

from .scenarios import FanOutParams, Target, user_message

if TYPE_CHECKING:
    from flows.batch import ItemRuns

EXAMPLE_SPEC = Path(flows.__file__).parent / "specs" / "example-agent.yaml"
"""The spec every benchmark deploys (the quickstart's report writer)."""
INLINE_ITEMS = 500
"""Most batch items passed inline; a bigger batch is passed as a JSONL file."""


def credentials(base_url: str, api_key: str) -> AnthropicCredentials:
    """Credentials for the emulator."""
    return AnthropicCredentials(api_key=SecretStr(api_key), base_url=base_url)


def deploy(base_url: str, api_key: str, block_name: str, spec: Path = EXAMPLE_SPEC) -> Target:
    """Run the ``deploy_agent`` setup flow and return the target it pinned."""
    from flows.setup import deploy_agent

    block = deploy_agent(spec, block_name, credentials=credentials(base_url, api_key))
    return Target(
        base_url=base_url,
        api_key=api_key,
        agent_id=block.agent_id,
        agent_version=block.version,
        environment_id=block.environment_id,
        block_name=block_name,
    )


def run_session(
    target: Target, prompt: str, input_path: Path | None, output_dir: Path, *, twin: str = "sync"
) -> dict[str, Any]:
    """``run_agent_session`` (or its async twin) with the saved block, one input file and an
    output folder."""
    kwargs: dict[str, Any] = {
        "agent": target.block_name,
        "prompt": prompt,
        "files": [str(input_path)] if input_path is not None else None,
        "output_dir": str(output_dir),
    }
    result = asyncio.run(arun_agent_session(**kwargs)) if twin == "async" else run_agent_session(**kwargs)
    return {
        "session_id": result.session_id,
        "events": result.event_count,
        "outputs": len(result.output_files),
        "output_bytes": sum(f.size_bytes for f in result.output_files),
    }


async def fan_out(
    target: Target, params: FanOutParams, output_dir: Path, item_runs: ItemRuns = "task"
) -> dict[str, Any]:
    """``run_agent_batch`` over ``params.sessions`` items at ``params.concurrency``.

    Up to :data:`INLINE_ITEMS` items go inline, as a user passes a few; more go as a JSONL file
    (a flow run's parameters must stay under Prefect's 512 KiB, which 2,000 inline items pass).
    """
    items = [BatchItem(prompt=params.prompt(i), key=f"item-{i}") for i in range(params.sessions)]
    given: list[BatchItem | str] | str = list(items)
    if len(items) > INLINE_ITEMS:
        path = output_dir.parent / "items.jsonl"
        path.write_text("".join(item.model_dump_json(exclude_defaults=True) + "\n" for item in items))
        given = str(path)
    outcome: Any = await arun_agent_batch(
        agent=target.block_name,
        items=given,
        max_concurrency=params.concurrency,
        output_dir=str(output_dir),
        concurrency_limit_name=f"bench-{uuid.uuid4().hex[:8]}",
        item_runs=item_runs,
    )
    result = await outcome.aresult() if hasattr(outcome, "aresult") else outcome
    assert isinstance(result, BatchResult)
    errors: dict[str, int] = {}
    for item in result.failed:
        key = f"{item.error_type}: {(item.error or '')[:80]}"
        errors[key] = errors.get(key, 0) + 1
    return {"sessions": params.sessions, "completed": len(result.completed), "errors": errors}


def _file_logger(path: Path) -> logging.Logger:
    """A logger writing to a file, standing in for the run logger (no Prefect API in the loop)."""
    logger = logging.getLogger(f"bench.stream.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


async def stream_events(
    client: anthropic.AsyncAnthropic, session_id: str, prompt: str, verbosity: Verbosity, log_path: Path
) -> dict[str, Any]:
    """Our streaming engine (``SessionStream`` + ``LoggingObserver``) over one turn.

    Returns:
        ``{"events", "stream_seconds", "events_per_second", "reconnects", "log_lines"}``.
    """
    logger = _file_logger(log_path)
    started = time.perf_counter()
    engine = SessionStream(
        client,
        session_id,
        TurnRequest(kickoff=[user_message(prompt)]),
        observer=LoggingObserver(logger, verbosity, session_id),
    )
    end = await engine.run()
    elapsed = time.perf_counter() - started
    for handler in logger.handlers:
        handler.close()
    if end.kind != "idle":
        raise RuntimeError(f"stream ended with {end.kind}, not idle")
    events = engine.transcript.event_count
    with log_path.open("rb") as fh:
        lines = sum(1 for _ in fh)
    return {
        "events": events,
        "stream_seconds": elapsed,
        "events_per_second": events / elapsed,
        "reconnects": engine.stats.reconnects,
        "log_lines": lines,
    }


async def download_outputs(
    client: anthropic.AsyncAnthropic, session_id: str, output_dir: Path
) -> dict[str, Any]:
    """``acollect_session_outputs``: what the ``collect-outputs`` task runs (streamed, hashed, atomic)."""
    started = time.perf_counter()
    outputs = await acollect_session_outputs(client, session_id, output_dir)
    elapsed = time.perf_counter() - started
    written = 0
    for out in outputs:
        written += (await anyio.Path(out.path).stat()).st_size
        await anyio.Path(out.path).unlink()
    return {"bytes": written, "download_seconds": elapsed, "mib_per_second": written / elapsed / 1024**2}
