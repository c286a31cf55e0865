"""Hostile output names from the server: every file lands inside the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator import EmulatorServer
from tests.integration.session_helpers import scenario

from .campaign import record
from .conftest import leftovers

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("prefect_harness")]

HOSTILE_NAMES = [
    "../evil.txt",
    "/etc/passwd-campaign",
    "a/../../b.txt",
    "..",
    "nul\u0000byte.txt",
    "C:\\x\\y.txt",
]


def test_hostile_output_names_stay_inside_the_output_folder(
    emulator: EmulatorServer, agent_block: str, tmp_path: Path
) -> None:
    from flows.session import run_agent_session

    out = tmp_path / "nested" / "out"
    outputs = [{"name": name, "size": 64 + i, "seed": i} for i, name in enumerate(HOSTILE_NAMES)]
    result = run_agent_session(agent=agent_block, prompt=scenario(outputs=outputs), output_dir=str(out))
    root = out.resolve()
    paths = [Path(o.path).resolve() for o in result.output_files]
    escaped = [str(p) for p in paths if not p.is_relative_to(root)]
    outside = sorted(
        str(p) for p in tmp_path.rglob("*") if p.is_file() and not p.resolve().is_relative_to(root)
    )
    line = record(
        "hostile output names",
        names=len(HOSTILE_NAMES),
        written=len(paths),
        escaped=len(escaped),
        files_outside_folder=len(outside),
        partial_files=len(leftovers(out)),
    )
    assert len(paths) == len(HOSTILE_NAMES), line
    assert escaped == [] and outside == [], f"{line}: {escaped or outside}"
    assert len({p.name for p in paths}) == len(paths), f"two outputs share a name: {line}"
    assert leftovers(out) == [], line
