"""A key only goes where it was saved to go (docs/security.md, "the worker's key").

The worker's environment holds ``ANTHROPIC_API_KEY`` (and ``ANTHROPIC_BASE_URL``, the emulator
here). Each attack below points a run at a plain HTTP listener instead; the listener must receive
nothing, the run must end in a typed error, and the worker's API must see no write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prefect.exceptions import ParameterTypeError

from blocks.agent import ManagedAgent
from blocks.credentials import AnthropicCredentials
from emulator import EmulatorServer
from managed_agents_core.exceptions import CredentialsDestinationError, InlineBlockError
from tests.integration.session_helpers import RemoteAgent, scenario

from .conftest import Roots
from .helpers import (
    PARAMETER_KEY,
    WORKER_KEY,
    Listener,
    automation_parameters,
    files_under,
    inline_agent,
    run_as_deployment,
    run_records,
    state_error,
    writes,
)

pytestmark = pytest.mark.usefixtures("prefect_harness", "worker_env")

SPEC: dict[str, Any] = {
    "name": "security-agent",
    "model": "claude-opus-4-8",
    "environment": {"name": "security-env"},
}


def _outcome(attack: Callable[[], Any]) -> BaseException | None:
    """Run the attack; return the error it ended in (raised, or held by a flow-run state)."""
    try:
        result = attack()
    except Exception as exc:
        return exc
    if hasattr(result, "is_failed"):  # a flow-run state
        return state_error(result)
    return None


def _attacks(listener: Listener, roots: Roots) -> dict[str, tuple[Callable[[], Any], type[BaseException]]]:
    from flows.batch import run_agent_batch
    from flows.follow_up import continue_agent_session
    from flows.session import run_agent_session
    from flows.setup import deploy_agent
    from flows.sweep import sweep_sessions

    out = str(roots.outputs)
    inline = inline_agent(listener.url)
    return {
        # From Python: an inline block without its own key, pointing elsewhere.
        "python-session-inline-agent": (
            lambda: run_agent_session(agent=ManagedAgent(**inline), prompt="hi", output_dir=out),
            CredentialsDestinationError,
        ),
        "python-follow-up-inline-agent": (
            lambda: continue_agent_session(
                agent=ManagedAgent(**inline), session_id="sesn_x", prompt="hi", output_dir=out
            ),
            CredentialsDestinationError,
        ),
        "python-job-block-trigger": (
            lambda: ManagedAgent(**inline).trigger("hi"),
            CredentialsDestinationError,
        ),
        "python-deploy-agent-inline-credentials": (
            lambda: deploy_agent(SPEC, "security-x", credentials=AnthropicCredentials(base_url=listener.url)),
            CredentialsDestinationError,
        ),
        "python-sweeper-inline-credentials": (
            lambda: sweep_sessions(credentials=AnthropicCredentials(base_url=listener.url)),
            CredentialsDestinationError,
        ),
        # Deployment runs: the parameters come from whoever may run the deployment.
        "deployment-run-session-inline-agent": (
            lambda: run_as_deployment(
                run_agent_session, {"agent": inline, "prompt": "hi", "output_dir": out}
            ),
            InlineBlockError,
        ),
        "deployment-run-batch-inline-agent": (
            lambda: run_as_deployment(run_agent_batch, {"agent": inline, "items": ["hi"], "output_dir": out}),
            InlineBlockError,
        ),
        "deployment-run-deploy-agent-inline-credentials": (
            lambda: run_as_deployment(
                deploy_agent,
                {"spec": SPEC, "block_name": "security-y", "credentials": {"base_url": listener.url}},
            ),
            InlineBlockError,
        ),
        # An Automation whose RunDeployment action fills `agent` from an event's payload.
        "automation-templated-inline-agent": (
            lambda: run_as_deployment(
                run_agent_session,
                automation_parameters(
                    {
                        "agent": "{{ event.payload.agent }}",
                        "prompt": "{{ event.payload.text }}",
                        "output_dir": out,
                    },
                    {"agent": inline, "text": "Summarise the ticket."},
                ),
            ),
            InlineBlockError,
        ),
    }


ATTACKS = [
    "python-session-inline-agent",
    "python-follow-up-inline-agent",
    "python-job-block-trigger",
    "python-deploy-agent-inline-credentials",
    "python-sweeper-inline-credentials",
    "deployment-run-session-inline-agent",
    "deployment-run-batch-inline-agent",
    "deployment-run-deploy-agent-inline-credentials",
    "automation-templated-inline-agent",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_listener_receives_no_request_carrying_the_worker_key(
    attack: str, listener: Listener, roots: Roots, emulator: EmulatorServer
) -> None:
    """Before: an inline ``agent`` (or ``credentials``) whose ``base_url`` is the listener made the
    worker send ``Authorization: Bearer <its key>`` there (32 requests). Now: a typed error before
    any request, 0 requests at the listener, no write at the worker's API, no file written."""
    run, expected = _attacks(listener, roots)[attack]
    emulator.control.clear_requests()
    error = _outcome(run)
    assert isinstance(error, expected), f"{attack}: {type(error).__name__}: {error}"
    assert WORKER_KEY not in str(error)
    assert listener.carrying(WORKER_KEY) == []
    assert listener.requests == [], f"{attack}: the listener received {len(listener.requests)} request(s)"
    assert writes(emulator) == []
    assert files_under(roots.outputs) == []
    assert "base_url" in str(error) or "saved" in str(error)  # says what to fix


def test_the_environments_key_only_goes_to_the_environments_base_url(
    listener: Listener, emulator: EmulatorServer
) -> None:
    """The pairing rule on its own: the environment's key with the environment's URL (however it
    is spelled), a block's own key with its own URL; never the environment's key elsewhere."""
    pair = AnthropicCredentials().resolved_pair()
    assert pair == (WORKER_KEY, emulator.url)
    assert AnthropicCredentials(base_url=emulator.url.upper().replace("HTTP", "http") + "/").resolved_pair()[
        0
    ]
    for elsewhere in (
        listener.url,
        "https://api.anthropic.com",
        emulator.url.replace("127.0.0.1", "localhost"),
    ):
        with pytest.raises(CredentialsDestinationError, match="ANTHROPIC_API_KEY") as caught:
            AnthropicCredentials(base_url=elsewhere).get_client()
        assert WORKER_KEY not in str(caught.value)
        with pytest.raises(CredentialsDestinationError):
            AnthropicCredentials(base_url=elsewhere).get_async_client()
    assert listener.requests == []


def test_credentials_with_their_own_key_stay_possible_from_python(listener: Listener) -> None:
    """A block (or inline object) with its own key and base URL keeps its pair: the listener gets
    that key, and never the worker's."""
    credentials = AnthropicCredentials(api_key=PARAMETER_KEY, base_url=listener.url, max_retries=0)
    # The listener is no API: only the request's headers matter here.
    with credentials.get_client() as c, suppress(anthropic.APIError, ValueError):
        c.beta.agents.list()
    assert len(listener.requests) == 1
    assert listener.carrying(PARAMETER_KEY) == listener.requests
    assert listener.carrying(WORKER_KEY) == []


def test_every_request_selects_the_credentials_workspace(listener: Listener) -> None:
    """A workspace other than ``default`` goes with every request (``anthropic-workspace-id``,
    as the SDK's ``workspace_id=`` sends it); the key's own workspace sends no header."""
    for workspace in ("wrkspc_01Ab", "default"):
        credentials = AnthropicCredentials(
            api_key=PARAMETER_KEY, base_url=listener.url, max_retries=0, workspace_id=workspace
        )
        with credentials.get_client() as c, suppress(anthropic.APIError, ValueError):
            c.beta.agents.list()
    selected = [
        {k.lower(): v for k, v in r["headers"].items()}.get("anthropic-workspace-id")
        for r in listener.requests
    ]
    assert selected == ["wrkspc_01Ab", None]


def test_a_block_without_a_key_follows_the_environment_pair(
    emulator: EmulatorServer, remote_agent: RemoteAgent, roots: Roots
) -> None:
    """Positive control: a saved block with neither key nor base URL runs on the worker's own pair."""
    from flows.session import run_agent_session

    name = "security-env-pair"
    ManagedAgent(
        agent_id=remote_agent.agent_id,
        version=remote_agent.version,
        environment_id=remote_agent.environment_id,
        agent_name="security",
    ).save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]
    result = run_agent_session(agent=name, prompt=scenario(reply="paired"), output_dir=str(roots.outputs))
    assert result.final_message.startswith("paired")


def test_a_key_in_a_parameter_is_never_echoed_in_logs_artifacts_events_or_errors(
    listener: Listener, roots: Roots, emulator: EmulatorServer
) -> None:
    """A deployment run whose inline ``agent`` carries a key of its own: refused, and neither that
    key nor the worker's appears in the run's state message, logs, artifacts or events (read back
    from the Prefect API) or in the exception."""
    from flows.session import run_agent_session

    agent = inline_agent(listener.url, api_key=PARAMETER_KEY)
    state = run_as_deployment(
        run_agent_session, {"agent": agent, "prompt": "hi", "output_dir": str(roots.outputs)}
    )
    error = state_error(state)
    assert isinstance(error, InlineBlockError)
    records = run_records(state.state_details.flow_run_id, wait_for_logs=True)
    assert records["found_final_event"], "the run's Failed event never arrived"
    assert records["logs"], "the run logged nothing at all"
    haystack = json.dumps(records) + str(error) + repr(error)
    assert PARAMETER_KEY not in haystack
    assert WORKER_KEY not in haystack
    assert listener.requests == [] and writes(emulator) == []


def test_a_malformed_inline_agent_with_a_key_is_not_echoed_either(
    listener: Listener, roots: Roots, emulator: EmulatorServer
) -> None:
    """From Python, an inline agent that fails validation: the error and the Prefect API's records
    of the run name fields, never the values (the key) they were given. (Prefect itself prints a
    failed validation's parameters to the flow-run process's console; see docs/security.md.)"""
    from flows.session import run_agent_session

    agent = {**inline_agent(listener.url, api_key=PARAMETER_KEY), "version": 0}
    state = run_agent_session(agent=agent, prompt="hi", output_dir=str(roots.outputs), return_state=True)
    error = state_error(state)
    assert isinstance(error, ParameterTypeError), type(error)
    records = run_records(state.state_details.flow_run_id)
    assert PARAMETER_KEY not in json.dumps(records) + str(error) + repr(error)
    assert listener.requests == [] and writes(emulator) == []


async def test_cancel_and_crash_hooks_never_build_a_client_from_an_inline_agent(
    listener: Listener, tmp_path: Path
) -> None:
    """The cancel/crash hooks rebuild the agent from the stored parameters; an inline one (as a
    dict, as the API stores it, or as a block object) is never used: no client, no request."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    from flows.hooks import acleanup_session
    from flows.session import run_agent_session

    async with get_client() as client:
        for agent in (inline_agent(listener.url), ManagedAgent(**inline_agent(listener.url))):
            stored = agent if isinstance(agent, dict) else agent.model_dump(mode="json")
            flow_run = await client.create_flow_run(
                run_agent_session, parameters={"agent": stored, "prompt": "x"}
            )
            flow_run = flow_run.model_copy(
                update={"labels": {"managed-agents.session-id": "sesn_x"}, "parameters": {"agent": agent}}
            )
            assert await acleanup_session(run_agent_session, flow_run, Cancelled()) is None
    assert listener.requests == []
