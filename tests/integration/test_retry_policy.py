"""The shared task retry policy retries transient API errors only, in sync and async tasks."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from prefect import flow, task

from tasks.retry import TRANSIENT_RETRY_OPTIONS, is_transient_error

pytestmark = pytest.mark.usefixtures("prefect_harness")

NO_WAIT = {**TRANSIENT_RETRY_OPTIONS, "retry_delay_seconds": 0, "retry_jitter_factor": None}
REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/sessions")


def _status_error(status: int) -> anthropic.APIStatusError:
    response = httpx.Response(status, request=REQUEST)
    return anthropic.APIStatusError(f"status {status}", response=response, body=None)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (anthropic.APIConnectionError(request=REQUEST), True),
        (anthropic.APITimeoutError(request=REQUEST), True),
        (_status_error(429), True),
        (_status_error(500), True),
        (_status_error(529), True),
        (_status_error(400), False),
        (_status_error(404), False),
        (_status_error(409), False),
        (ValueError("bad input"), False),
    ],
)
def test_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient_error(exc) is transient


def test_async_task_retries_transient_and_not_final_errors() -> None:
    calls = {"flaky": 0, "final": 0}

    @task(**NO_WAIT)
    async def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise anthropic.APIConnectionError(request=REQUEST)
        return "ok"

    @task(**NO_WAIT)
    async def final() -> None:
        calls["final"] += 1
        raise _status_error(400)

    @flow
    async def run() -> str:
        result = await flaky()
        with pytest.raises(anthropic.APIStatusError):
            await final()
        return result

    import asyncio

    assert asyncio.run(run()) == "ok"
    assert calls == {"flaky": 3, "final": 1}


def test_sync_task_retries_transient_errors() -> None:
    calls = {"n": 0}

    @task(**NO_WAIT)
    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 2:
            raise _status_error(529)
        return calls["n"]

    @flow
    def run() -> int:
        return flaky()

    assert run() == 2
