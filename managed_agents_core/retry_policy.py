"""The one retry policy: how often each layer tries an API call again, and the bound on all of
them together.

Three layers can retry a call, and they must not multiply:

1. **The SDK** retries reads ``max_retries`` times (``AnthropicCredentials.max_retries``,
   default 2: :data:`SDK_MAX_RETRIES`), honouring ``retry-after``.
2. **Our loops** (:func:`retrying`): writes whose repeat would cost something run with the SDK's
   retries off, through :func:`managed_agents_core.send_once.send_once` (:data:`WRITE_ATTEMPTS`
   sends); the other loops (confirmations, archive through the post-idle race, downloads) also
   turn the SDK's retries off and make at most :data:`LOOP_ATTEMPTS` calls.
3. **Prefect task retries** (``tasks.retry``: 3) run a task again only for a transient error
   that no loop of ours has exhausted: a loop that gives up marks its last error
   (:func:`retries_exhausted`), and :func:`is_transient_error`
   says no to it.

So one call is made at most :data:`MAX_CALL_ATTEMPTS` times: a read ``(1 + 2) x (1 + 3) = 12``,
a write or a loop's call ``max(8, 10) = 10`` (its task is not retried once the loop gave up).
``tests/integration/test_retry_bound.py`` counts it under a persistent fault.
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import anthropic
import httpx2
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from .exceptions import ApiUnreachableError, SessionError
from .settings import RuntimeSettings

SDK_MAX_RETRIES = 2
"""The SDK's own retries of a read (its default; ``AnthropicCredentials.max_retries``)."""

WRITE_ATTEMPTS = 8
"""Most sends of one write that must not repeat (SDK retries off)."""

LOOP_ATTEMPTS = 10
"""Most calls in any other loop of ours (SDK retries off)."""

TASK_RETRIES = 3
"""Prefect task retries, for a transient error no loop of ours exhausted."""

MAX_CALL_ATTEMPTS = max((1 + SDK_MAX_RETRIES) * (1 + TASK_RETRIES), WRITE_ATTEMPTS, LOOP_ATTEMPTS)
"""The most times any one API call is made, across every layer (with the default settings)."""

TRANSIENT_STATUSES = frozenset({408, 429})

_EXHAUSTED = "_managed_agents_retries_exhausted"


def is_transient_error(exc: BaseException) -> bool:
    """Return True when ``exc`` may succeed if the same call is made again.

    Transient: connection failures and timeouts (the SDK's ``APIConnectionError`` and the
    ``httpx2`` transport errors it can leak mid-body), 408, 429, every 5xx and 529 overloaded.
    Everything else is final: 400/401/403/404, 409 conflicts (a stale version, a session that is
    archived or terminated), this integration's own typed errors (except that an unreachable
    API, :class:`~managed_agents_core.exceptions.ApiUnreachableError`, a ``ConnectionError``,
    may come back), and an error a loop of ours already retried as often as the policy allows.
    """
    if retries_exhausted(exc):
        return False
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
    return isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, SessionError)


def retries_exhausted(exc: BaseException) -> bool:
    """True when a loop of ours already tried the call as often as the policy allows."""
    return bool(getattr(exc, _EXHAUSTED, False))


class _StopAndMark(stop_base):
    """Stop after ``attempts``; mark the last error so that no outer layer tries again."""

    def __init__(self, attempts: int) -> None:
        self._stop = stop_after_attempt(attempts)

    def __call__(self, retry_state: Any) -> bool:
        done = bool(self._stop(retry_state))
        outcome = retry_state.outcome
        if done and outcome is not None and outcome.failed:
            exc = outcome.exception()
            if exc is not None:
                setattr(exc, _EXHAUSTED, True)
        return done


def _root_cause(exc: BaseException) -> str:
    """The innermost error's text (``All connection attempts failed``), for a one-line message."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return str(exc) or type(exc).__name__


def unreachable_error(
    exc: anthropic.APIConnectionError, *, attempts: int, seconds: float | None = None
) -> ApiUnreachableError:
    """The typed error for an API that could not be reached: it names the request's method and
    URL (scheme, host, port and path; never a query or the key) and how long it was tried.

    Args:
        exc: The SDK's connection (or timeout) error.
        attempts: How many times the call was made.
        seconds: How long the calls and the waits between them took, when known.
    """
    request = getattr(exc, "request", None)
    origin, last = "", ""
    if request is not None:
        url = urlsplit(str(request.url))
        origin = f" at {url.scheme}://{url.netloc.rpartition('@')[2]}"
        last = f"{request.method} {url.path}: "
    kind = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "failed"
    over = f" over {seconds:.0f} s" if seconds is not None else ""
    return ApiUnreachableError(
        f"Could not reach the Managed Agents API{origin}: {attempts} attempt(s){over}, the last one "
        f"{kind} ({last}{_root_cause(exc)}). Check that the service (or emulator) is running and "
        "that the credentials block's base_url, or ANTHROPIC_BASE_URL, points at it."
    )


def _give_up(retry_state: RetryCallState) -> NoReturn:
    """Re-raise the last error; a connection failure becomes one typed, one-line error (its
    chain of transport errors would print three tracebacks for one cause)."""
    assert retry_state.outcome is not None
    exc = retry_state.outcome.exception()
    assert exc is not None
    if isinstance(exc, anthropic.APIConnectionError):
        seconds = retry_state.seconds_since_start or 0.0
        error = unreachable_error(exc, attempts=retry_state.attempt_number, seconds=seconds)
        setattr(error, _EXHAUSTED, True)  # this loop gave up: no outer layer tries again
        raise error from None
    raise exc


def _options(
    attempts: int, retry_on: Any, multiplier: float, longest: float, before_sleep: Any
) -> dict[str, Any]:
    scale = RuntimeSettings().retry_backoff_scale
    options = {
        "stop": _StopAndMark(attempts),
        "wait": wait_exponential(multiplier=multiplier * scale, max=longest * scale),
        "retry": retry_if_exception(retry_on or is_transient_error),
        "retry_error_callback": _give_up,
    }
    if before_sleep is not None:
        options["before_sleep"] = before_sleep
    return options


def retrying(
    attempts: int,
    *,
    retry_on: Any = None,
    multiplier: float = 0.5,
    longest: float = 8.0,
    before_sleep: Any = None,
) -> AsyncRetrying:
    """The policy's tenacity loop (async): exponential backoff, transient errors only.

    Args:
        attempts: Most calls.
        retry_on: Which errors to try again (default: :func:`is_transient_error`).
        multiplier: First wait, in seconds (doubling each time).
        longest: Longest wait, in seconds.
        before_sleep: Called (with tenacity's retry state) before each wait, e.g. to log.
    """
    return AsyncRetrying(**_options(attempts, retry_on, multiplier, longest, before_sleep))


def retrying_sync(
    attempts: int,
    *,
    retry_on: Any = None,
    multiplier: float = 0.5,
    longest: float = 8.0,
    before_sleep: Any = None,
) -> Retrying:
    """:func:`retrying` for sync code."""
    return Retrying(**_options(attempts, retry_on, multiplier, longest, before_sleep))
