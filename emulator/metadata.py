"""Metadata bags (§2.4): limits, and the patch semantics of update endpoints."""

from __future__ import annotations

from collections.abc import Mapping

from .errors import ApiError

MAX_PAIRS = 16
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 512


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Return ``metadata`` as a dict after checking the limits.

    Raises:
        ApiError: 400 ``invalid_metadata`` when there are more than 16 pairs, a key is empty or
            longer than 64 characters, or a value is longer than 512 characters.
    """
    if len(metadata) > MAX_PAIRS:
        raise _invalid(f"metadata may hold at most {MAX_PAIRS} pairs, got {len(metadata)}.")
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise _invalid(f"metadata keys must be 1 to {MAX_KEY_CHARS} characters, got {len(key)}.")
        if len(value) > MAX_VALUE_CHARS:
            raise _invalid(f"metadata value of {key!r} is longer than {MAX_VALUE_CHARS} characters.")
    return dict(metadata)


def patch_metadata(
    current: Mapping[str, str], patch: Mapping[str, str | None], *, empty_deletes: bool = False
) -> dict[str, str]:
    """Apply an update's metadata patch: a string upserts, ``None`` deletes, omitted keys stay.

    Args:
        current: The stored bag.
        patch: The update's ``metadata`` object.
        empty_deletes: Also delete keys set to ``""`` (environments do this).

    Returns:
        The new bag, checked with :func:`check_metadata`.
    """
    merged = dict(current)
    for key, value in patch.items():
        if value is None or (empty_deletes and value == ""):
            merged.pop(key, None)
        else:
            merged[key] = value
    return check_metadata(merged)


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, error_code="invalid_metadata")
