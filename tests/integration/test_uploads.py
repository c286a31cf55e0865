"""upload_input_files: content-hash dedupe across flow runs through Prefect's own caching.

Real SDK over real HTTP against the emulator, real files, a real Prefect server. Each test
writes content with a fresh uuid in it, because the cache records (in the test session's
result storage) outlive a single test.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect import flow

from blocks.credentials import AnthropicCredentials
from emulator import EmulatorServer
from managed_agents_core.exceptions import InputFileError
from managed_agents_core.inputs import InputFile, UploadedFile
from tasks.files import file_resources, upload_input_files
from tests.integration.outputs_support import credentials_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow(name="upload-inputs-test")
async def upload_flow(credentials: AnthropicCredentials, files: list[Any]) -> list[UploadedFile]:
    """One 'run' of the inputs step, as the session flow does it."""
    return await upload_input_files(credentials, files)


def _uploads(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [r for r in emulator.control.requests() if r["method"] == "POST" and r["path"] == "/v1/files"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_second_run_uploads_nothing(
    client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex
    a = _write(tmp_path / "a.csv", f"id,value\n1,{tag}\n")
    b = _write(tmp_path / "b.md", f"# notes {tag}\n" * 5000)  # ~200 kB
    creds = credentials_for(emulator.url)
    files: list[Any] = [str(a), InputFile(path=str(b), mount_path="/workspace/notes.md")]

    first = await upload_flow(creds, files)
    assert [u.reused for u in first] == [False, False]
    assert len(_uploads(emulator)) == 2
    assert [u.mount_path for u in first] == ["/mnt/session/uploads/a.csv", "/workspace/notes.md"]
    assert client.beta.files.download(first[1].file_id).read() == b.read_bytes()
    assert first[1].size_bytes == b.stat().st_size

    emulator.control.clear_requests()
    second = await upload_flow(creds, files)
    assert _uploads(emulator) == []
    assert [u.reused for u in second] == [True, True]
    assert [u.file_id for u in second] == [u.file_id for u in first]
    # Each remembered id was checked before it was reused.
    checked = {r["path"] for r in emulator.control.requests() if r["method"] == "GET"}
    assert checked == {f"/v1/files/{u.file_id}" for u in first}


async def test_deleted_remembered_file_is_uploaded_again(
    client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    a = _write(tmp_path / "data.txt", f"content {uuid.uuid4().hex}\n")
    creds = credentials_for(emulator.url)
    [first] = await upload_flow(creds, [str(a)])
    client.beta.files.delete(first.file_id)

    emulator.control.clear_requests()
    [second] = await upload_flow(creds, [str(a)])
    assert len(_uploads(emulator)) == 1
    assert second.reused is False and second.file_id != first.file_id
    assert client.beta.files.download(second.file_id).read() == a.read_bytes()

    # The refreshed cache remembers the new id.
    emulator.control.clear_requests()
    [third] = await upload_flow(creds, [str(a)])
    assert _uploads(emulator) == []
    assert third.reused is True and third.file_id == second.file_id


async def test_changed_content_is_uploaded(
    client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    a = _write(tmp_path / "report.txt", f"version 1 {uuid.uuid4().hex}\n")
    creds = credentials_for(emulator.url)
    [first] = await upload_flow(creds, [str(a)])
    _write(a, f"version 2 {uuid.uuid4().hex}\n")
    emulator.control.clear_requests()
    [second] = await upload_flow(creds, [str(a)])
    assert len(_uploads(emulator)) == 1
    assert second.reused is False and second.sha256 != first.sha256
    assert client.beta.files.download(second.file_id).read() == a.read_bytes()


async def test_same_content_at_another_base_url_is_uploaded_there(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    a = _write(tmp_path / "shared.txt", f"shared {uuid.uuid4().hex}\n")
    [first] = await upload_flow(credentials_for(emulator.url), [str(a)])
    with EmulatorServer() as other:
        [there] = await upload_flow(credentials_for(other.url), [str(a)])
        assert there.reused is False
        assert len(_uploads(other)) == 1
    assert first.sha256 == there.sha256


async def test_bad_input_fails_before_any_upload(emulator: EmulatorServer, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.txt", f"ok {uuid.uuid4().hex}")
    with pytest.raises(InputFileError, match="does not exist"):
        await upload_flow(credentials_for(emulator.url), [str(good), str(tmp_path / "missing.txt")])
    with pytest.raises(InputFileError, match="absolute"):
        await upload_flow(credentials_for(emulator.url), [{"path": str(good), "mount_path": "relative.txt"}])
    assert _uploads(emulator) == []


async def test_resources_mount_in_a_session(
    client: anthropic.Anthropic, emulator: EmulatorServer, tmp_path: Path
) -> None:
    from tests.integration.session_helpers import create_remote_agent

    a = _write(tmp_path / "input.csv", f"x\n{uuid.uuid4().hex}\n")
    uploaded = await upload_flow(credentials_for(emulator.url), [str(a)])
    resources = file_resources(uploaded)
    assert resources == [
        {"type": "file", "file_id": uploaded[0].file_id, "mount_path": "/mnt/session/uploads/input.csv"}
    ]
    agent = create_remote_agent(client)
    session = client.beta.sessions.create(
        agent=agent.reference(),  # type: ignore[arg-type]
        environment_id=agent.environment_id,
        resources=resources,  # type: ignore[arg-type]
    )
    [mounted] = [r for r in client.beta.sessions.resources.list(session.id) if r.type == "file"]
    assert mounted.mount_path == "/mnt/session/uploads/input.csv"
    assert mounted.file_id != uploaded[0].file_id  # the session's own copy
