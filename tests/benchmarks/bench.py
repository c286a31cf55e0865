"""Benchmark our flows against a plain ``anthropic`` SDK script on the emulator.

Usage::

    uv run python -m tests.benchmarks.bench [--quick] [--json PATH] [--only single,events] [--profile DIR]

Each scenario runs on both sides in the same run against the same emulator, several times,
alternating which side goes first. Every measurement is a fresh worker process
(:mod:`tests.benchmarks.worker`); the emulator and the Prefect server run in their own
processes, so their CPU and memory are not counted against the client. On a 2-core machine the
three processes still share the cores, which weighs on both sides alike.

With ``--profile DIR`` every worker runs under ``py-spy record`` (a CPU profile per measurement,
in DIR; ``python -m tests.benchmarks.profiles DIR`` says where the time went). Sampling slows
the workers: take figures from a run without it.

Prints a Markdown table of medians, ratios ours/raw and peak RSS, and writes every sample
as JSON (default ``benchmark-results.json``, rewritten after each scenario). Exit status 0 even
when a target is missed (the table says which are); 1 when a scenario failed to run (the
others still run and are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import anthropic

from emulator import EmulatorProcess
from tests.postgres import PostgresProcess, postgres_bin
from tests.prefect_server import PrefectServerProcess

from .report import Report, Row, bound_row, median, medians, pick, ratio_row
from .scenarios import (
    FULL,
    MANAGED_AGENTS_BETA,
    QUICK,
    FanOutParams,
    Plan,
    Target,
    user_message,
    write_input_file,
)
from .servers import INSTANT_RUNTIME, process_tree_cpu_seconds
from .worker import RESULT_PREFIX

API_KEY = "sk-ant-bench-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("single", "fanout", "events", "large", "economy", "scale", "postgres")
MINIMUM_SIMPLE_SESSION_REQUESTS = (
    ("POST", "/v1/files"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/{id}/events/stream"),
    ("POST", "/v1/sessions/{id}/events"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/{id}/content"),
)
"""Upload, create, open the stream, send, list outputs, download the output."""
PAIRED_NOTE = "ratio: median over repetitions of ours/raw measured side by side"


class WorkerError(RuntimeError):
    """A worker process failed."""


PROFILE_NAME_KEYS = ("kind", "side", "twin", "item_runs", "verbosity")
"""The job keys a profile's file name is made of (with the repetition)."""


def profile_name(job: dict[str, Any]) -> str:
    """``fanout-ours-task-rep0``: what a worker's profile measured."""
    parts = [str(job[key]) for key in PROFILE_NAME_KEYS if key in job]
    return "-".join([*parts, f"rep{job['rep']}"] if "rep" in job else parts)


def py_spy() -> str:
    """The ``py-spy`` executable (a dev dependency, installed beside this Python)."""
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise WorkerError("--profile needs py-spy (uv sync installs it with the dev dependencies)")
    return found


@dataclass
class Context:
    """What every scenario runner needs."""

    plan: Plan
    target: Target
    emulator: EmulatorProcess
    env: dict[str, str]
    scratch: Path
    report: Report
    log: Callable[[str], None]

    server_pids: dict[str, int]
    profile: Path | None = None
    """Where each worker's CPU profile goes (``--profile``); None: no profiling."""

    def worker(self, job: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
        """Run one job in a fresh worker process; add the CPU seconds each server spent meanwhile."""
        before = {name: process_tree_cpu_seconds(pid) for name, pid in self.server_pids.items()}
        self.emulator.control.clear_requests()
        figures = run_worker(
            {**job, "target": self.target.as_dict(), "scratch": str(self.scratch)},
            self.env,
            timeout,
            self.profile,
        )
        figures["anthropic_requests"] = len(self.emulator.control.requests())
        for name, pid in self.server_pids.items():
            figures[f"{name}_cpu_seconds"] = process_tree_cpu_seconds(pid) - before[name]
        return figures


def run_worker(
    job: dict[str, Any], env: dict[str, str], timeout: float = 3600, profile: Path | None = None
) -> dict[str, Any]:
    """Run ``python -m tests.benchmarks.worker JOB`` and parse its result line; with ``profile``
    (a folder), under ``py-spy record`` writing a raw CPU profile there."""
    command = [sys.executable, "-m", "tests.benchmarks.worker", json.dumps(job)]
    if profile is not None:
        output = profile / f"{len(list(profile.glob('*.txt'))):03d}-{profile_name(job)}.txt"
        command = [
            py_spy(),
            "record",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(output),
            "--",
            *command,
        ]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    tail = "\n".join(line[:400] for line in (proc.stderr or proc.stdout).splitlines()[-25:])
    raise WorkerError(f"worker {job.get('kind')}/{job.get('side')} failed (exit {proc.returncode}):\n{tail}")


def deploy_target(base_url: str, env: dict[str, str], block_name: str = "bench-agent") -> Target:
    """Deploy the benchmark's agent on the emulator at ``base_url`` and save its block on the
    Prefect server ``env`` names (a worker process running ``deploy_agent``)."""
    setup = {"kind": "setup", "base_url": base_url, "api_key": API_KEY, "block_name": block_name}
    return Target(**run_worker(setup, env))


def _sides(rep: int) -> tuple[str, str]:
    """Alternate which side goes first, so drift over the run hits both alike."""
    return ("raw", "ours") if rep % 2 == 0 else ("ours", "raw")


def _job(kind: str, side: str, rep: int, params: Any, **options: str) -> dict[str, Any]:
    """A worker job for one side; variants of ours (``ours-<variant>``) differ by ``options``."""
    return {
        "kind": kind,
        "side": "raw" if side == "raw" else "ours",
        "rep": rep,
        "params": asdict(params),
        **options,
    }


# --- scenarios -------------------------------------------------------------------------------


def bench_single(ctx: Context) -> None:
    """One scripted session with one input and one output file.

    ``run_agent_session`` is held to the target; its async twin ``arun_agent_session`` is
    measured beside it (Prefect's sync flow engine joins its heartbeat thread on exit, the async
    engine does not).
    """
    params = ctx.plan.single
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": [], "ours-async": []}
    for rep in range(params.repeats):
        for side in [*_sides(rep), "ours-async"]:
            twin = "async" if side == "ours-async" else "sync"
            figures = ctx.worker(_job("single", side, rep, params, twin=twin))
            ctx.log(
                f"single {side} #{rep}: {figures['wall_seconds']:.2f}s, peak {figures['peak_rss_mib']:.0f} MiB"
            )
            samples[side].append(figures)
    raw_wall, ours_wall = medians(samples["raw"], "wall_seconds"), medians(samples["ours"], "wall_seconds")
    name = f"single ({params.session_seconds:g}s session, 1 in/1 out)"
    ctx.report.add(
        ratio_row(name, "wall time (s)", raw_wall, ours_wall, limit=1.05),
        Row(name, "overhead (s, ours - raw)", None, ours_wall - raw_wall),
        ratio_row(
            name,
            "wall time (s), async twin",
            raw_wall,
            medians(samples["ours-async"], "wall_seconds"),
            limit=1.03,
            note="arun_agent_session",
        ),
        Row(
            name,
            "peak RSS (MiB)",
            pick(samples["raw"], "peak_rss_mib"),
            pick(samples["ours"], "peak_rss_mib"),
        ),
        *cpu_rows(name, samples),
        *traffic_rows(name, samples),
    )
    ctx.report.samples["single"] = samples


def traffic_rows(
    name: str, samples: dict[str, list[dict[str, Any]]], sessions: int = 1, suffix: str = ""
) -> list[Row]:
    """Requests per session to the Anthropic API (both sides) and to Prefect, and Prefect events (ours)."""

    def per_session(side: str, key: str) -> float | None:
        return medians(samples[side], key) / sessions if samples.get(side) else None

    return [
        Row(
            name,
            f"Anthropic API requests per session{suffix}",
            per_session("raw", "anthropic_requests"),
            per_session("ours", "anthropic_requests"),
        ),
        Row(name, f"Prefect API requests per session{suffix}", None, per_session("ours", "prefect_requests"))
        if suffix
        else bound_row(
            name,
            "Prefect API requests per session",
            None,
            per_session("ours", "prefect_requests") or 0.0,
            at_most=12,
        ),
        Row(name, f"Prefect events per session{suffix}", None, per_session("ours", "prefect_events")),
    ]


def cpu_rows(name: str, samples: dict[str, list[dict[str, Any]]], suffix: str = "") -> list[Row]:
    """Client and Prefect-server CPU seconds (medians): where the cores went on both sides."""
    return [
        Row(
            name,
            f"client CPU (s){suffix}",
            medians(samples["raw"], "cpu_seconds"),
            medians(samples["ours"], "cpu_seconds"),
        ),
        Row(
            name,
            f"Prefect server CPU (s){suffix}",
            medians(samples["raw"], "prefect_server_cpu_seconds"),
            medians(samples["ours"], "prefect_server_cpu_seconds"),
            note="the server shares the machine's cores with the client",
        ),
    ]


def fanout_name(label: str, params: FanOutParams) -> str:
    """A fan-out scenario's name in the table."""
    return f"{label} ({params.sessions:,} x {params.session_seconds:g}s, concurrency {params.concurrency})"


def measure_fanout(
    ctx: Context, label: str, side: str, rep: int, params: FanOutParams, item_runs: str
) -> dict[str, Any]:
    """One fan-out on one side (``item_runs`` for ours), logged."""
    figures = ctx.worker(_job("fanout", side, rep, params, item_runs=item_runs))
    ctx.log(
        f"{label} {side} #{rep}: {figures['wall_seconds']:.1f}s, {figures['completed']}/"
        f"{figures['sessions']} completed, peak {figures['peak_rss_mib']:.0f} MiB"
    )
    return figures


def not_completed(samples: dict[str, list[dict[str, Any]]]) -> str:
    """A note naming the runs in which some sessions did not complete (empty when none)."""
    runs = [s for side in samples.values() for s in side if s["completed"] != s["sessions"]]
    return f"{len(runs)} run(s) with sessions not completed" if runs else ""


def default_mode_rows(
    name: str,
    samples: dict[str, list[dict[str, Any]]],
    sessions: int,
    suffix: str,
    *,
    wall_limit: float,
    rss_limit: float,
) -> list[Row]:
    """A fan-out in the mode held to the targets (``samples["ours"]``): wall ratio, peak RSS, CPU
    and traffic rows; the wall row notes runs of any side whose sessions did not all complete."""
    return [
        ratio_row(
            name,
            f"wall time (s){suffix}",
            medians(samples["raw"], "wall_seconds"),
            medians(samples["ours"], "wall_seconds"),
            limit=wall_limit,
            note=not_completed(samples),
        ),
        bound_row(
            name,
            f"peak RSS (MiB){suffix}",
            pick(samples["raw"], "peak_rss_mib"),
            pick(samples["ours"], "peak_rss_mib"),
            at_most=rss_limit,
        ),
        *cpu_rows(name, samples, suffix),
        *traffic_rows(name, samples, sessions, suffix),
    ]


def bench_fanout(ctx: Context) -> None:
    """Many sessions under a concurrency limit: items as task runs (the target), and as flow runs.

    ``run_agent_batch(item_runs="task")`` is the mode meant for fan-outs of this size and is held
    to the target; ``item_runs="flow"`` (each item its own flow run with artifacts) is measured
    ``params.flow_repeats`` times and reported beside it.
    """
    params = ctx.plan.fanout
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": [], "ours-flow": []}
    for rep in range(params.repeats):
        sides = [*_sides(rep), *(["ours-flow"] if rep < params.flow_repeats else [])]
        for side in sides:
            item_runs = "flow" if side == "ours-flow" else "task"
            samples[side].append(measure_fanout(ctx, "fanout", side, rep, params, item_runs))
    name = fanout_name("fan-out", params)
    raw_wall = medians(samples["raw"], "wall_seconds")
    ctx.report.add(
        *default_mode_rows(
            name, samples, params.sessions, ", items as task runs", wall_limit=1.15, rss_limit=400
        )
    )
    if samples["ours-flow"]:
        flow = {"raw": samples["raw"], "ours": samples["ours-flow"]}
        ctx.report.add(
            Row(
                name,
                "wall time (s), items as flow runs",
                raw_wall,
                medians(samples["ours-flow"], "wall_seconds"),
                note="reported, no target: every item is a subflow run with its own task runs and artifacts",
            ),
            Row(
                name,
                "peak RSS (MiB), items as flow runs",
                pick(samples["raw"], "peak_rss_mib"),
                pick(samples["ours-flow"], "peak_rss_mib"),
            ),
            *cpu_rows(name, flow, ", items as flow runs"),
            *traffic_rows(name, flow, params.sessions, ", items as flow runs"),
        )
    ctx.report.samples["fanout"] = samples


def bench_events(ctx: Context) -> None:
    """Event throughput of our streaming engine at each verbosity against a raw loop.

    The emulator's speed drifts over a run (and other tenants of a shared machine come and go),
    so every repetition measures the raw loop next to each verbosity and the ratio is the
    median of the per-repetition ratios. The client's CPU time per 1,000 events, which no
    drift of the emulator touches, is reported beside it.
    """
    params = ctx.plan.events
    prompt = params.prompt()
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], **{v: [] for v in params.verbosities}}
    for rep in range(params.repeats):
        order = ["raw", *params.verbosities]
        if rep % 2:
            order.reverse()
        for side in order:
            job: dict[str, Any] = {
                "kind": "events",
                "side": "raw" if side == "raw" else "ours",
                "prompt": prompt,
            }
            if side != "raw":
                job["verbosity"] = side
            figures = ctx.worker(job)
            ctx.log(
                f"events {side} #{rep}: {figures['events']} events, {figures['events_per_second']:.0f}/s, "
                f"{figures['cpu_ms_per_1000_events']:.0f} ms CPU per 1,000"
            )
            samples[side].append(figures)
    name = f"event throughput ({params.events:,} events)"
    raw_eps = medians(samples["raw"], "events_per_second")
    for verbosity in params.verbosities:
        eps = medians(samples[verbosity], "events_per_second")
        paired = median(
            [
                ours["events_per_second"] / raw["events_per_second"]
                for ours, raw in zip(samples[verbosity], samples["raw"], strict=True)
            ]
        )
        metric = f"events/s, {verbosity}"
        if verbosity == "summary":
            row = ratio_row(name, metric, raw_eps, eps, at_least=0.9, ratio=paired, note=PAIRED_NOTE)
        else:
            row = Row(name, metric, raw_eps, eps, ratio=paired, note="reported, no target")
        ctx.report.add(row)
    ctx.report.add(
        Row(
            name,
            "client CPU per 1,000 events (ms), summary",
            medians(samples["raw"], "cpu_ms_per_1000_events"),
            medians(samples["summary"], "cpu_ms_per_1000_events"),
        )
    )
    ctx.report.samples["events"] = samples


def _prepare_large_output(ctx: Context, size: int, prompt: str) -> tuple[str, str]:
    """Run one session writing the large output (raw SDK); return its session and file ids."""
    with anthropic.Anthropic(api_key=ctx.target.api_key, base_url=ctx.target.base_url) as client:
        session = client.beta.sessions.create(
            agent=ctx.target.agent_reference(),  # type: ignore[arg-type]
            environment_id=ctx.target.environment_id,
        )
        with client.beta.sessions.events.stream(session.id) as stream:
            client.beta.sessions.events.send(session.id, events=[user_message(prompt)])  # type: ignore[list-item]
            for event in stream:
                if event.type == "session.status_idle" or event.type == "session.status_terminated":
                    break
        files = list(client.beta.files.list(scope_id=session.id, betas=[MANAGED_AGENTS_BETA]))
    if len(files) != 1 or files[0].size_bytes != size:
        raise RuntimeError(
            f"expected one output of {size} bytes, got {[(f.filename, f.size_bytes) for f in files]}"
        )
    return session.id, files[0].id


def bench_large(ctx: Context) -> None:
    """Download throughput and memory of one large output."""
    params = ctx.plan.large
    session_id, file_id = _prepare_large_output(ctx, params.size_bytes, params.prompt())
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": []}
    for rep in range(params.repeats):
        for side in _sides(rep):
            figures = ctx.worker(
                {
                    "kind": "large",
                    "side": side,
                    "session_id": session_id,
                    "file_id": file_id,
                    "size_bytes": params.size_bytes,
                }
            )
            ctx.log(
                f"large {side} #{rep}: {figures['mib_per_second']:.0f} MiB/s, "
                f"RSS growth {figures['rss_growth_mib']:.0f} MiB"
            )
            samples[side].append(figures)
    name = f"large output ({params.size_bytes / 1024**2:,.0f} MiB)"
    ctx.report.add(
        ratio_row(
            name,
            "download MiB/s",
            medians(samples["raw"], "mib_per_second"),
            medians(samples["ours"], "mib_per_second"),
            at_least=0.95,
            note="both stream; ours also hashes (SHA-256), fsyncs and renames atomically",
        ),
        bound_row(
            name,
            "peak RSS growth (MiB)",
            pick(samples["raw"], "rss_growth_mib"),
            pick(samples["ours"], "rss_growth_mib"),
            at_most=64,
        ),
    )
    ctx.report.samples["large"] = samples


def _endpoint(record: dict[str, Any]) -> tuple[str, str]:
    """``(method, path template)`` of a request-log record (ids replaced by ``{id}``)."""
    parts = ["{id}" if "_" in p and p.split("_", 1)[0].isalpha() else p for p in record["path"].split("/")]
    return record["method"], "/".join(parts)


def _count(ctx: Context, run: Callable[[], Any]) -> tuple[list[dict[str, Any]], Any]:
    ctx.emulator.control.clear_requests()
    value = run()
    return ctx.emulator.control.requests(), value


def bench_economy(ctx: Context) -> None:
    """Requests per simple session, a second run's uploads, a setup re-run's writes."""
    params = ctx.plan.economy
    input_path = write_input_file(ctx.scratch / "economy", params.input_bytes, uuid.uuid4().hex[:8])
    job = {"kind": "economy", "prompt": params.prompt(), "input_path": str(input_path)}
    raw_requests, _ = _count(ctx, lambda: ctx.worker({**job, "side": "raw"}))
    ours_requests, _ = _count(ctx, lambda: ctx.worker({**job, "side": "ours"}))
    second_requests, _ = _count(ctx, lambda: ctx.worker({**job, "side": "ours"}))
    setup_requests, _ = _count(
        ctx,
        lambda: deploy_target(ctx.target.base_url, ctx.env, ctx.target.block_name),
    )
    breakdown: dict[str, int] = {}
    for record in ours_requests:
        key = " ".join(_endpoint(record))
        breakdown[key] = breakdown.get(key, 0) + 1
    uploads = sum(1 for r in second_requests if _endpoint(r) == ("POST", "/v1/files"))
    writes = [r for r in setup_requests if r["method"] != "GET"]
    name = "API economy (1 in/1 out session)"
    minimum = len(MINIMUM_SIMPLE_SESSION_REQUESTS)
    ctx.report.add(
        Row(
            name,
            "requests per session",
            float(len(raw_requests)),
            float(len(ours_requests)),
            target=f"minimum {minimum}",
            note="ours: " + ", ".join(f"{k} x{v}" for k, v in sorted(breakdown.items())),
        ),
        bound_row(name, "uploads on a 2nd run, same inputs", None, float(uploads), at_most=0),
        bound_row(name, "write requests on a setup re-run", None, float(len(writes)), at_most=0),
    )
    ctx.report.samples["economy"] = {
        "raw": raw_requests,
        "ours": ours_requests,
        "second_run": second_requests,
        "setup_rerun": setup_requests,
        "ours_breakdown": breakdown,
    }


def bench_scale(ctx: Context) -> None:
    """Thousands of short sessions in the default batch mode (``item_runs="auto"``: task runs here)."""
    params = ctx.plan.scale
    if params is None:
        ctx.log("scale: measured in the full run only")
        return
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": []}
    for rep in range(params.repeats):
        for side in _sides(rep):
            samples[side].append(measure_fanout(ctx, "scale", side, rep, params, "auto"))
    name = fanout_name("scale", params)
    ctx.report.add(
        *default_mode_rows(name, samples, params.sessions, ", default mode", wall_limit=1.3, rss_limit=600)
    )
    ctx.report.samples["scale"] = samples


def bench_postgres(ctx: Context) -> None:
    """The fan-out in both item modes against a Postgres-backed Prefect server, beside the run's
    SQLite-backed one: same emulator, same raw baseline, each server with its services on."""
    params = ctx.plan.postgres
    if params is None:
        ctx.log("postgres: measured in the full run only")
        return
    if postgres_bin() is None:
        ctx.log("postgres: skipped, no PostgreSQL server installed (apt-get install postgresql)")
        return
    samples: dict[str, list[dict[str, Any]]] = {"raw": []}
    with (
        PostgresProcess() as database,
        PrefectServerProcess(
            database_url=database.url, log_path=ctx.scratch / "prefect-postgres.log"
        ) as server,
    ):
        env = {**ctx.env, **server.env}
        assert server.proc is not None and database.proc is not None
        on_postgres = replace(
            ctx,
            target=deploy_target(ctx.target.base_url, env),
            env=env,
            server_pids={
                "emulator": ctx.server_pids["emulator"],
                "prefect_server": server.proc.pid,
                "database": database.proc.pid,
            },
        )
        for rep in range(params.repeats):
            samples["raw"].append(measure_fanout(ctx, "postgres", "raw", rep, params, "task"))
            for mode in ("flow", "task"):
                for backend, where in (("sqlite", ctx), ("postgres", on_postgres)):
                    figures = measure_fanout(where, f"{backend} {mode}", "ours", rep, params, mode)
                    samples.setdefault(f"{backend}-{mode}", []).append(figures)
    name = fanout_name("database", params)
    raw_wall = medians(samples["raw"], "wall_seconds")
    for mode in ("flow", "task"):
        for backend, label in (("sqlite", "SQLite"), ("postgres", "Postgres")):
            runs = samples[f"{backend}-{mode}"]
            server_cpu = medians(runs, "prefect_server_cpu_seconds") + (
                medians(runs, "database_cpu_seconds") if backend == "postgres" else 0.0
            )
            ctx.report.add(
                Row(
                    name,
                    f"wall time (s), items as {mode} runs, {label}",
                    raw_wall,
                    medians(runs, "wall_seconds"),
                    note=not_completed({"ours": runs}),
                ),
                Row(
                    name,
                    f"server CPU (s), items as {mode} runs, {label}",
                    None,
                    server_cpu,
                    note="Prefect server and its database",
                ),
            )
    ctx.report.samples["postgres"] = samples


RUNNERS: dict[str, Callable[[Context], None]] = {
    "single": bench_single,
    "fanout": bench_fanout,
    "events": bench_events,
    "large": bench_large,
    "economy": bench_economy,
    "scale": bench_scale,
    "postgres": bench_postgres,
}


# --- main ------------------------------------------------------------------------------------


def machine_description() -> str:
    """``<cores>-core / <GiB> GiB <arch>`` of this machine."""
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kib / 1024**2:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "? GiB"
    return f"{os.cpu_count()}-core / {memory} {platform.machine()}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes: a few minutes in total (CI).")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmark-results.json"), help="Where to write the figures."
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"Comma-separated scenarios (default: all of {', '.join(SCENARIOS)}).",
    )
    parser.add_argument("--machine", default=None, help="Machine class to name in the report.")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="Run every worker under py-spy and write its CPU profile to this folder (slower: for "
        "finding where the time goes, not for figures).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON. Returns the exit status."""
    args = parse_args(argv)
    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(selected) - set(SCENARIOS))
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    report = Report(mode="quick" if args.quick else "full", machine=args.machine or machine_description())

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="pma-bench-") as scratch_name:
        scratch = Path(scratch_name)
        log("starting the emulator and a Prefect server (separate processes)")
        with (
            EmulatorProcess(["--api-key", API_KEY], log_path=scratch / "emulator.log") as emu,
            PrefectServerProcess(log_path=scratch / "prefect.log") as prefect_server,
        ):
            env = {**os.environ, **prefect_server.env, **INSTANT_RUNTIME, "PYTHONPATH": str(REPO_ROOT)}
            for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
                env.pop(var, None)
            target = deploy_target(emu.url, env)
            log(f"agent {target.agent_id} v{target.agent_version} deployed as block {target.block_name!r}")
            assert emu.proc is not None and prefect_server.proc is not None
            pids = {"emulator": emu.proc.pid, "prefect_server": prefect_server.proc.pid}
            ctx = Context(plan, target, emu, env, scratch, report, log, pids, args.profile)
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
            failed = []
            for name in selected:
                log(f"scenario {name}")
                try:
                    RUNNERS[name](ctx)
                except WorkerError as exc:  # the other scenarios still run and are reported
                    failed.append(name)
                    log(f"scenario {name} failed: {exc}")
                    report.add(Row(name, "failed", None, None, note=str(exc).splitlines()[-1][:200]))
                report.write_json(args.json)  # what was measured so far survives a crash
    print(f"\nBenchmark ({report.mode}) on {report.machine}, medians\n")
    print(report.table())
    print(f"\nFigures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
