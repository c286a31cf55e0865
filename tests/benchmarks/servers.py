"""What a benchmark run needs around the client it measures: the CPU of the servers' process
trees, and the runtime settings of the instant profile. The servers run in their own processes
(the emulator's ``EmulatorProcess``, the shared ``tests.prefect_server.PrefectServerProcess``)
so their CPU and memory are not counted against the client.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its live descendants (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, ..., utime (field 14) and stime (15) of stat(5).
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == current)
    return total


INSTANT_RUNTIME = {
    "MANAGED_AGENTS_OUTPUT_INDEXING_WINDOW": "0",
    "MANAGED_AGENTS_INPUT_ROOTS": os.pathsep.join([".", tempfile.gettempdir()]),
    "MANAGED_AGENTS_OUTPUT_ROOTS": os.pathsep.join(["outputs", tempfile.gettempdir()]),
}
"""The benchmark's emulator runs the instant profile, which lists outputs as soon as the turn
ends; the runtime is told so, as the raw script lists once (both sides do the same work). The
benchmark's inputs and outputs live in temporary folders, which the roots must allow
(docs/security.md)."""
