"""Usage objects (reference §15): a session's cumulative usage and each thread's share of it.

The session's ``usage`` is the sum over its threads: each model request adds to the usage of
the thread that made it and to the session's (:func:`add_request`); the primary thread's usage
is what the session's usage holds beyond its child threads' (:func:`minus`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens")
_NESTED = {
    "cache_creation": ("ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"),
    "server_tool_use": ("web_fetch_requests", "web_search_requests"),
}


def zero_usage() -> dict[str, Any]:
    """Return the usage object of a fresh session (or thread)."""
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "active_seconds": 0.0,
        "list_cost": {"amount": "0", "currency": "USD"},
        "server_tool_use": {"web_fetch_requests": 0, "web_search_requests": 0},
    }


def add_request(total: dict[str, Any], input_tokens: int, output_tokens: int, cost_cents: int) -> None:
    """Add one model request's tokens and list cost (US cents) to a usage object in place."""
    total["input_tokens"] = total.get("input_tokens", 0) + input_tokens
    total["output_tokens"] = total.get("output_tokens", 0) + output_tokens
    total["list_cost"] = {"amount": str(cents(total) + cost_cents), "currency": "USD"}


def cents(usage: dict[str, Any]) -> int:
    """The list cost of a usage object, in US cents (0 when absent)."""
    return int((usage.get("list_cost") or {"amount": "0"})["amount"])


def minus(total: dict[str, Any], parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Return ``total`` less every usage in ``parts`` (tokens, requests and list cost).

    ``active_seconds`` is kept as it is: it is wall time, which overlapping threads share.
    """
    out = {**total, "cache_creation": dict(total.get("cache_creation") or {})}
    out["server_tool_use"] = dict(total.get("server_tool_use") or {})
    amount = cents(total)
    for part in parts:
        for key in _COUNTS:
            out[key] = out.get(key, 0) - part.get(key, 0)
        for group, keys in _NESTED.items():
            for key in keys:
                out[group][key] = out[group].get(key, 0) - (part.get(group) or {}).get(key, 0)
        amount -= cents(part)
    out["list_cost"] = {"amount": str(amount), "currency": "USD"}
    return out
