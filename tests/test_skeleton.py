"""The skeleton is installable and the emulator answers with the API's envelope."""

from __future__ import annotations

import anthropic
import pytest

from emulator import EmulatorServer


def test_unknown_route_uses_error_envelope(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.get("/v1/nothing-here", cast_to=object)
    assert info.value.request_id and info.value.request_id.startswith("req_")


def test_missing_key_is_401(emulator: EmulatorServer) -> None:
    import httpx

    resp = httpx.get(f"{emulator.url}/v1/agents", headers={"anthropic-beta": "managed-agents-2026-04-01"})
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert resp.headers["request-id"].startswith("req_")
