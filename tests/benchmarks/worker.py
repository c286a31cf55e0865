"""One measurement in a fresh process: ``python -m tests.benchmarks.worker JOB_JSON``.

A fresh process per measurement keeps one side's memory and warm caches from leaking into the
other's figures. Everything the measured code needs is imported and prepared before the clock
starts; the peak-RSS counter is reset right before it. The figures are printed as one
``BENCH-RESULT {json}`` line on stdout.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import ours, raw, traffic
from .memory import current_rss_mib, peak_rss_mib, reset_peak_rss
from .scenarios import FanOutParams, SingleParams, Target, write_input_file

if TYPE_CHECKING:
    from flows.batch import ItemRuns

RESULT_PREFIX = "BENCH-RESULT "


def measure(operation: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``operation`` once; add wall and CPU time, RSS before, peak RSS and peak growth (MiB),
    and the Prefect API requests and events it made (drained after the clock stops)."""
    traffic.install()
    traffic_before = traffic.snapshot()
    gc.collect()
    peak_reset = reset_peak_rss()
    before = current_rss_mib()
    cpu_started = time.process_time()
    started = time.perf_counter()
    figures = operation()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = peak_rss_mib()
    traffic_after = traffic.snapshot(drain=True)
    return {
        **figures,
        **{key: traffic_after[key] - traffic_before[key] for key in traffic_after},
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "rss_growth_mib": max(0.0, peak - before),
        "peak_reset": peak_reset,
    }


def _single(job: dict[str, Any], target: Target, workdir: Path) -> dict[str, Any]:
    params = SingleParams(**job["params"])
    input_path = write_input_file(workdir / "inputs", params.input_bytes, f"{job['side']}-{job['rep']}")
    out = workdir / "outputs"
    if job["side"] == "raw":

        def op() -> dict[str, Any]:
            with raw.sync_client(target) as client:
                return raw.run_session(client, target, params.prompt(), input_path, out)

        return measure(op)
    twin = "async" if job.get("twin") == "async" else "sync"
    return measure(lambda: ours.run_session(target, params.prompt(), input_path, out, twin=twin))


def _fanout(job: dict[str, Any], target: Target, workdir: Path) -> dict[str, Any]:
    params = FanOutParams(**job["params"])
    if job["side"] == "raw":
        return measure(lambda: asyncio.run(raw.fan_out(target, params, workdir / "outputs")))
    item_runs = cast("ItemRuns", job.get("item_runs", "task"))
    if item_runs not in ("flow", "task", "auto"):
        raise ValueError(f"unknown item_runs {item_runs!r}")
    return measure(lambda: asyncio.run(ours.fan_out(target, params, workdir / "outputs", item_runs)))


def _events(job: dict[str, Any], target: Target, workdir: Path) -> dict[str, Any]:
    prompt = str(job["prompt"])

    async def main() -> dict[str, Any]:
        async with raw.async_client(target) as client:
            session = await client.beta.sessions.create(
                agent=target.agent_reference(),  # type: ignore[arg-type]
                environment_id=target.environment_id,
            )

            async def op() -> dict[str, Any]:
                if job["side"] == "raw":
                    return await raw.stream_events(client, session.id, prompt)
                return await ours.stream_events(
                    client, session.id, prompt, job["verbosity"], workdir / "stream.log"
                )

            # Measure inside the loop, around the stream only (session creation is setup).
            gc.collect()
            reset_peak_rss()
            before = current_rss_mib()
            cpu_started = time.process_time()
            figures = await op()
            cpu = time.process_time() - cpu_started
            peak = peak_rss_mib()
            # The emulator keeps every event in memory and slows down as its heap grows (its
            # garbage collector walks it): deleting the session gives each measurement, on
            # either side, an emulator in the same state.
            await client.beta.sessions.delete(session.id)
            return {
                **figures,
                "cpu_seconds": cpu,
                "cpu_ms_per_1000_events": cpu * 1e6 / figures["events"],
                "rss_before_mib": before,
                "peak_rss_mib": peak,
                "rss_growth_mib": peak - before,
            }

    return asyncio.run(main())


def _large(job: dict[str, Any], target: Target, workdir: Path) -> dict[str, Any]:
    out = workdir / "outputs"
    if job["side"] == "raw":

        def op() -> dict[str, Any]:
            with raw.sync_client(target) as client:
                return raw.download_file(client, job["file_id"], int(job["size_bytes"]), out)

        return measure(op)

    async def download() -> dict[str, Any]:
        async with raw.async_client(target) as client:
            return await ours.download_outputs(client, job["session_id"], out)

    return measure(lambda: asyncio.run(download()))


def _setup(job: dict[str, Any]) -> dict[str, Any]:
    target = ours.deploy(job["base_url"], job["api_key"], job["block_name"])
    return target.as_dict()


def _economy(job: dict[str, Any], target: Target, workdir: Path) -> dict[str, Any]:
    """One simple session on one side (the parent counts requests around it)."""
    input_path = Path(job["input_path"])
    out = workdir / "outputs"
    if job["side"] == "raw":
        with raw.sync_client(target) as client:
            return raw.run_session(client, target, job["prompt"], input_path, out)
    return ours.run_session(target, job["prompt"], input_path, out)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Dispatch one job (``kind`` setup, or a scenario name with a ``side``)."""
    if job["kind"] == "setup":
        return _setup(job)
    target = Target(**job["target"])
    with tempfile.TemporaryDirectory(prefix="pma-bench-", dir=job.get("scratch")) as scratch:
        workdir = Path(scratch)
        handlers = {
            "single": _single,
            "fanout": _fanout,
            "events": _events,
            "large": _large,
            "economy": _economy,
        }
        return handlers[job["kind"]](job, target, workdir)


def main() -> None:
    """Read the job from argv[1] (JSON), run it, print the result line."""
    job = json.loads(sys.argv[1])
    result = run_job(job)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
