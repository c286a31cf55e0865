"""Where the CPU went: a summary of the profiles ``bench --profile DIR`` wrote.

Usage::

    uv run python -m tests.benchmarks.profiles DIR [--top 12]

For each profile (one worker process, sampled by ``py-spy record --format raw``), counting only
the measured window (the main thread inside the worker's ``measure``, and every other thread;
the worker's imports before the clock are left out): its CPU seconds, the share of samples
whose innermost frame is in each package (Prefect, the SDK,
httpx, pydantic, this project, the standard library, ...), and the functions that are on the
stack most often among this project's own (inclusive: which of our steps the CPU is spent under)
and the functions innermost most often (self: what the CPU actually runs).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_RATE = 100
"""Samples per second (``bench --profile`` records at this rate)."""
PRODUCT_PACKAGES = frozenset({"flows", "tasks", "blocks", "managed_agents_core", "managed_agents"})
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


MEASURED = "measure (tests/benchmarks/worker.py"
"""The worker's frame around the measured operation (see :mod:`tests.benchmarks.worker`)."""
MAIN_THREAD = "_run_module_as_main ("
"""The outermost frame of the worker's main thread."""
BLOCKING = (
    "Condition.wait (",
    "Event.wait (",
    "EpollSelector.select (",
    "Thread.join (",
    "_worker (concurrent/futures/thread.py",
    "heartbeat_loop (prefect/flow_engine.py",
)
"""Innermost frames that block in C (a lock, a selector, a queue, a sleep): py-spy does not always
see such a thread as idle, so its samples are counted as waiting, not as CPU."""


def package_of(path: str) -> str:
    """The package a frame's file belongs to, from py-spy's shortened path: its first folder
    (``prefect``, ``httpx``, ``asyncio``, ``flows``...), else ``stdlib`` (a module of its own,
    or the import machinery)."""
    first, slash, _ = path.partition("/")
    return first if slash and not first.startswith("<") else "stdlib"


def in_measured_window(stack: str) -> bool:
    """Whether a sample is of the measured operation: the main thread inside ``measure``, or
    any other thread (the run's event loop and Prefect's service threads start with it)."""
    return MEASURED in stack or not stack.startswith(MAIN_THREAD)


@dataclass
class Profile:
    """The samples of one profile, counted three ways."""

    name: str
    samples: int = 0
    waiting: int = 0
    by_package: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    innermost: Counter[str] = field(default_factory=Counter)

    @property
    def cpu_seconds(self) -> float:
        """CPU time the samples stand for."""
        return self.samples / SAMPLE_RATE


def _label(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "stdlib"
    path = match["file"]
    return f"{match['function']} ({path})", package_of(path)


def read_profile(path: Path) -> Profile:
    """Count a raw (folded stacks) py-spy profile."""
    profile = Profile(path.stem)
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if not in_measured_window(stack):
            continue
        frames = [_label(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if any(blocking in frames[-1][0] for blocking in BLOCKING):
            profile.waiting += count
            continue
        profile.samples += count
        profile.by_package[frames[-1][1]] += count
        profile.innermost[frames[-1][0]] += count
        for label in {label for label, package in frames if package in PRODUCT_PACKAGES}:
            profile.inclusive[label] += count
    return profile


def describe(profile: Profile, top: int) -> str:
    """The profile's summary as text."""
    if not profile.samples:
        return f"## {profile.name}: no samples\n"

    def share(count: int) -> str:
        return f"{100 * count / profile.samples:4.0f}%"

    packages = ", ".join(f"{name} {share(n).strip()}" for name, n in profile.by_package.most_common(8))
    lines = [
        f"## {profile.name}: {profile.cpu_seconds:.1f} s CPU ({profile.samples} samples; "
        f"{profile.waiting / SAMPLE_RATE:.1f} s more blocked in a wait)",
        f"innermost frame by package: {packages}",
        "ours on the stack (inclusive):",
        *(f"  {share(n)}  {label}" for label, n in profile.inclusive.most_common(top)),
        "innermost (self):",
        *(f"  {share(n)}  {label}" for label, n in profile.innermost.most_common(top)),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the summary of every profile in the folder, in the order they were taken."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.profiles", description=__doc__.split("\n")[0]
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=12, help="Functions listed per profile and view.")
    args = parser.parse_args(argv)
    paths = sorted(args.folder.glob("*.txt"))
    if not paths:
        print(f"no profiles in {args.folder}")
        return 1
    for path in paths:
        print(describe(read_profile(path), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
