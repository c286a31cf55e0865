"""The one rule for which API errors are worth trying again, shared by every layer.

Transient: connection failures and timeouts (the SDK's ``APIConnectionError`` and the
``httpx2`` transport errors it can leak mid-body), 408, 429, every 5xx and 529 overloaded.
Everything else is final: 400/401/403/404, 409 conflicts (a stale version, a session that is
archived or terminated), and this integration's own typed errors, except that an unreachable
API (:class:`~managed_agents_core.exceptions.ApiUnreachableError`, a ``ConnectionError``) may come back.
"""

from __future__ import annotations

import anthropic
import httpx2

from .exceptions import SessionError

TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient_error(exc: BaseException) -> bool:
    """Return True when ``exc`` may succeed if the same call is made again."""
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
    return isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, SessionError)
