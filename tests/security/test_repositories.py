"""GitHub repositories: a run names the repository, never the token (docs/security.md).

The token comes from the block's Secret block or the worker's ``GITHUB_TOKEN``; it reaches the
service in the create request and nothing else: not the run's logs, artifacts, events, state,
parameters or task runs. A URL that is not ``https://github.com/<owner>/<repo>`` is refused
before anything is created, so no parameter can send the token to another host.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.exceptions import ParameterTypeError

from blocks.agent import ManagedAgent
from emulator import EmulatorServer
from flows.batch import read_child_runs, run_agent_batch
from flows.session import run_agent_session
from managed_agents_core.batch_items import BatchResult
from tests.integration.session_helpers import eventually, scenario

from .helpers import run_records

pytestmark = pytest.mark.usefixtures("prefect_harness")


def stored_tokens(emulator: EmulatorServer, session_id: str) -> list[tuple[str, str | None]]:
    """What the emulator received for the session's repositories: (url, token)."""
    resources = emulator.app.state.emulator.store.session_resources[session_id]
    return [(r["url"], r["_authorization_token"]) for r in resources if r["type"] == "github_repository"]


def run_haystack(flow_run_id: Any) -> str:
    """Everything Prefect holds about the run: records, parameters, its item runs, the task runs
    of all of them (waited for: the server records task runs from the engine's events)."""
    records = run_records(flow_run_id, "prefect.flow-run.Completed", wait_for_logs=True)
    assert records["found_final_event"]

    async def runs() -> tuple[Any, list[Any], list[Any]]:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            children = await read_child_runs(flow_run_id)
            run_ids = [run.id, *(child.id for child in children)]

            async def task_runs() -> list[Any]:
                return await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
                )

            return run, children, await eventually(task_runs, f"the task runs of flow run {flow_run_id}")

    run, children, task_runs = asyncio.run(runs())
    return (
        json.dumps(records, default=str)
        + "".join(r.model_dump_json() for r in [run, *children])
        + "".join(t.model_dump_json() for t in task_runs)
    )


def test_the_workers_token_clones_the_repository_and_goes_nowhere_else(
    saved_agent: str,
    client: anthropic.Anthropic,
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"ghp_canary{uuid.uuid4().hex}"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    state = run_agent_session(
        saved_agent,
        scenario(reply="Read the repository."),
        github_repositories=[
            {"url": "https://github.com/acme/private-repo", "branch": "main", "mount_path": "/workspace/src"},
            "https://github.com/acme/public-docs.git",
        ],
        output_dir=str(tmp_path / "out"),
        return_state=True,
    )
    assert state.is_completed(), state.message
    session_id = state.result().session_id
    repos = [r for r in client.beta.sessions.retrieve(session_id).resources if r.type == "github_repository"]
    assert [(r.url, r.mount_path) for r in repos] == [
        ("https://github.com/acme/private-repo", "/workspace/src"),
        ("https://github.com/acme/public-docs.git", "/workspace/public-docs"),
    ]
    assert repos[0].checkout is not None and repos[0].checkout.model_dump() == {
        "type": "branch",
        "name": "main",
    }
    assert stored_tokens(emulator, session_id) == [
        ("https://github.com/acme/private-repo", token),
        ("https://github.com/acme/public-docs.git", token),
    ]
    assert token not in client.beta.sessions.retrieve(session_id).model_dump_json()
    assert token not in run_haystack(state.state_details.flow_run_id)


def test_the_blocks_secret_block_is_the_token_and_batch_items_mount_their_repositories(
    saved_agent: str, client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    token = f"ghp_secret{uuid.uuid4().hex}"
    secret_name = f"gh-token-{uuid.uuid4().hex[:8]}"
    Secret(value=token).save(secret_name)
    block = ManagedAgent.load(saved_agent, _sync=True)  # type: ignore[call-arg]
    assert isinstance(block, ManagedAgent)
    block.github_token_secret = secret_name
    block.save(saved_agent, overwrite=True)

    for item_runs in ("task", "flow"):
        state = run_agent_batch(
            saved_agent,
            [
                {
                    "key": "a",
                    "prompt": scenario(reply="a"),
                    "github_repositories": ["https://github.com/acme/a"],
                }
            ],
            output_dir=str(tmp_path / item_runs),
            item_runs=item_runs,
            concurrency_limit_name=f"repo-test-{uuid.uuid4().hex[:8]}",
            return_state=True,
        )
        result = state.result()
        assert isinstance(result, BatchResult) and result.items[0].state == "completed", result
        session_id = str(result.items[0].session_id)
        assert stored_tokens(emulator, session_id) == [("https://github.com/acme/a", token)]
        assert token not in run_haystack(state.state_details.flow_run_id)


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/acme/repo",
        "https://github.com.evil.example/acme/repo",
        "https://evil.example/github.com/acme/repo",
        "https://github.com/acme",
        "https://user:pw@github.com/acme/repo",
    ],
)
def test_a_repository_outside_github_is_refused_before_anything_is_created(
    url: str, saved_agent: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    with pytest.raises(ParameterTypeError, match=r"github\.com"):
        run_agent_session(
            saved_agent, scenario(reply="x"), github_repositories=[url], output_dir=str(tmp_path)
        )
    assert [r for r in emulator.control.requests() if r["method"] == "POST"] == []
