"""Where our time goes: one ``run_agent_session`` under cProfile, with its task-run timeline.

Usage (starts its own emulator and Prefect server, like the benchmark)::

    uv run python -m tests.benchmarks.profiling [--seconds 2] [--top 30]

Prints every log record of the run with its offset from the call (a phase timeline) and
the functions with the most cumulative time (main thread).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emulator import EmulatorProcess
from tests.prefect_server import PrefectServerProcess

from .bench import API_KEY, REPO_ROOT, run_worker
from .scenarios import SingleParams, Target, write_input_file
from .servers import INSTANT_RUNTIME


class _LogTimeline(logging.Handler):
    """Collects every log record with its offset from ``origin`` (a ``perf_counter`` value)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.origin = time.perf_counter()
        self.records: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's offset, logger name and message."""
        self.records.append((time.perf_counter() - self.origin, record.name, record.getMessage()))


def profile_session(target: Target, seconds: float, top: int, scratch: Path) -> str:
    """Run one session under cProfile (in this process) and describe where time went."""
    from flows.session import run_agent_session

    params = SingleParams(session_seconds=seconds)
    input_path = write_input_file(scratch / "inputs", params.input_bytes, "profile")
    timeline = _LogTimeline()
    logging.getLogger().addHandler(timeline)
    logging.getLogger().setLevel(logging.INFO)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    timeline.origin = started
    profiler.enable()
    state: Any = run_agent_session(
        agent=target.block_name,
        prompt=params.prompt(),
        files=[str(input_path)],
        output_dir=str(scratch / "out"),
        return_state=True,
    )
    profiler.disable()
    wall = time.perf_counter() - started
    logging.getLogger().removeHandler(timeline)
    lines = [f"wall {wall:.2f}s for a {seconds:g}s scripted session; flow state {state.name}", ""]
    lines.append("log timeline (seconds from the call, logger, message):")
    lines += [
        f"  {offset:7.3f}s  {name[:28]:28}  {message[:110]}" for offset, name, message in timeline.records
    ]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    lines += ["", out.getvalue()]
    return "\n".join(lines)


def profile_fanout(target: Target, sessions: int, concurrency: int, top: int, scratch: Path) -> str:
    """Run ``run_agent_batch`` (async, so on this thread) under cProfile; list the hottest functions."""
    from .ours import fan_out
    from .scenarios import FanOutParams

    params = FanOutParams(sessions=sessions, session_seconds=2.0, concurrency=concurrency)
    profiler = cProfile.Profile()
    started, cpu_started = time.perf_counter(), time.process_time()
    profiler.enable()
    figures = asyncio.run(fan_out(target, params, scratch / "fanout"))
    profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(
        r"main/(flows|tasks|blocks)/|prefect/(concurrency|flow_engine|task_engine)", top
    )
    head = f"fan-out {figures}: wall {wall:.2f}s, CPU {cpu:.2f}s ({cpu / sessions:.2f}s per session)"
    return head + "\n" + out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Start the servers, deploy the agent, profile one session, print the findings."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.profiling")
    parser.add_argument("--seconds", type=float, default=2.0, help="Length of the scripted session.")
    parser.add_argument("--top", type=int, default=30, help="Functions to list.")
    parser.add_argument(
        "--fanout", type=int, default=0, help="Profile run_agent_batch over N sessions instead."
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pma-profile-") as scratch_name:
        scratch = Path(scratch_name)
        with (
            EmulatorProcess(["--api-key", API_KEY]) as emu,
            PrefectServerProcess(log_path=scratch / "prefect.log") as prefect_server,
        ):
            env = {**os.environ, **prefect_server.env, **INSTANT_RUNTIME, "PYTHONPATH": str(REPO_ROOT)}
            setup = {"kind": "setup", "base_url": emu.url, "api_key": API_KEY, "block_name": "profile-agent"}
            target = run_worker(setup, env)
            # The profile itself runs in a child too, so it talks to this Prefect server.
            code = (
                "import json, sys, pathlib\n"
                "from tests.benchmarks.profiling import profile_fanout, profile_session\n"
                "from tests.benchmarks.scenarios import Target\n"
                "t = Target(**json.loads(sys.argv[1]))\n"
                "n = int(sys.argv[5])\n"
                "if n:\n"
                "    print(profile_fanout(t, n, max(1, n // 2), int(sys.argv[3]), pathlib.Path(sys.argv[4])))\n"
                "else:\n"
                "    print(profile_session(t, float(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4])))\n"
            )
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    code,
                    json.dumps(target),
                    str(args.seconds),
                    str(args.top),
                    str(scratch),
                    str(args.fanout),
                ],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            print(proc.stdout)
            if proc.returncode:
                print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
