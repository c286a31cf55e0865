"""Strict validation of raw response bodies against the SDK's own pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

T = TypeVar("T")


def strict(model: Any, body: Any) -> Any:
    """Validate ``body`` with ``model.model_validate`` (or a TypeAdapter for unions).

    Unlike the SDK's lenient ``construct``-style parsing, this fails on a missing required
    field or a wrong type, so the emulator cannot drift from the SDK.
    """
    if hasattr(model, "model_validate"):
        return model.model_validate(body)
    return TypeAdapter(model).validate_python(body)


def body_of(raw: Any) -> Any:
    """Return the decoded JSON of an SDK ``with_raw_response`` result (or an httpx response)."""
    response = raw.http_response if hasattr(raw, "http_response") else raw
    assert isinstance(response, httpx.Response) or hasattr(response, "json")
    return response.json()
