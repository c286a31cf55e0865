"""Memory stores as an auditable output: snapshot/diff artifact, seeding, export, redaction."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import anthropic
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from blocks.credentials import AnthropicCredentials
from emulator import EmulatorServer
from flows.session import run_agent_session
from managed_agents_core.inputs import MemoryStoreAttachment
from tasks.memory_audit import export_memories, redact_memory_version, seed_memories
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, save_agent_block, scenario

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def agent_name(emulator: EmulatorServer, client: anthropic.Anthropic, prefect_harness: None) -> str:
    return save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)


@pytest.fixture
def credentials(emulator: EmulatorServer) -> AnthropicCredentials:
    return AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url)


@pytest.fixture
def store_id(client: anthropic.Anthropic) -> str:
    return client.beta.memory_stores.create(name=f"audit-{time.monotonic_ns()}").id


@flow
async def _seed(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[tuple[str, str]]:
    return [(s.path, s.action) for s in await seed_memories(credentials, store_id, folder)]


@flow
async def _export(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[str]:
    return await export_memories(credentials, store_id, folder)


@flow
async def _redact(
    credentials: AnthropicCredentials, store_id: str, version_id: str
) -> tuple[str | None, str | None]:
    change = await redact_memory_version(credentials, store_id, version_id)
    return change.path, change.sha256


def _run_seed(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[tuple[str, str]]:
    return asyncio.run(_seed(credentials, store_id, folder))


def _run_export(credentials: AnthropicCredentials, store_id: str, folder: str) -> list[str]:
    return asyncio.run(_export(credentials, store_id, folder))


def _run_redact(
    credentials: AnthropicCredentials, store_id: str, version_id: str
) -> tuple[str | None, str | None]:
    return asyncio.run(_redact(credentials, store_id, version_id))


def _seed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "seed"
    (folder / "prefs").mkdir(parents=True)
    (folder / "prefs" / "style.md").write_text("tabs, not spaces\n")
    (folder / "glossary.md").write_text("SLA: service level agreement\n")
    return folder


def test_the_memory_diff_artifact_matches_the_emulators_versions(
    agent_name: str,
    client: anthropic.Anthropic,
    credentials: AnthropicCredentials,
    store_id: str,
    tmp_path: Path,
    tmp_outputs: Path,
) -> None:
    seeded = _run_seed(credentials, store_id, str(_seed_folder(tmp_path)))
    assert sorted(seeded) == [("/glossary.md", "created"), ("/prefs/style.md", "created")]
    (tmp_path / "input.txt").write_text("one two three\n")

    state = run_agent_session(
        agent_name,
        scenario(report=True, memory=True),
        files=[str(tmp_path / "input.txt")],
        memory_stores=[MemoryStoreAttachment(store=store_id)],
        output_dir=str(tmp_outputs),
        return_state=True,
    )
    assert state.is_completed(), state.message
    session_id = state.result().session_id

    written = list(client.beta.memory_stores.memory_versions.list(store_id, session_id=session_id))
    assert len(written) == 1
    version = written[0]
    assert version.operation == "created" and version.path == f"/sessions/{session_id}/turn-1.md"

    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    [report] = [a for a in artifacts if a.key and a.key.endswith("-session-report")]
    markdown = str(report.data)
    assert "## Memory changes" in markdown and "created: 1, modified: 0, deleted: 0" in markdown
    assert f"| {version.id} | created | {version.path} | {str(version.content_sha256)[:12]} |" in markdown
    assert f"session_actor:{session_id}" in markdown
    # The seeded memories were written before the snapshot: not part of the session's changes.
    assert "/glossary.md" not in markdown and "/prefs/style.md" not in markdown


def test_seeding_is_idempotent_and_export_round_trips(
    client: anthropic.Anthropic, credentials: AnthropicCredentials, store_id: str, tmp_path: Path
) -> None:
    folder = _seed_folder(tmp_path)
    _run_seed(credentials, store_id, str(folder))
    assert sorted(_run_seed(credentials, store_id, str(folder))) == [
        ("/glossary.md", "unchanged"),
        ("/prefs/style.md", "unchanged"),
    ]
    (folder / "glossary.md").write_text("SLA: service level agreement\nSLO: objective\n")
    assert dict(_run_seed(credentials, store_id, str(folder)))["/glossary.md"] == "updated"
    versions = list(client.beta.memory_stores.memory_versions.list(store_id))
    assert [v.operation for v in versions].count("modified") == 1

    out = tmp_path / "export"
    files = _run_export(credentials, store_id, str(out))
    assert sorted(Path(f).relative_to(out).as_posix() for f in files) == ["glossary.md", "prefs/style.md"]
    for name in ("glossary.md", "prefs/style.md"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()


def test_redaction_goes_through_the_api(
    client: anthropic.Anthropic, credentials: AnthropicCredentials, store_id: str, tmp_path: Path
) -> None:
    memory = client.beta.memory_stores.memories.create(store_id, path="/secret.md", content="the pin is 1234")
    assert memory.content_sha256 == hashlib.sha256(b"the pin is 1234").hexdigest()
    # The live content cannot be redacted: replace it first, then redact the old version.
    client.beta.memory_stores.memories.update(memory.id, memory_store_id=store_id, content="[removed]")
    assert _run_redact(credentials, store_id, memory.memory_version_id) == (None, None)
    assert _run_redact(credentials, store_id, memory.memory_version_id) == (None, None)  # idempotent
    version = client.beta.memory_stores.memory_versions.retrieve(
        memory.memory_version_id, memory_store_id=store_id
    )
    assert version.redacted_at is not None
    assert version.content is None and version.path is None and version.content_sha256 is None
    assert version.created_by is not None  # the actor stays
