"""Sync flows are derived from their async flows: one name, one signature, one schema."""

from __future__ import annotations

import inspect

import pytest
from prefect import Flow
from prefect.utilities.callables import parameter_schema

from flows.batch import arun_agent_batch, run_agent_batch
from flows.follow_up import acontinue_agent_session, continue_agent_session
from flows.session import arun_agent_session, run_agent_session
from flows.sweep import asweep_sessions, sweep_sessions

TWINS = [
    (run_agent_session, arun_agent_session),
    (continue_agent_session, acontinue_agent_session),
    (run_agent_batch, arun_agent_batch),
    (sweep_sessions, asweep_sessions),
]


@pytest.mark.parametrize(("sync", "async_"), TWINS, ids=lambda f: f.name if isinstance(f, Flow) else "")
def test_a_sync_twin_is_the_same_flow_to_prefect_and_its_ui(sync: Flow, async_: Flow) -> None:  # type: ignore[type-arg]
    assert not sync.isasync and async_.isasync
    assert sync.name == async_.name
    assert str(inspect.signature(sync.fn)) == str(inspect.signature(async_.fn, eval_str=True))
    assert sync.fn.__doc__ == async_.fn.__doc__ and "Args:" in str(sync.fn.__doc__)
    schema = parameter_schema(sync.fn).model_dump()
    assert schema == parameter_schema(async_.fn).model_dump()
    assert all(prop.get("description") for prop in schema["properties"].values()), schema["properties"]
    for hooks in ("on_failure_hooks", "on_cancellation_hooks", "on_crashed_hooks", "on_completion_hooks"):
        assert getattr(sync, hooks) == getattr(async_, hooks)


REQUIRED = {
    "run-agent-session": {"agent": "report-writer", "prompt": "hi"},
    "continue-agent-session": {"agent": "report-writer", "session_id": "sesn_1", "prompt": "hi"},
    "run-agent-batch": {"agent": "report-writer", "items": ["hi"]},
    "sweep-agent-sessions": {},
}


@pytest.mark.parametrize(("sync", "async_"), TWINS, ids=lambda f: f.name if isinstance(f, Flow) else "")
def test_a_sync_twin_validates_its_parameters_like_its_async_flow(sync: Flow, async_: Flow) -> None:  # type: ignore[type-arg]
    # Prefect validates call arguments against a model built from the signature; a twin whose
    # annotations do not resolve where Prefect looks fails here, not in a user's first run.
    parameters = REQUIRED[sync.name]
    assert sync.validate_parameters(parameters) == async_.validate_parameters(parameters)


def test_the_session_flows_schema_names_every_parameter_in_order() -> None:
    schema = parameter_schema(run_agent_session.fn).model_dump()
    assert list(schema["properties"]) == [
        "agent",
        "prompt",
        "files",
        "memory_stores",
        "output_dir",
        "confirmation_policy",
        "max_duration_seconds",
        "archive_when_done",
        "custom_tools",
        "custom_tool_retries",
        "outcome",
        "session_id",
        "budget_usd",
        "github_repositories",
        "vault_ids",
        "detach",
    ]
    assert schema["required"] == ["agent", "prompt"]
