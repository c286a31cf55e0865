"""The retry policy's bound, counted in the emulator's request log under a persistent fault."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter

from emulator import EmulatorServer
from flows.session import run_agent_session
from managed_agents_core.exceptions import ApiUnreachableError
from managed_agents_core.retry_policy import (
    MAX_CALL_ATTEMPTS,
    WRITE_ATTEMPTS,
    is_transient_error,
    retries_exhausted,
    retrying,
)
from tasks.retry import retry_on_transient
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import create_remote_agent, eventually, save_agent_block

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize("status", [500, 529])
def test_a_send_that_always_fails_is_made_write_attempts_times_across_every_layer(
    emulator: EmulatorServer, client: anthropic.Anthropic, status: int
) -> None:
    """500 may have landed (each failure is looked up first), 529 was refused: both stop at 8,
    and the run fails with the send's own error at once (not after waiting out the idle settle
    timeout for a prompt that never went)."""
    agent_name = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    emulator.control.clear_requests()
    emulator.control.set_faults(fail_rate=1.0, fail_statuses=[status], fail_paths=["POST /events"], seed=3)
    try:
        state = run_agent_session(agent_name, "hello", return_state=True)
    finally:
        requests = emulator.control.requests()
        emulator.control.set_faults()

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == status, repr(error)
    sends = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/events")]
    assert len(sends) == WRITE_ATTEMPTS <= MAX_CALL_ATTEMPTS
    assert all(r.get("injected") for r in sends)
    creates = [r for r in requests if r["method"] == "POST" and r["path"] == "/v1/sessions"]
    assert len(creates) == 1


async def test_an_error_a_loop_gave_up_on_is_not_retried_by_any_outer_layer() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/sessions")
    calls = 0
    with pytest.raises(ApiUnreachableError) as raised:  # a connection error, typed as it leaves
        async for attempt in retrying(3, multiplier=0.001, longest=0.001):
            with attempt:
                calls += 1
                raise anthropic.APIConnectionError(request=request)
    assert calls == 3
    assert retries_exhausted(raised.value) and not is_transient_error(raised.value)
    assert is_transient_error(anthropic.APIConnectionError(request=request))

    class _State:
        def result(self, _sync: bool) -> None:
            raise raised.value

    assert retry_on_transient(None, None, _State()) is False


async def test_the_failed_run_shows_no_task_retry(
    emulator: EmulatorServer, client: anthropic.Anthropic
) -> None:
    """Prefect's own retries did not run on top: every task run of the failed flow ran once."""
    agent_name = save_agent_block(create_remote_agent(client), emulator.url, TEST_API_KEY)
    emulator.control.set_faults(fail_rate=1.0, fail_statuses=[529], fail_paths=["POST /events"], seed=4)
    try:
        state = run_agent_session(agent_name, "hello", return_state=True)
    finally:
        emulator.control.set_faults()
    assert state.is_failed()
    async with get_client() as prefect:

        async def final_runs() -> list[Any] | None:
            # The server records task runs from the engine's events: wait until they are all in.
            runs = await prefect.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [state.state_details.flow_run_id]})
            )
            return runs if runs and all(r.state is not None and r.state.is_final() for r in runs) else None

        runs = await eventually(final_runs, "the failed flow run's task runs in final states")
    assert all(run.run_count <= 1 for run in runs), [(r.name, r.run_count) for r in runs]


async def test_a_connection_given_up_on_is_one_typed_error_naming_the_url_without_a_chain() -> None:
    request = httpx2.Request("POST", "http://user:pw@127.0.0.1:9/v1/sessions?beta=true")
    with pytest.raises(ApiUnreachableError) as raised:
        async for attempt in retrying(3, multiplier=0.001, longest=0.001):
            with attempt:
                try:
                    raise httpx2.ConnectError("All connection attempts failed")
                except httpx2.ConnectError as exc:
                    raise anthropic.APIConnectionError(request=request) from exc
    message = str(raised.value)
    assert "at http://127.0.0.1:9: 3 attempt(s)" in message
    assert "POST /v1/sessions: All connection attempts failed" in message
    assert "pw" not in message and "beta" not in message
    # No chain: Prefect logs one traceback for one cause, and no outer layer retries it.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert retries_exhausted(raised.value) and not is_transient_error(raised.value)
