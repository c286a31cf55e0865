"""Every Python snippet of the README runs as written, in order, against the emulator.

Each snippet runs in a fresh ``python`` process (as a reader would paste it), in a temporary
working folder holding the files the snippets name (the example spec, a sales CSV, the nightly
batch file and the files it lists), with ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL`` pointing
at the emulator and ``PREFECT_API_URL`` at the test session's Prefect server. The memory store
the session snippet names, and the vault the vault snippet's spec names, are created first, as a
team would have. The ``serve(...)`` snippet
runs until its three deployments exist on the server, then is stopped (it serves forever).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from emulator import EmulatorServer
from tests.conftest import TEST_API_KEY
from tests.prefect_server import PROJECT_ROOT, stop_process_group

pytestmark = pytest.mark.usefixtures("prefect_harness")

README = PROJECT_ROOT / "README.md"
SNIPPET_DEADLINE_SECONDS = 240
SERVED_DEPLOYMENTS = {
    "run-agent-session/on-demand",
    "run-agent-batch/nightly",
    "sweep-agent-sessions/orphan-sweeper",
}


@dataclass(frozen=True)
class Snippet:
    """A fenced ``python`` block of the README and the line it starts on."""

    line: int
    code: str


def readme_python_snippets() -> list[Snippet]:
    """The README's ``python`` code blocks, in order."""
    text = README.read_text()
    return [
        Snippet(line=text.count("\n", 0, match.start()) + 1, code=match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    ]


def workspace(folder: Path) -> None:
    """Lay out the files the snippets name, relative to ``folder`` (their working directory)."""
    (folder / "flows" / "specs").mkdir(parents=True)
    for spec in ("example-agent.yaml", "support-agent.yaml", "research-lead.yaml", "researcher.yaml"):
        shutil.copy(PROJECT_ROOT / "flows/specs" / spec, folder / "flows/specs" / spec)
    (folder / "data").mkdir()
    (folder / "data" / "sales.csv").write_text("region,revenue\nnorth,120\nsouth,95\n")
    (folder / "docs" / "examples").mkdir(parents=True)
    shutil.copy(
        PROJECT_ROOT / "docs/examples/nightly-batch.jsonl", folder / "docs/examples/nightly-batch.jsonl"
    )
    shutil.copy(README, folder / "README.md")  # files named by the batch file, relative to it
    shutil.copy(PROJECT_ROOT / "docs/deploying.md", folder / "docs/deploying.md")


def snippet_env(emulator: EmulatorServer) -> dict[str, str]:
    """The environment a reader's shell would have: the project importable, the emulator's URL
    and a key for it, and the Prefect server of this test session."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        ANTHROPIC_API_KEY=TEST_API_KEY,
        ANTHROPIC_BASE_URL=emulator.url,
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
    )
    return env


def run_to_end(snippet: Snippet, cwd: Path, env: dict[str, str]) -> str:
    """Run a snippet as ``python -c``; fail with its output unless it exits 0 in time."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", snippet.code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=SNIPPET_DEADLINE_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"README snippet at line {snippet.line} ran over {SNIPPET_DEADLINE_SECONDS} s:\n{exc.stderr}"
        )
    assert done.returncode == 0, (
        f"README snippet at line {snippet.line} failed ({done.returncode}):\n{snippet.code}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-8000:]}"
    )
    return done.stdout


def deployment_names() -> set[str]:
    """Every deployment on the server, as ``flow-name/deployment-name``."""
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        return {f"{flows.get(d.flow_id)}/{d.name}" for d in client.read_deployments()}


def serve_until_deployed(snippet: Snippet, cwd: Path, env: dict[str, str]) -> set[str]:
    """Run a ``serve(...)`` snippet as ``__main__`` until its deployments exist, then stop it."""
    process = subprocess.Popen(
        [sys.executable, "-c", snippet.code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SNIPPET_DEADLINE_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            found = deployment_names()
            if found >= SERVED_DEPLOYMENTS:
                return found
            time.sleep(0.5)  # polled with a deadline
        output = process.stdout.read().decode() if process.poll() is not None and process.stdout else ""
        pytest.fail(
            f"README snippet at line {snippet.line} did not serve {SERVED_DEPLOYMENTS}:\n{output[-8000:]}"
        )
    finally:
        if process.poll() is None:
            os.killpg(os.getpgid(process.pid), signal.SIGINT)  # what Ctrl+C does to `serve`
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process_group(process)
        if process.stdout:
            process.stdout.close()


def test_the_readme_has_the_snippets_this_test_expects() -> None:
    codes = [s.code for s in readme_python_snippets()]
    assert any("deploy_agent(" in c for c in codes)
    assert any("run_agent_session(" in c for c in codes)
    assert any("run_agent_batch(" in c for c in codes)
    assert any("serve(" in c for c in codes)
    assert not any("asyncio.run(" in c for c in codes), "README snippets call the sync twins"


def test_every_readme_python_snippet_runs_as_written(
    emulator: EmulatorServer, tmp_path: Path, client: anthropic.Anthropic
) -> None:
    workspace(tmp_path)
    env = snippet_env(emulator)
    client.beta.memory_stores.create(
        name="team-notes", description="Notes the README's session snippet attaches."
    )
    support_tools = client.beta.vaults.create(display_name="support-tools")  # the vault snippet's
    client.beta.vaults.credentials.create(
        support_tools.id,
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/tickets", "token": "t0k"},
    )
    snippets = readme_python_snippets()
    outputs: dict[int, str] = {}
    for snippet in snippets:
        if "serve(" in snippet.code:
            assert serve_until_deployed(snippet, tmp_path, env) >= SERVED_DEPLOYMENTS
        else:
            outputs[snippet.line] = run_to_end(snippet, tmp_path, env)

    printed = "\n".join(outputs.values())
    assert re.search(r"^agent_\w+ 1$", printed, flags=re.MULTILINE), printed  # deploy_agent's id, version 1
    assert list((tmp_path / "outputs" / "sales").iterdir()), "the session snippet collected no output file"
    assert {p.name for p in (tmp_path / "outputs" / "nightly").iterdir()} == {"readme", "design"}
    assert "2 completed" in printed, printed
    assert f"['{support_tools.id}'] idle (end_turn)" in printed, printed  # the block's vault, then the run
