"""Server-enforced session budgets: the API's ``budget.max_list_cost``, in whole US cents.

The service ends a session's turn with ``stop_reason: budget_reached`` once its list cost reaches
the budget (after the model request that reached it, so the final cost can pass the budget by
that one request). A budget is set when the session is created; a follow-up can raise it, never
add one to a session created without one, nor lower it to what was already spent.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import anthropic
from anthropic.types.beta.beta_managed_agents_budget_limit_param import BetaManagedAgentsBudgetLimitParam

from .exceptions import ConfigurationError

CENT = Decimal("0.01")


class BudgetUpdateError(ConfigurationError):
    """The service refused a session's new budget (none at creation, or not above the spend)."""


def budget_cents(budget_usd: Decimal) -> int:
    """The budget in whole cents, rounded down so the ceiling is never raised.

    Raises:
        ConfigurationError: The budget is under one cent.
    """
    cents = int(whole_cents(budget_usd) / CENT)
    if cents < 1:
        raise ConfigurationError(f"budget_usd must be at least 0.01 (one cent); got {budget_usd}")
    return cents


def budget_param(budget_usd: Decimal) -> BetaManagedAgentsBudgetLimitParam:
    """The ``budget`` of ``sessions.create`` / ``sessions.update`` for ``budget_usd`` dollars."""
    return {
        "type": "limit",
        "max_list_cost": {"amount": str(budget_cents(budget_usd)), "currency": "USD"},
    }


def whole_cents(amount_usd: Decimal) -> Decimal:
    """``amount_usd`` rounded down to a whole cent (what a budget can hold)."""
    return Decimal(amount_usd).quantize(CENT, rounding=ROUND_DOWN)


async def araise_budget(client: anthropic.AsyncAnthropic, session_id: str, budget_usd: Decimal) -> None:
    """Set a running session's budget to ``budget_usd`` (a repeat sets the same value: safe to retry).

    Raises:
        BudgetUpdateError: The session was created without a budget, or ``budget_usd`` is not
            above what it has already spent (the service's message says which).
    """
    try:
        await client.beta.sessions.update(session_id, budget=budget_param(budget_usd))
    except anthropic.BadRequestError as exc:
        raise BudgetUpdateError(
            f"Could not set the budget of session {session_id} to {budget_usd} USD: {_reason(exc)} "
            "A budget can only be raised, on a session created with one (budget_usd on its first run)."
        ) from None


def _reason(exc: anthropic.APIStatusError) -> str:
    """The service's own sentence (the SDK's message repeats the whole error body)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or exc.message)
