"""Prefect task retries under the one retry policy (:mod:`managed_agents_core.retry_policy`).

The SDK already retries 408/409/429/5xx and connection errors inside each call (``max_retries``).
The task-level policy is the last line: it retries a whole task only for the same transient
classes, never for a 4xx that says the input is wrong, and never for an error one of our own
loops already retried as often as the policy allows.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from managed_agents_core.retry_policy import TASK_RETRIES, is_transient_error

__all__ = ["TRANSIENT_RETRY_OPTIONS", "is_transient_error", "retry_on_transient"]


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry the task only when it failed transiently."""
    try:
        # _sync=True: inside an async task a plain result() would return an un-awaited coroutine
        # and never raise, so no failure would ever look transient.
        state.result(_sync=True)
    except BaseException as exc:  # classify only; the state already holds the error
        return is_transient_error(exc)
    return False


TRANSIENT_RETRY_OPTIONS: dict[str, Any] = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
}
"""Keyword arguments for ``@task(...)``: up to 3 retries, 1 s, 2 s, 4 s (±50 %), transient only."""
