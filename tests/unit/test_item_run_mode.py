"""run_agent_batch's default: items as task runs, unless a person may be asked (then flow runs)."""

from __future__ import annotations

import pytest

from flows.batch import item_run_mode
from managed_agents_core.exceptions import ConfigurationError
from managed_agents_core.turn import ConfirmationPolicy

ASKS = ConfirmationPolicy(default="allow", ask_tools=["bash"])
ALLOWS = ConfirmationPolicy(default="allow")


def test_auto_picks_task_runs_unless_the_policy_may_ask() -> None:
    assert item_run_mode("auto", None) == "task"
    assert item_run_mode("auto", ALLOWS) == "task"
    assert item_run_mode("auto", ASKS) == "flow"


def test_an_explicit_mode_is_kept_and_task_runs_refuse_a_policy_that_asks() -> None:
    assert item_run_mode("flow", None) == "flow"
    assert item_run_mode("task", ALLOWS) == "task"
    with pytest.raises(ConfigurationError, match="cannot ask a person"):
        item_run_mode("task", ASKS)
