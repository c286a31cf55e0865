"""Send a write exactly once, even when the API commits it and the answer is lost.

Every create or send whose repeat would cost something (a second session, a second turn, a
second agent or store) goes through :func:`send_once` / :func:`send_once_sync` with the SDK's
own retries off: the SDK would repeat a committed request blindly. The one rule for "this write
may have been committed" is :func:`may_have_landed`; after such a failure the caller's look-up
runs before anything is sent again, and a write it finds is taken as ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anthropic

from .retry_policy import WRITE_ATTEMPTS, retrying, retrying_sync

T = TypeVar("T")

__all__ = ["may_have_landed", "send_once", "send_once_sync"]


def may_have_landed(exc: BaseException) -> bool:
    """True when a failed write may still have been committed server-side.

    The answer was lost (a connection error or timeout), or the server failed after it may have
    committed (a 5xx other than 529, which refuses before any work). A 4xx, a 429 or a 529 says
    the write was not made.
    """
    if isinstance(exc, anthropic.APIConnectionError):
        return True
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500 and exc.status_code != 529


async def send_once(
    send: Callable[[], Awaitable[T]],
    find: Callable[[], Awaitable[T | None]],
    *,
    attempts: int = WRITE_ATTEMPTS,
) -> T:
    """Make a write once: ``send`` it, and after a failure that :func:`may_have_landed`, ``find``
    it before sending again.

    Args:
        send: Makes the write with the SDK's retries off (``client.with_options(max_retries=0)``).
        find: Looks the write up through the API; returns what ``send`` would have returned,
            or None when it was not made (wait out the service's lag inside it).
        attempts: Most sends (transient failures are retried with the policy's backoff).

    Returns:
        What ``send`` returned, or what ``find`` found.
    """
    uncertain = False
    async for attempt in retrying(attempts):
        with attempt:
            if uncertain:
                found = await find()
                if found is not None:
                    return found
            try:
                return await send()
            except BaseException as exc:
                uncertain = uncertain or may_have_landed(exc)
                raise
    raise AssertionError("unreachable: the policy re-raises the last error")  # pragma: no cover


def send_once_sync(
    send: Callable[[], T],
    find: Callable[[], T | None],
    *,
    attempts: int = WRITE_ATTEMPTS,
) -> T:
    """:func:`send_once` for the sync SDK client (same rule, same policy)."""
    uncertain = False
    for attempt in retrying_sync(attempts):
        with attempt:
            if uncertain:
                found = find()
                if found is not None:
                    return found
            try:
                return send()
            except BaseException as exc:
                uncertain = uncertain or may_have_landed(exc)
                raise
    raise AssertionError("unreachable: the policy re-raises the last error")  # pragma: no cover
