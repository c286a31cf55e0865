"""One naming scheme for our keys, and sessions started by earlier versions still found."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from flows.sweep import owner_run_id
from managed_agents_core import keys
from managed_agents_core.spec import RESERVED_METADATA_PREFIX


def test_every_key_we_write_is_in_one_namespace() -> None:
    written = [
        keys.SESSION_LABEL,
        keys.FLOW_RUN_KEY,
        keys.TASK_RUN_KEY,
        keys.DEPLOYMENT_KEY,
        keys.BLOCK_KEY,
        keys.AGENT_VERSION_KEY,
        keys.BATCH_ITEM_KEY,
        keys.START_KEY,
        keys.CREATE_TOKEN_KEY,
        keys.FINGERPRINT_KEY,
    ]
    assert len(set(written)) == len(written)
    assert all(k.startswith("prefect-managed-agents.") and len(k) <= 64 for k in written)
    assert RESERVED_METADATA_PREFIX == keys.PREFIX  # a spec cannot shadow one of them
    assert not set(keys.LEGACY_NAMES.values()) & set(written)


def test_old_names_are_read_and_the_current_name_wins() -> None:
    run_id = str(uuid.uuid4())
    old = {"prefect_flow_run_id": run_id, "prefect_batch_item": "a"}
    assert keys.read_key(old, keys.FLOW_RUN_KEY) == run_id
    assert keys.holds(old, {keys.FLOW_RUN_KEY: run_id, keys.BATCH_ITEM_KEY: "a"})
    assert not keys.holds(old, {keys.FLOW_RUN_KEY: run_id, keys.BATCH_ITEM_KEY: "b"})
    both = {keys.FLOW_RUN_KEY: "new", "prefect_flow_run_id": "old"}
    assert keys.read_key(both, keys.FLOW_RUN_KEY) == "new"
    assert keys.read_key({"managed-agents.session-id": "sesn_1"}, keys.SESSION_LABEL) == "sesn_1"
    assert keys.read_key(None, keys.SESSION_LABEL) is None


def test_a_run_names_its_session_by_tag_and_runs_of_earlier_versions_by_label() -> None:
    assert keys.session_tag("sesn_1") == "session:sesn_1"
    assert keys.run_session_id(["nightly", "session:sesn_1"], None) == "sesn_1"
    assert keys.run_session_id(["session:notes"], {"managed-agents.session-id": "sesn_2"}) == "sesn_2"
    assert keys.run_session_id(None, {keys.SESSION_LABEL: "sesn_3"}) == "sesn_3"
    assert keys.run_session_id([], {}) is None


def test_the_sweeper_still_finds_the_owner_of_a_session_started_by_an_earlier_version() -> None:
    run_id = str(uuid.uuid4())
    session = SimpleNamespace(metadata={"prefect_flow_run_id": run_id})
    assert owner_run_id(session) == run_id
