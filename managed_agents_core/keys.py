"""The names we write on remote objects and Prefect runs: one scheme, ``prefect-managed-agents.<name>``.

Session and agent metadata use it, so a person reading a session in the Console sees at once
which keys are ours. A flow run carries its session as the tag ``session:<id>`` (shown on the
run page and filterable in the runs list); runs of earlier versions carry it as a label. Sessions and
runs started by earlier versions carry the old names (``prefect_flow_run_id``,
``managed-agents.session-id``, ...): :func:`read_key` and :func:`holds` read those too, so a
retry, a cancel hook or the sweeper still finds them. Event names (``managed-agents.session.*``)
are not keys and keep their namespace: automations match on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PREFIX = "prefect-managed-agents."
"""Reserved: specs may not use metadata keys that start with it."""

SESSION_TAG_PREFIX = "session:"
"""Flow-run tag ``session:<session id>``: which session the run drives (the hooks read it)."""
DETACHED_TAG = "managed-agents:detached"
"""Flow-run tag of a run suspended while its session works (``detach=True``); the watcher and the
webhook receiver look for suspended runs with it."""
SESSION_LABEL = PREFIX + "session-id"
"""Flow-run label that carried the session id before the tag (read, never written)."""
FLOW_RUN_KEY = PREFIX + "flow-run-id"
"""Session metadata: the flow run that started the session (retries, hooks and the sweeper read it)."""
TASK_RUN_KEY = PREFIX + "task-run-id"
"""Session metadata: the task run that started the session (a batch item run as a task run)."""
DEPLOYMENT_KEY = PREFIX + "deployment-id"
"""Session metadata: the deployment of the flow run, if any."""
BLOCK_KEY = PREFIX + "block"
"""Session and agent metadata: the name of the ``ManagedAgent`` block."""
AGENT_VERSION_KEY = PREFIX + "agent-version"
"""Session metadata: the pinned agent version."""
BATCH_ITEM_KEY = PREFIX + "batch-item"
"""Session metadata: the key of the batch item that started the session."""
START_KEY = PREFIX + "start-key"
"""Session metadata: the run's idempotency key for the session (which prompt, resources and item):
a retry with no cached record finds its session by it and the flow-run id."""
CREATE_TOKEN_KEY = PREFIX + "create-token"
"""Session metadata: a one-time token, to find a create whose answer was lost."""
FINGERPRINT_KEY = PREFIX + "spec-fingerprint"
"""Agent metadata: the fingerprint of the spec a version was deployed from."""

LEGACY_NAMES: Mapping[str, str] = {
    SESSION_LABEL: "managed-agents.session-id",
    FLOW_RUN_KEY: "prefect_flow_run_id",
    TASK_RUN_KEY: "prefect_task_run_id",
    DEPLOYMENT_KEY: "prefect_deployment_id",
    AGENT_VERSION_KEY: "prefect_agent_version",
    BATCH_ITEM_KEY: "prefect_batch_item",
    START_KEY: "prefect_start_key",
}
"""The names earlier versions wrote (read, never written)."""


def read_key(mapping: Mapping[str, Any] | None, key: str) -> str | None:
    """The value of ``key`` in session metadata or flow-run labels, under its current or old name."""
    if not mapping:
        return None
    value = mapping.get(key)
    if value is None and key in LEGACY_NAMES:
        value = mapping.get(LEGACY_NAMES[key])
    return None if value is None else str(value)


def holds(mapping: Mapping[str, Any] | None, wanted: Mapping[str, str]) -> bool:
    """True when ``mapping`` holds every pair of ``wanted`` (under current or old names)."""
    return all(read_key(mapping, key) == value for key, value in wanted.items())


def session_tag(session_id: str) -> str:
    """The flow-run tag naming ``session_id``."""
    return SESSION_TAG_PREFIX + session_id


def run_session_id(tags: Sequence[str] | None, labels: Mapping[str, Any] | None) -> str | None:
    """The session a flow run drives: its ``session:`` tag, else (earlier versions) its label."""
    for tag in tags or ():
        if tag.startswith(SESSION_TAG_PREFIX + "sesn_"):
            return tag.removeprefix(SESSION_TAG_PREFIX)
    return read_key(labels, SESSION_LABEL)
