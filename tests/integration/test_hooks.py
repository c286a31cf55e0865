"""cleanup_session reads the session id from the flow-run label and the agent from parameters."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import anthropic
import pytest
from prefect.client.schemas.objects import FlowRun

from blocks.agent import ManagedAgent
from emulator import EmulatorServer
from flows.hooks import acleanup_session, cleanup_session_if_timed_out
from managed_agents_core.keys import SESSION_LABEL, session_tag
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import (
    create_remote_agent,
    message,
    save_agent_block,
    scenario,
    settled,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _flow_run(labels: dict[str, str], parameters: dict[str, Any], tags: list[str] | None = None) -> FlowRun:
    # The FlowRun a runner passes to hooks (test_cancel.py covers the real served path).
    return FlowRun(
        id=uuid4(), name="hook-test", flow_id=uuid4(), labels=labels, parameters=parameters, tags=tags or []
    )


@pytest.mark.parametrize("marked_by", ["tag", "label of an earlier version"])
@pytest.mark.parametrize("form", ["name", "ref", "serialized"])
async def test_hook_interrupts_then_archives_and_is_idempotent(
    emulator: EmulatorServer, client: anthropic.Anthropic, form: str, marked_by: str
) -> None:
    remote = create_remote_agent(client)
    name = save_agent_block(remote, emulator.url, TEST_API_KEY)
    block: ManagedAgent = await ManagedAgent.aload(name)
    # The forms a stored ``agent`` parameter takes: a block name, a UI/deployment $ref, and a
    # block instance as Prefect records it (secrets masked, document name kept).
    parameter: Any = {
        "name": name,
        "ref": {"$ref": {"block_document_id": str(block._block_document_id)}},
        "serialized": {
            **block.model_dump(mode="json"),
            "_block_document_name": name,
            "_block_document_id": str(block._block_document_id),
        },
    }[form]
    session = client.beta.sessions.create(agent=remote.reference(), environment_id=remote.environment_id)  # type: ignore[arg-type]
    client.beta.sessions.events.send(
        session.id,
        events=[message(scenario(stream={"count": 10_000, "delay": 0.05}))],  # type: ignore[list-item]
    )
    if marked_by == "tag":
        flow_run = _flow_run({}, {"agent": parameter}, tags=["nightly", session_tag(session.id)])
    else:
        flow_run = _flow_run({SESSION_LABEL: session.id}, {"agent": parameter})
    state = SimpleNamespace(name="Cancelling", message="")

    assert await acleanup_session(None, flow_run, state) == "archived"
    assert await acleanup_session(None, flow_run, state) == "already-archived"
    history = [e.type for e in settled(client).beta.sessions.events.list(session.id, limit=1000)]
    assert "user.interrupt" in history
    assert settled(client).beta.sessions.retrieve(session.id).archived_at is not None


async def test_hook_without_label_or_agent_does_nothing_and_never_raises(emulator: EmulatorServer) -> None:
    state = SimpleNamespace(name="Crashed", message="")
    assert await acleanup_session(None, _flow_run({}, {"agent": "x"}), state) is None
    assert await acleanup_session(None, _flow_run({SESSION_LABEL: "sesn_1"}, {"agent": 42}), state) is None
    missing_block = _flow_run({SESSION_LABEL: "sesn_1"}, {"agent": "no-such-block"})
    assert await acleanup_session(None, missing_block, state) is None


def test_failure_hook_only_cleans_up_after_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        "flows.hooks.cleanup_session", lambda flow, flow_run, state: calls.append(state.message)
    )
    cleanup_session_if_timed_out(
        None, None, SimpleNamespace(message="Flow run exceeded timeout of 5 second(s)")
    )
    cleanup_session_if_timed_out(
        None, None, SimpleNamespace(message="SessionTimeoutError: ran past max_duration")
    )
    cleanup_session_if_timed_out(None, None, SimpleNamespace(message="SessionRefusedError: refused"))
    assert len(calls) == 2
