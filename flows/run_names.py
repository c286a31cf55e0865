"""Flow-run names that say which agent ran and when, instead of Prefect's random pair of words."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import prefect.runtime.flow_run


def agent_run_name(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable giving ``<agent>-<kind>-<UTC time>``, e.g.
    ``report-writer-session-20261201-120803``.

    The agent is the block name the run was given, else the block's remote agent name.

    Args:
        kind: What the flow does: ``session``, ``follow-up``, ``batch``.
    """

    def name() -> str:
        agent = (prefect.runtime.flow_run.parameters or {}).get("agent")
        label = agent if isinstance(agent, str) else getattr(agent, "agent_name", None)
        if label is None and isinstance(agent, dict):
            label = agent.get("agent_name")
        slug = re.sub(r"[^a-z0-9-]+", "-", str(label or "agent").lower()).strip("-")[:60] or "agent"
        return f"{slug}-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}"

    return name
