"""Session resources through the real SDK: list, add, retrieve, update, delete."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta.sessions import (
    BetaManagedAgentsDeleteSessionResource,
    BetaManagedAgentsFileResource,
    BetaManagedAgentsSessionResource,
)

from emulator import EmulatorServer
from tests.contract.session_support import make_session, message, run_turn
from tests.contract.strict import body_of, strict

REPO = {
    "type": "github_repository",
    "url": "https://github.com/acme/widgets.git",
    "authorization_token": "ghp_FIRST_SECRET",
    "mount_path": "/src/widgets",
    "checkout": {"type": "commit", "sha": "0123abcd"},
}


def _session_with_repo(client: anthropic.Anthropic) -> tuple[dict[str, Any], dict[str, Any]]:
    session = make_session(client, resources=[REPO])
    return session, session["resources"][0]


def test_add_list_retrieve_delete_file_resource(
    client: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    session, repo = _session_with_repo(client)
    upload = client.beta.files.upload(file=("notes.txt", b"one two three\n", "text/plain"))
    raw = client.beta.sessions.resources.with_raw_response.add(session["id"], type="file", file_id=upload.id)
    added = body_of(raw)
    strict(BetaManagedAgentsFileResource, added)
    assert added["id"].startswith("sesrsc_") and added["file_id"] != upload.id
    assert added["mount_path"] == f"/mnt/session/uploads/{upload.id}"

    listed = body_of(client.beta.sessions.resources.with_raw_response.list(session["id"]))
    assert [r["id"] for r in listed["data"]] == [repo["id"], added["id"]]
    assert listed["next_page"] is None
    for item in listed["data"]:
        strict(BetaManagedAgentsSessionResource, item)
    paged = [getattr(r, "id", None) for r in client.beta.sessions.resources.list(session["id"], limit=1)]
    assert paged == [repo["id"], added["id"]]

    got = body_of(
        client.beta.sessions.resources.with_raw_response.retrieve(added["id"], session_id=session["id"])
    )
    strict(BetaManagedAgentsSessionResource, got)
    assert got == added

    # A file added later is mounted for the next turn: the report lists it.
    run_turn(client, emulator.url, session["id"], message("report please"))
    report = next(
        f
        for f in client.beta.files.list(scope_id=session["id"], betas=["managed-agents-2026-04-01"])
        if f.filename == "report.md"
    )
    assert "notes.txt" in client.beta.files.download(report.id).text()

    deleted = body_of(
        client.beta.sessions.resources.with_raw_response.delete(added["id"], session_id=session["id"])
    )
    strict(BetaManagedAgentsDeleteSessionResource, deleted)
    assert deleted == {"id": added["id"], "type": "session_resource_deleted"}
    assert [getattr(r, "id", None) for r in client.beta.sessions.resources.list(session["id"])] == [
        repo["id"]
    ]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve(added["id"], session_id=session["id"])


def test_github_token_rotation_never_echoes_the_token(client: anthropic.Anthropic) -> None:
    session, repo = _session_with_repo(client)
    assert repo["url"] == REPO["url"] and repo["mount_path"] == "/src/widgets"
    assert repo["checkout"] == {"type": "commit", "sha": "0123abcd"}
    raw = client.beta.sessions.resources.with_raw_response.update(
        repo["id"], session_id=session["id"], authorization_token="ghp_SECOND_SECRET"
    )
    body = body_of(raw)
    strict(BetaManagedAgentsSessionResource, body)
    assert "SECRET" not in raw.http_response.text
    assert body["updated_at"] >= repo["updated_at"]
    listing = client.beta.sessions.resources.with_raw_response.list(session["id"])
    assert "SECRET" not in listing.http_response.text


def test_resource_errors(client: anthropic.Anthropic) -> None:
    session, _ = _session_with_repo(client)
    upload = client.beta.files.upload(file=("a.txt", b"a", "text/plain"))
    file_resource = client.beta.sessions.resources.add(session["id"], type="file", file_id=upload.id)
    with pytest.raises(anthropic.BadRequestError, match="github_repository"):
        client.beta.sessions.resources.update(
            file_resource.id, session_id=session["id"], authorization_token="x"
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.resources.add(session["id"], type="github_repository", file_id="x")  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.add(session["id"], type="file", file_id="file_unknown")
    with pytest.raises(anthropic.BadRequestError, match="absolute"):
        client.beta.sessions.resources.add(
            session["id"], type="file", file_id=upload.id, mount_path="relative/x"
        )
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.list("sesn_unknown")
    client.beta.sessions.archive(session["id"])
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.resources.add(session["id"], type="file", file_id=upload.id)


async def test_async_resources(async_client: anthropic.AsyncAnthropic, client: anthropic.Anthropic) -> None:
    session, repo = _session_with_repo(client)
    items = [getattr(r, "id", None) async for r in async_client.beta.sessions.resources.list(session["id"])]
    assert items == [repo["id"]]
    got = await async_client.beta.sessions.resources.retrieve(repo["id"], session_id=session["id"])
    assert got.type == "github_repository"
