"""Files endpoints through the real SDK, bodies validated strictly with the SDK's models.

Session outputs and mounted-input copies are made by the session engine; these tests create them
with :mod:`emulator.blobs` on the in-process emulator (the same calls the engine makes), because
no public endpoint creates them, then read them back only through the SDK.
"""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaFileMetadata
from anthropic.types.beta.beta_deleted_file import BetaDeletedFile
from anthropic.types.file_not_downloadable_error import FileNotDownloadableError

from emulator import EmulatorConfig, EmulatorServer
from emulator.blobs import copy_for_session, create_file, generated_sha256
from emulator.runtime import Emulator
from tests.contract.strict import body_of, strict

MA_BETA = ["managed-agents-2026-04-01"]


def _live(server: EmulatorServer) -> Emulator:
    emulator = server.app.state.emulator
    assert isinstance(emulator, Emulator)
    return emulator


def _files_page(raw: Any) -> tuple[list[BetaFileMetadata], dict[str, Any]]:
    body = body_of(raw)
    assert set(body) == {"data", "next_page", "has_more", "first_id", "last_id"}
    items = [strict(BetaFileMetadata, item) for item in body["data"]]
    assert body["has_more"] is (body["next_page"] is not None)
    if items:
        assert (body["first_id"], body["last_id"]) == (items[0].id, items[-1].id)
    return items, body


def test_upload_metadata_download_delete(client: anthropic.Anthropic) -> None:
    raw = client.beta.files.with_raw_response.upload(
        file=("dir/sub/report.md", b"# Title\n", "text/markdown")
    )
    meta = strict(BetaFileMetadata, body_of(raw))
    assert meta.id.startswith("file_") and meta.filename == "report.md"
    assert (meta.mime_type, meta.size_bytes, meta.downloadable) == ("text/markdown", 8, True)
    assert meta.scope is None and meta.expires_at is None
    again = strict(BetaFileMetadata, body_of(client.beta.files.with_raw_response.retrieve_metadata(meta.id)))
    assert again == meta
    download = client.beta.files.download(meta.id)
    assert download.read() == b"# Title\n"
    assert download.http_response.headers["content-type"].startswith("text/markdown")
    assert download.http_response.headers["content-length"] == "8"
    deleted = strict(BetaDeletedFile, body_of(client.beta.files.with_raw_response.delete(meta.id)))
    assert (deleted.id, deleted.type) == (meta.id, "file_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(meta.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.download(meta.id)


def test_filename_rules_and_expiry(client: anthropic.Anthropic) -> None:
    windows = client.beta.files.upload(file=("C:\\Users\\me\\data.csv", b"a,b\n", "text/csv"))
    assert windows.filename == "data.csv"
    unnamed = client.beta.files.upload(file=("", b"hello", "text/plain"))
    assert unnamed.filename == "unnamed.txt"
    expiring = client.beta.files.upload(file=("e.txt", b"x", "text/plain"), expires_in_seconds=3600)
    assert expiring.expires_at is not None
    assert 3500 < expiring.expires_at.timestamp() - time.time() <= 3600
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.upload(file=("e.txt", b"x", "text/plain"), expires_in_seconds=10)


def test_list_pagination_and_ids(client: anthropic.Anthropic) -> None:
    made = [client.beta.files.upload(file=(f"f{i}.txt", b"x" * i, "text/plain")) for i in range(5)]
    first, body = _files_page(client.beta.files.with_raw_response.list(limit=2))
    assert [f.id for f in first] == [made[4].id, made[3].id]
    assert body["next_page"].startswith("page_")
    assert [f.id for f in client.beta.files.list(limit=2)] == [m.id for m in reversed(made)]
    picked, body = _files_page(
        client.beta.files.with_raw_response.list(ids=[made[1].id, made[3].id, "file_nope"])
    )
    assert {f.id for f in picked} == {made[1].id, made[3].id} and body["next_page"] is None
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(ids=[made[0].id], limit=5)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(limit=1001)


def test_scope_listing_outputs_not_input_copies(
    emulator: EmulatorServer, client: anthropic.Anthropic
) -> None:
    live = _live(emulator)
    upload = client.beta.files.upload(file=("in.csv", b"1,2\n", "text/csv"))
    copy = copy_for_session(live, upload.id, "sesn_011Cabc")
    output = create_file(
        live, filename="report.md", mime_type="text/markdown", data=b"out", scope_session_id="sesn_011Cabc"
    )
    lagging = create_file(
        live,
        filename="late.md",
        mime_type="text/markdown",
        data=b"late",
        scope_session_id="sesn_011Cabc",
        listable_after=time.time() + 3600,
    )
    scoped, _ = _files_page(client.beta.files.with_raw_response.list(scope_id="sesn_011Cabc", betas=MA_BETA))
    assert [f.id for f in scoped] == [output["id"]]
    assert scoped[0].scope is not None and scoped[0].scope.id == "sesn_011Cabc"
    # The copy is a real file with its own id and the same bytes; the lagging one is retrievable.
    assert client.beta.files.download(copy["id"]).read() == b"1,2\n"
    assert client.beta.files.retrieve_metadata(lagging["id"]).filename == "late.md"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(scope_id="not-a-session", betas=MA_BETA)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(scope_id="sesn_011Cabc")


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(list_input_copies_in_scope=True)])
def test_scope_listing_can_show_input_copies(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    upload = client.beta.files.upload(file=("in.csv", b"1,2\n", "text/csv"))
    copy = copy_for_session(_live(emulator), upload.id, "sesn_011Cxyz")
    assert [f.id for f in client.beta.files.list(scope_id="sesn_011Cxyz", betas=MA_BETA)] == [copy["id"]]


def test_not_downloadable(emulator: EmulatorServer, client: anthropic.Anthropic) -> None:
    meta = create_file(
        _live(emulator),
        filename="secret.bin",
        mime_type="application/octet-stream",
        data=b"s",
        downloadable=False,
    )
    assert client.beta.files.retrieve_metadata(meta["id"]).downloadable is False
    with pytest.raises(FileNotDownloadableError) as info:
        client.beta.files.download(meta["id"])
    assert info.value.error_code == "file_not_downloadable"


def test_generated_file_streams_in_bounded_memory(
    emulator: EmulatorServer, client: anthropic.Anthropic
) -> None:
    size, seed = 256 << 20, 7
    meta = create_file(
        _live(emulator),
        filename="big.bin",
        mime_type="application/octet-stream",
        generated_size=size,
        generated_seed=seed,
    )
    assert client.beta.files.retrieve_metadata(meta["id"]).size_bytes == size
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        with client.beta.files.with_streaming_response.download(meta["id"]) as response:
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert digest.hexdigest() == generated_sha256(size, seed)
    # Client and server share this process: both sides together stayed far below the file size.
    assert peak < 32 << 20, f"peak traced memory {peak} bytes"


async def test_async_upload_list_download(async_client: anthropic.AsyncAnthropic) -> None:
    raw = await async_client.beta.files.with_raw_response.upload(
        file=("a.json", b'{"a": 1}', "application/json")
    )
    meta = strict(BetaFileMetadata, body_of(raw))
    assert [f.id async for f in async_client.beta.files.list()] == [meta.id]
    content = await async_client.beta.files.download(meta.id)
    assert await content.read() == b'{"a": 1}'
    deleted = await async_client.beta.files.delete(meta.id)
    assert deleted.id == meta.id


def test_state_and_contents_survive_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(state_file=tmp_path / "state.json")
    with (
        EmulatorServer(config) as first,
        anthropic.Anthropic(api_key="k", base_url=first.url) as sdk,
    ):
        agent = sdk.beta.agents.create(name="kept", model="claude-opus-4-8")
        sdk.beta.agents.update(agent.id, system="v2")
        upload = sdk.beta.files.upload(file=("kept.txt", b"still here", "text/plain"))
        store = sdk.beta.memory_stores.create(name="kept")
        sdk.beta.memory_stores.memories.create(store.id, path="/k.md", content="k")
    with (
        EmulatorServer(config) as second,
        anthropic.Anthropic(api_key="k", base_url=second.url) as sdk,
    ):
        assert sdk.beta.agents.retrieve(agent.id).version == 2
        assert sdk.beta.agents.retrieve(agent.id, version=1).system is None
        assert sdk.beta.files.download(upload.id).read() == b"still here"
        assert [m.path for m in sdk.beta.memory_stores.memories.list(store.id)] == ["/k.md"]
