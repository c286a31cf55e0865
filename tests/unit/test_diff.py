"""Field-by-field agent diffs, their markdown, and the drift rules on version snapshots."""

from __future__ import annotations

from typing import Any

from managed_agents_core.diff import FieldChange, diff_agent_configs, render_changes_markdown
from managed_agents_core.drift import agent_content, edited_outside, fingerprint_of, introducing_version
from managed_agents_core.spec import BLOCK_KEY, FINGERPRINT_KEY


def snapshot(version: int, *, system: str = "s", stamp: str | None = "f1", **extra: Any) -> dict[str, Any]:
    metadata = {FINGERPRINT_KEY: stamp, BLOCK_KEY: "dev"} if stamp else {}
    return {
        "id": "agent_1",
        "type": "agent",
        "version": version,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": f"2026-01-0{version}T00:00:00Z",
        "name": "writer",
        "system": system,
        "tools": [
            {
                "type": "agent_toolset_20260401",
                "configs": [{"name": "bash", "enabled": True}, {"name": "read", "enabled": True}],
            }
        ],
        "metadata": metadata,
        **extra,
    }


def test_identical_snapshots_have_no_changes_whatever_their_ids_and_times() -> None:
    assert diff_agent_configs(snapshot(1), snapshot(2)) == []


def test_nested_changes_are_reported_by_path_with_lists_matched_by_name() -> None:
    old = snapshot(1)
    new = snapshot(2, system="t")
    new["tools"][0]["configs"] = [{"name": "read", "enabled": True}, {"name": "bash", "enabled": False}]
    new["tools"].append({"type": "custom", "name": "lookup", "description": "d"})
    new["metadata"][FINGERPRINT_KEY] = "f2"
    assert diff_agent_configs(old, new) == [
        FieldChange(f"metadata.{FINGERPRINT_KEY}", "f1", "f2", "changed"),
        FieldChange("system", "s", "t", "changed"),
        FieldChange("tools[agent_toolset_20260401].configs[bash].enabled", True, False, "changed"),
        FieldChange("tools[lookup]", None, {"type": "custom", "name": "lookup", "description": "d"}, "added"),
    ]


def test_removed_fields_and_unkeyed_lists() -> None:
    old = {"description": "d", "allowed_hosts": ["a", "b"]}
    new = {"allowed_hosts": ["b"]}
    assert diff_agent_configs(old, new) == [
        FieldChange("allowed_hosts", ["a", "b"], ["b"], "changed"),
        FieldChange("description", "d", None, "removed"),
    ]


def test_created_agent_diff_lists_every_field_as_added() -> None:
    changes = diff_agent_configs({}, snapshot(1))
    assert {c.path for c in changes} == {"name", "system", "tools", "metadata"}
    assert all(c.kind == "added" for c in changes)


def test_markdown_table_escapes_cells_and_says_when_nothing_changed() -> None:
    assert render_changes_markdown([]) == "_No configuration changes._\n"
    table = render_changes_markdown([FieldChange("system", "a|b\nc", None, "removed")])
    assert table.splitlines()[0] == "| Field | Change | Before | After |"
    assert "| `system` | removed | `a\\|b⏎c` | - |" in table
    long = render_changes_markdown([FieldChange("system", "x" * 500, "y", "changed")])
    assert "…" in long and len(long) < 400


def test_content_ignores_our_stamps_but_not_user_metadata() -> None:
    a, b = snapshot(1), snapshot(2, stamp="f2")
    assert agent_content(a) == agent_content(b)
    b["metadata"]["owner"] = "x"
    assert agent_content(a) != agent_content(b)


def test_versions_written_by_deploy_agent_are_not_drift() -> None:
    history = [snapshot(1), snapshot(2, system="new", stamp="f2")]
    assert introducing_version(history)["version"] == 2
    assert not edited_outside(history)
    # A no-stamp-change re-deploy of the same spec (force after a revert) is still clean.
    assert not edited_outside([*history, snapshot(3, system="new", stamp="f2")])


def test_an_edit_that_kept_the_stamp_is_drift() -> None:
    history = [snapshot(1), snapshot(2, system="edited in the console")]  # metadata patch kept f1
    assert introducing_version(history)["version"] == 1
    assert edited_outside(history)
    # Editing it back to what the spec deploys is no longer drift.
    assert not edited_outside([*history, snapshot(3)])


def test_a_version_without_our_stamp_is_drift() -> None:
    assert fingerprint_of(snapshot(1, stamp=None)) is None
    assert edited_outside([snapshot(1, stamp=None)])
