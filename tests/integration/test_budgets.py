"""Server-enforced budgets through the flows, against the emulator (which enforces them as the
SDK documents: no new model request once the list cost reached the budget) and a real local
Prefect server.

Every scripted model request below costs 5 cents; a turn with one tool call makes two.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest
from prefect.exceptions import ParameterTypeError
from pydantic import ValidationError

from blocks.agent import ManagedAgent
from emulator import EmulatorServer
from flows.batch import arun_agent_batch
from flows.follow_up import continue_agent_session
from flows.session import run_agent_session
from managed_agents_core.batch_items import BatchItem, BatchResult
from managed_agents_core.budgets import BudgetUpdateError
from managed_agents_core.exceptions import SessionBudgetReachedError
from managed_agents_core.turn import ConfirmationPolicy
from tests.conftest import TEST_API_KEY, sdk_client
from tests.integration.session_helpers import agent_block, create_remote_agent, scenario, settled

pytestmark = pytest.mark.usefixtures("prefect_harness")

TOOL_TURN = {"tools": [{"name": "bash", "input": {"command": "ls"}, "permission": "always_ask"}], "cost": 5}
"""Two model requests of 5 cents: the tool call (allowed by ALLOW_BASH), then the reply."""
ALLOW_BASH = ConfirmationPolicy(allow_tools=["bash"])


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with sdk_client(emulator.url) as c:
        yield c


def budgeted_agent(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, budget_usd: Decimal | None
) -> ManagedAgent:
    remote = create_remote_agent(sdk)
    return agent_block(remote, emulator.url, TEST_API_KEY, agent_name="budget-test", budget_usd=budget_usd)


def saved(block: ManagedAgent) -> str:
    name = f"budget-test-{uuid.uuid4().hex[:10]}"
    block.save(name, _sync=True)  # type: ignore[call-arg]
    return name


def budget_cents(sdk: anthropic.Anthropic, session_id: str) -> str | None:
    budget = settled(sdk).beta.sessions.retrieve(session_id).budget
    return None if budget is None else budget.max_list_cost.amount


def sessions_of(sdk: anthropic.Anthropic, block: ManagedAgent) -> list[str]:
    return [s.id for s in settled(sdk).beta.sessions.list(agent_id=block.agent_id, limit=100)]


def user_messages(sdk: anthropic.Anthropic, session_id: str) -> int:
    return len(list(settled(sdk).beta.sessions.events.list(session_id, limit=1000, types=["user.message"])))


def test_a_session_stops_at_its_budget(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    block = budgeted_agent(emulator, sdk, None)
    with pytest.raises(SessionBudgetReachedError):
        run_agent_session(
            saved(block),
            scenario(**TOOL_TURN),
            output_dir=str(tmp_path),
            confirmation_policy=ALLOW_BASH,
            budget_usd=Decimal("0.03"),
        )
    [session_id] = sessions_of(sdk, block)
    # 3 cents asked; the tool call's request (5 cents) reached it, so the reply was never requested.
    assert budget_cents(sdk, session_id) == "3"
    usage = settled(sdk).beta.sessions.retrieve(session_id).usage
    assert usage.list_cost is not None and usage.list_cost.amount == "5"


def test_the_blocks_budget_is_the_default_and_a_follow_up_raises_it(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    name = saved(budgeted_agent(emulator, sdk, Decimal("0.5")))
    first = run_agent_session(
        name, scenario(**TOOL_TURN), output_dir=str(tmp_path), confirmation_policy=ALLOW_BASH
    )
    assert budget_cents(sdk, first.session_id) == "50" and first.usage.cost_usd == Decimal("0.10")

    second = continue_agent_session(name, first.session_id, scenario(reply="more"), budget_usd=Decimal("2"))
    assert second.stop_reason == "end_turn"
    assert budget_cents(sdk, first.session_id) == "200"

    # Not above what it spent (0.11: the follow-up's one request cost a cent): refused before
    # the follow-up is sent, the budget kept.
    with pytest.raises(BudgetUpdateError, match="must be above the 11 already spent"):
        continue_agent_session(name, first.session_id, scenario(reply="late"), budget_usd=Decimal("0.05"))
    assert user_messages(sdk, first.session_id) == 2
    assert budget_cents(sdk, first.session_id) == "200"


def test_a_follow_up_cannot_add_a_budget_and_a_bad_budget_fails_first(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path
) -> None:
    block = budgeted_agent(emulator, sdk, None)
    name = saved(block)
    first = run_agent_session(name, scenario(reply="hi"), output_dir=str(tmp_path))
    assert budget_cents(sdk, first.session_id) is None
    with pytest.raises(BudgetUpdateError, match="only be set at session creation"):
        continue_agent_session(name, first.session_id, scenario(reply="x"), budget_usd=Decimal("1"))
    assert user_messages(sdk, first.session_id) == 1

    # Under a cent: a typed error before anything is created.
    with pytest.raises(ValidationError, match="budget_usd"):
        ManagedAgent.model_validate({**block.model_dump(), "budget_usd": Decimal("0.001")})
    with pytest.raises(ParameterTypeError, match="budget_usd"):
        run_agent_session(name, scenario(reply="x"), output_dir=str(tmp_path), budget_usd=Decimal("0.001"))
    assert sessions_of(sdk, block) == [first.session_id]


@pytest.mark.parametrize("item_runs", ["flow", "task"])
async def test_a_batchs_budgets_never_pass_its_spend_limit(
    emulator: EmulatorServer, sdk: anthropic.Anthropic, tmp_path: Path, item_runs: str
) -> None:
    # Limit 0.15, 0.10 per session, one at a time. The first gets 0.10 and spends it; the second
    # gets what is left (0.05) and the service stops it there; the third finds the limit spent.
    # Without budgets the second would have spent 0.10 and the batch 0.20.
    block = budgeted_agent(emulator, sdk, None)
    state = await arun_agent_batch(
        agent=block,
        items=[BatchItem(key=f"i{i}", prompt=scenario(**TOOL_TURN, reply=f"r{i}")) for i in range(3)],
        max_concurrency=1,
        spend_limit_usd=Decimal("0.15"),
        budget_usd=Decimal("0.10"),
        output_dir=str(tmp_path),
        concurrency_limit_name=f"budget-test-{uuid.uuid4().hex[:8]}",
        item_runs=item_runs,
        confirmation_policy=ALLOW_BASH,
        return_state=True,
    )
    result = await state.aresult()
    assert isinstance(result, BatchResult)
    assert [(i.key, i.state) for i in result.items] == [
        ("i0", "completed"),
        ("i1", "failed"),
        ("i2", "not_started"),
    ]
    assert result.items[1].error_type == "SessionBudgetReachedError"
    assert [budget_cents(sdk, str(i.session_id)) for i in result.items[:2]] == ["10", "5"]
    assert result.total_cost_usd == Decimal("0.15")


async def test_a_triggered_session_gets_the_blocks_budget_or_its_own(
    emulator: EmulatorServer, sdk: anthropic.Anthropic
) -> None:
    block = budgeted_agent(emulator, sdk, Decimal("0.40"))
    runs = [
        await block.atrigger(scenario(reply="hi")),
        await block.atrigger(scenario(reply="hi"), budget_usd=Decimal("0.07")),
    ]
    for run in runs:
        await run.await_for_completion()
    assert [budget_cents(sdk, run.session_id) for run in runs] == ["40", "7"]
