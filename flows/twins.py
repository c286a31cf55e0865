"""How the flows are typed and twinned: sync twins derived from async flows, and flows that
end in a State typed by the data their callers get.

The async flow is the implementation. Its sync twin has the same name (one flow in the UI and
in the run filters), the same signature, docstring and parameter schema, the same hooks and
options, and runs the same coroutine to completion.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Flow, State
from prefect.utilities.asyncutils import run_coro_as_sync

P = ParamSpec("P")
R = TypeVar("R")


def returns_state_data(
    async_flow: Flow[P, Coroutine[Any, Any, State[R]]],
) -> Flow[P, Coroutine[Any, Any, R]]:
    """Type a flow that ends in a ``State`` (for its message) by what its callers get.

    A flow returns a State so the run page shows that state's message (the cost, the items by
    state). Prefect keeps the State for the run and hands a caller its data (or raises its
    exception); with ``return_state=True`` the caller gets the State itself.

    Args:
        async_flow: An ``async def`` flow that returns ``Completed(message=..., data=...)`` or
            ``Failed(...)``.
    """
    return cast("Flow[P, Coroutine[Any, Any, R]]", async_flow)


def sync_twin(async_flow: Flow[P, Coroutine[Any, Any, R]]) -> Flow[P, R]:
    """Return the sync flow that runs ``async_flow``'s function to completion.

    Args:
        async_flow: An ``async def`` flow.
    """
    implementation = async_flow.fn

    @functools.wraps(implementation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_coro_as_sync(implementation(*args, **kwargs))

    # Prefect resolves string annotations (``from __future__ import annotations``) in the
    # wrapper's own module; the signature, resolved where the flow is defined, needs none.
    run.__signature__ = inspect.signature(implementation, eval_str=True)  # type: ignore[attr-defined]

    # The hooks take any flow (flow, flow_run, state); Prefect types them by the flow's return.
    hooks: dict[str, Any] = {
        "on_completion": async_flow.on_completion_hooks,
        "on_failure": async_flow.on_failure_hooks,
        "on_cancellation": async_flow.on_cancellation_hooks,
        "on_crashed": async_flow.on_crashed_hooks,
    }
    return Flow(
        fn=run,
        name=async_flow.name,
        flow_run_name=async_flow.flow_run_name,
        retries=async_flow.retries,
        retry_delay_seconds=async_flow.retry_delay_seconds,
        timeout_seconds=async_flow.timeout_seconds,
        persist_result=async_flow.persist_result,
        log_prints=async_flow.log_prints,
        **hooks,
    )
