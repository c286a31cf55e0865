"""collect_outputs against the emulator over real HTTP, writing real files.

Outputs are produced by the emulator's scripted agent (``#emulator {"outputs": [...]}``), whose
generated contents have a known SHA-256 (``emulator.blobs.generated_sha256``).
"""

# ruff: noqa: ASYNC240  (tests check small real files with blocking calls on purpose)
from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect.filesystems import LocalFileSystem, RemoteFileSystem

from emulator import EmulatorConfig, EmulatorServer
from emulator.blobs import generated_sha256
from managed_agents_core.exceptions import OutputError, OutputIntegrityError
from managed_agents_core.outputs import acollect_session_outputs, is_retryable_download_error
from tasks.outputs import collect_outputs
from tests.conftest import async_sdk_client, sdk_client
from tests.integration.outputs_support import content_requests, credentials_for, run_turn
from tests.integration.session_helpers import RemoteAgent, create_remote_agent, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def agent(client: anthropic.Anthropic) -> RemoteAgent:
    return create_remote_agent(client)


def _sha(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".managed-agents-tmp-")]


async def test_outputs_are_byte_identical(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_outputs: Path
) -> None:
    specs: list[dict[str, Any]] = [
        {"name": "table.csv", "size": 1000, "seed": 1},
        {"name": "blob.bin", "size": 3_000_001, "seed": 2},
        {"name": "empty.txt", "size": 0},
    ]
    session_id = run_turn(client, agent, outputs=specs)
    outputs = await collect_outputs(credentials_for(emulator.url), session_id, str(tmp_outputs))
    by_name = {o.filename: o for o in outputs}
    assert set(by_name) == {"table.csv", "blob.bin", "empty.txt"}
    for spec in specs:
        out = by_name[str(spec["name"])]
        expected = generated_sha256(int(spec["size"]), int(spec.get("seed", 0)))
        assert out.sha256 == expected
        assert out.size_bytes == spec["size"]
        assert Path(out.path).parent == tmp_outputs.resolve()
        assert _sha(out.path) == expected
        assert os.path.getsize(out.path) == spec["size"]
        assert out.skipped is False
    # The small one, compared byte by byte with what the SDK downloads directly.
    table = by_name["table.csv"]
    assert Path(table.path).read_bytes() == client.beta.files.download(table.file_id).read()
    assert _leftovers(tmp_outputs) == []


async def test_second_collect_downloads_nothing(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_outputs: Path
) -> None:
    session_id = run_turn(
        client, agent, outputs=[{"name": "a.bin", "size": 200_000}, {"name": "b.bin", "size": 10}]
    )
    creds = credentials_for(emulator.url)
    first = await collect_outputs(creds, session_id, str(tmp_outputs))
    assert [o.skipped for o in first] == [False, False]
    emulator.control.clear_requests()
    second = await collect_outputs(creds, session_id, str(tmp_outputs))
    assert [o.skipped for o in second] == [True, True]
    assert [(o.path, o.sha256) for o in second] == [(o.path, o.sha256) for o in first]
    assert content_requests(emulator.control.requests()) == []

    # A local copy that no longer matches is downloaded again (and only that one).
    changed = next(o for o in first if o.filename == "a.bin")
    Path(changed.path).write_bytes(b"\0" * changed.size_bytes)
    emulator.control.clear_requests()
    third = await collect_outputs(creds, session_id, str(tmp_outputs))
    assert {o.filename: o.skipped for o in third} == {"a.bin": False, "b.bin": True}
    assert [r["path"] for r in content_requests(emulator.control.requests())] == [
        f"/v1/files/{changed.file_id}/content"
    ]
    assert _sha(changed.path) == changed.sha256


async def test_cut_downloads_are_retried_and_verified(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_outputs: Path
) -> None:
    size = 2_500_000
    session_id = run_turn(client, agent, outputs=[{"name": "data.bin", "size": size, "seed": 7}])
    emulator.control.set_faults(cut_download_after_bytes=300_000, cut_download_times=2)
    emulator.control.clear_requests()
    [out] = await collect_outputs(credentials_for(emulator.url), session_id, str(tmp_outputs))
    assert out.sha256 == generated_sha256(size, 7) == _sha(out.path)
    downloads = content_requests(emulator.control.requests())
    assert len(downloads) == 3  # cut, cut, complete
    assert sum(1 for r in downloads if r["injected"]) == 2
    assert _leftovers(tmp_outputs) == []


async def test_download_cut_every_time_fails_without_partial_files(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_outputs: Path
) -> None:
    session_id = run_turn(client, agent, outputs=[{"name": "data.bin", "size": 1_000_000}])
    emulator.control.set_faults(cut_download_after_bytes=1000, cut_download_times=100)
    async with async_sdk_client(emulator.url) as aclient:
        with pytest.raises(OutputIntegrityError, match="was cut after") as caught:
            await acollect_session_outputs(aclient, session_id, tmp_outputs)
    # The last cut surfaces as our typed error, chained to the transport error that cut it.
    assert is_retryable_download_error(caught.value), repr(caught.value)
    assert caught.value.__cause__ is not None
    assert len(content_requests(emulator.control.requests())) == 5
    assert [p.name for p in tmp_outputs.iterdir()] == []


# One knob only (instant otherwise): the test counts the list requests that lag alone causes.
@pytest.mark.parametrize("emulator_config", [EmulatorConfig(output_listing_delay=1.5)])
async def test_listing_lag_is_waited_for(
    client: anthropic.Anthropic,
    emulator: EmulatorServer,
    agent: RemoteAgent,
    tmp_outputs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_id = run_turn(client, agent, outputs=[{"name": "late.txt", "size": 42}])
    async with async_sdk_client(emulator.url) as aclient:
        with pytest.raises(OutputError, match="expected 1"):
            # Its indexing window long over: only expected_count keeps it waiting, for 0.2 s.
            await acollect_session_outputs(
                aclient,
                session_id,
                tmp_outputs,
                listing_timeout=0.2,
                expected_count=1,
                turn_ended_at=datetime.now(UTC) - timedelta(minutes=1),
            )
    emulator.control.clear_requests()
    # The collector waits its indexing window (here longer than the emulator's 1.5 s lag).
    monkeypatch.setenv("MANAGED_AGENTS_OUTPUT_INDEXING_WINDOW", "2.0")
    [out] = await collect_outputs(
        credentials_for(emulator.url), session_id, str(tmp_outputs), listing_timeout=10
    )
    assert out.filename == "late.txt" and out.size_bytes == 42
    lists = [r for r in emulator.control.requests() if r["method"] == "GET" and r["path"] == "/v1/files"]
    assert len(lists) >= 2  # empty at first, then listed
    assert all("scope_id=" in r["query"] for r in lists)


async def test_path_traversal_names_are_contained(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_path: Path
) -> None:
    dest = tmp_path / "deep" / "outputs"
    marker = f"pwned-{uuid.uuid4().hex}.txt"
    names = [
        "../evil.txt",
        f"/tmp/{marker}",
        "a/../../b.txt",
        "sub\\..\\..\\x.txt",
        "..",
        "con\0x",
        "../" * 20 + "etc/passwd",
        "report.md",
        "../report.md",
    ]
    session_id = run_turn(
        client, agent, outputs=[{"name": n, "size": 16, "seed": i} for i, n in enumerate(names)]
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    outputs = await collect_outputs(credentials_for(emulator.url), session_id, dest)
    assert len(outputs) == len(names)
    for out in outputs:
        assert Path(out.path).parent == dest.resolve()
        assert Path(out.path).read_bytes()  # written, 16 bytes
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    new = [p for p in after if p not in before]
    assert all(p.parts[:2] == ("deep", "outputs") or p == Path("deep") for p in new), new
    assert not Path("/tmp", marker).exists()
    local_names = sorted(Path(o.path).name for o in outputs)
    assert len(set(local_names)) == len(names)  # the two report.md are disambiguated
    assert "evil.txt" in local_names and "passwd" in local_names and "con_x" in local_names


async def test_input_copies_are_not_collected(
    client: anthropic.Anthropic,
    emulator: EmulatorServer,
    agent: RemoteAgent,
    tmp_path: Path,
    tmp_outputs: Path,
) -> None:
    # Instant but for listing the input copies: the listing is compared exactly.
    emulator_store_shows_copies = EmulatorConfig(list_input_copies_in_scope=True)
    with EmulatorServer(emulator_store_shows_copies) as emu:
        sync = sdk_client(emu.url)
        remote = create_remote_agent(sync)
        source = tmp_path / "input.txt"
        source.write_text("input data\n")
        uploaded = sync.beta.files.upload(file=source)
        session_id = run_turn(
            sync,
            remote,
            resources=[
                {"type": "file", "file_id": uploaded.id, "mount_path": "/mnt/session/uploads/input.txt"}
            ],
            outputs=[{"name": "out.txt", "size": 5}],
        )
        listed = [
            f.filename
            for f in settled(sync).beta.files.list(scope_id=session_id, betas=["managed-agents-2026-04-01"])
        ]
        assert sorted(listed) == ["input.txt", "out.txt"]  # the emulator shows the copy, as configured
        outputs = await collect_outputs(credentials_for(emu.url), session_id, str(tmp_outputs))
    assert [o.filename for o in outputs] == ["out.txt"]


async def test_local_and_remote_filesystem_blocks(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_path: Path
) -> None:
    session_id = run_turn(client, agent, outputs=[{"name": "x.bin", "size": 1_500_000, "seed": 5}])
    expected = generated_sha256(1_500_000, 5)
    creds = credentials_for(emulator.url)

    local_block = LocalFileSystem(basepath=str(tmp_path / "lfs"))
    [local] = await collect_outputs(creds, session_id, local_block)
    assert Path(local.path) == (tmp_path / "lfs" / "x.bin").resolve()
    assert _sha(local.path) == expected

    # fsspec's in-memory file system stands in for an object store (no server needed).
    remote_block = RemoteFileSystem(basepath=f"memory://bucket/{tmp_path.name}")
    [remote] = await collect_outputs(creds, session_id, remote_block)
    assert remote.path == f"memory://bucket/{tmp_path.name}/x.bin"
    assert hashlib.sha256(remote_block.filesystem.cat_file(remote.path)).hexdigest() == expected
    emulator.control.clear_requests()
    [again] = await collect_outputs(creds, session_id, remote_block)
    assert again.skipped and content_requests(emulator.control.requests()) == []


async def test_large_output_downloads_with_bounded_memory(
    client: anthropic.Anthropic, emulator: EmulatorServer, agent: RemoteAgent, tmp_outputs: Path
) -> None:
    size = 256 * 1024 * 1024
    session_id = run_turn(client, agent, outputs=[{"name": "huge.bin", "size": size, "seed": 11}])
    async with async_sdk_client(emulator.url) as aclient:
        tracemalloc.start()
        try:
            [out] = await acollect_session_outputs(aclient, session_id, tmp_outputs)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert out.size_bytes == size == os.path.getsize(out.path)
    assert out.sha256 == generated_sha256(size, 11)
    # Peak Python allocations (this process, emulator thread included) stay a few chunks big.
    assert peak < 40 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
