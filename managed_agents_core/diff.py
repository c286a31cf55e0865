"""Field-by-field differences between two agent configurations, and their markdown rendering."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IGNORED_KEYS = frozenset({"id", "type", "version", "created_at", "updated_at", "archived_at"})
"""Top-level snapshot keys that differ between any two versions and are not configuration."""

# How list items are matched between versions, so a reordered or edited tool shows as one change.
_ITEM_KEYS = ("mcp_server_name", "skill_id", "name")
_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    """One changed leaf of an agent configuration.

    Attributes:
        path: Where it is, e.g. ``tools[agent_toolset_20260401].configs[bash].enabled``.
        old: The value before (None when added).
        new: The value after (None when removed).
        kind: ``added``, ``removed`` or ``changed``.
    """

    path: str
    old: Any
    new: Any
    kind: str


def _item_key(item: Any) -> str | None:
    if not isinstance(item, Mapping):
        return None
    for key in _ITEM_KEYS:
        if isinstance(item.get(key), str):
            return str(item[key])
    kind = item.get("type")
    return str(kind) if isinstance(kind, str) else None


def _keyed(items: Sequence[Any]) -> dict[str, Any] | None:
    """Index list items by their identifying key, or None when the items have no unique keys."""
    keys = [_item_key(i) for i in items]
    if any(k is None for k in keys) or len(set(keys)) != len(keys):
        return None
    return {str(k): i for k, i in zip(keys, items, strict=True)}


def _walk(path: str, old: Any, new: Any, out: list[FieldChange]) -> None:
    if old == new:
        return
    if old is _MISSING:
        out.append(FieldChange(path, None, new, "added"))
        return
    if new is _MISSING:
        out.append(FieldChange(path, old, None, "removed"))
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _walk(f"{path}.{key}" if path else str(key), old.get(key, _MISSING), new.get(key, _MISSING), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _keyed(old), _keyed(new)
        if old_keyed is not None and new_keyed is not None:
            order = list(old_keyed) + [k for k in new_keyed if k not in old_keyed]
            for key in order:
                _walk(f"{path}[{key}]", old_keyed.get(key, _MISSING), new_keyed.get(key, _MISSING), out)
            return
    out.append(FieldChange(path, old, new, "changed"))


def diff_agent_configs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Return every changed field between two agent snapshots (or create/update parameter dicts).

    Nested objects are compared key by key; lists of tools, tool configs, MCP servers and skills
    are matched by name (or type) so an edit to one tool is one change, not a whole-list change.
    Ids, versions and timestamps are ignored.

    Args:
        old: The earlier configuration.
        new: The later configuration.
    """
    changes: list[FieldChange] = []
    _walk(
        "",
        {k: v for k, v in old.items() if k not in IGNORED_KEYS},
        {k: v for k, v in new.items() if k not in IGNORED_KEYS},
        changes,
    )
    return changes


def _cell(value: Any, limit: int = 200) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "`" + text.replace("|", "\\|").replace("\n", "⏎").replace("`", "'") + "`"


def render_changes_markdown(changes: Sequence[FieldChange]) -> str:
    """Render changes as a markdown table (field, change, before, after).

    Args:
        changes: The output of :func:`diff_agent_configs`.
    """
    if not changes:
        return "_No configuration changes._\n"
    rows = ["| Field | Change | Before | After |", "|---|---|---|---|"]
    rows += [f"| `{c.path}` | {c.kind} | {_cell(c.old)} | {_cell(c.new)} |" for c in changes]
    return "\n".join(rows) + "\n"
