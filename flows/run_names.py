"""Flow-run names a person can read in the runs list: which agent, and what it was asked.

Prefect calls these at the start of every run of the flow (a run started from Python, a
deployment's scheduled or manual run) and renames the run; the name is also the session's title
in the Claude Console. ``flow.with_options(flow_run_name=...)`` names runs otherwise (the batch
names its item runs that way).
"""

from __future__ import annotations

from typing import Any

import prefect.runtime.flow_run

from blocks.agent import ManagedAgent

PROMPT_CHARS = 48
"""Characters of the prompt shown in a run's name."""


def agent_label(agent: Any) -> str:
    """The saved block's name (or the remote agent's name for a block that was never saved)."""
    if isinstance(agent, ManagedAgent):
        return agent._block_document_name or agent.agent_name
    return str(agent) if agent else "agent"


def prompt_head(prompt: Any, limit: int = PROMPT_CHARS) -> str:
    """The start of the prompt on one line, cut with an ellipsis."""
    text = " ".join(str(prompt or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def session_run_name() -> str:
    """``<agent>: <start of the prompt>``, the name of a ``run-agent-session`` run."""
    parameters = prefect.runtime.flow_run.parameters
    return f"{agent_label(parameters.get('agent'))}: {prompt_head(parameters.get('prompt'))}"


def follow_up_run_name() -> str:
    """``<agent> follow-up: <start of the message>``, the name of a ``continue-agent-session`` run."""
    parameters = prefect.runtime.flow_run.parameters
    return f"{agent_label(parameters.get('agent'))} follow-up: {prompt_head(parameters.get('prompt'))}"
