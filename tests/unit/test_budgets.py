"""Budgets in whole cents, and the batch ledger that keeps the sessions' budgets under its limit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from managed_agents_core.batch_items import SpendLedger
from managed_agents_core.budgets import budget_cents, budget_param
from managed_agents_core.exceptions import ConfigurationError
from managed_agents_core.pipeline import SessionRequest


def test_a_budget_is_whole_cents_rounded_down() -> None:
    assert budget_param(Decimal("2.5")) == {
        "type": "limit",
        "max_list_cost": {"amount": "250", "currency": "USD"},
    }
    assert budget_cents(Decimal("0.019")) == 1
    with pytest.raises(ConfigurationError, match=r"at least 0\.01"):
        budget_cents(Decimal("0.009"))
    with pytest.raises(ConfigurationError, match=r"at least 0\.01"):
        SessionRequest(prompt="hi", budget_usd=Decimal("0"))


def test_the_ledger_reserves_budgets_within_the_limit_and_releases_them() -> None:
    ledger = SpendLedger(Decimal("0.25"))
    assert ledger.reserve("a", Decimal("0.10")) == Decimal("0.10")
    assert ledger.reserve("b", Decimal("0.10")) == Decimal("0.10")
    assert ledger.reserve("c", Decimal("0.10")) == Decimal("0.05")  # what the limit leaves
    assert ledger.reserve("d", Decimal("0.10")) is None and ledger.closed
    assert sum(ledger.reserved.values()) == Decimal("0.25")
    # A session that spent less than its budget gives the rest back (to a ledger still open).
    reopened = SpendLedger(Decimal("0.25"))
    reopened.reserve("a", Decimal("0.20"))
    reopened.record_finished(Decimal("0.03"), "a")
    assert reopened.reserved == {} and reopened.reserve("b", Decimal("0.30")) == Decimal("0.22")


def test_without_a_limit_the_budget_is_kept() -> None:
    assert SpendLedger(None).reserve("a", Decimal("7.5")) == Decimal("7.5")
