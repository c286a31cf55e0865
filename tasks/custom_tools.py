"""Run the agent's custom tool calls as Prefect task runs (visible in the UI, retryable).

:class:`PrefectToolDispatcher` plugs into the session stream engine: for every
``agent.custom_tool_use`` the session waits on, it runs the registered Python function as a
``custom-tool`` task run (all pending calls at once), and answers with a
``user.custom_tool_result`` (``is_error`` with the error text when the function raised, after
its retries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from prefect.transactions import CommitMode, atransaction

from managed_agents_core.custom_tools import RunnableTool, ToolDispatcher, ToolSource, run_tool
from managed_agents_core.tool_calls import PendingToolCall


@task(name="custom-tool", cache_policy=NO_CACHE)
async def run_custom_tool(tool: RunnableTool, call: PendingToolCall) -> list[dict[str, Any]] | None:
    """Run one custom tool call; return the result content (an exception fails the task run).

    Args:
        tool: The SDK runnable tool wrapping the user's function.
        call: The ``agent.custom_tool_use`` call (event id, name, input).
    """
    get_run_logger().info("Running custom tool %s(%s) for %s", call.name, call.input_json, call.event_id)
    return await run_tool(tool, call)


class PrefectToolDispatcher(ToolDispatcher):
    """Answers custom tool calls by running the registered functions as Prefect task runs.

    Example:
        ```python
        def lookup_ticket(id: str) -> str:
            '''Look up a support ticket by id.'''
            return tickets[id].status

        dispatcher = PrefectToolDispatcher([lookup_ticket], retries=2)
        ```

    Args:
        tools: Names of registered tools (see :func:`managed_agents_core.custom_tools.custom_tool`), or from
            Python functions or SDK runnable tools. Every name is checked here, when the
            dispatcher is built, so an unknown one fails before anything is uploaded or created.
        retries: Task-run retries of each call before its error is sent to the agent.
        retry_delay_seconds: Delay between those retries.
    """

    def __init__(self, tools: Iterable[ToolSource], *, retries: int = 0, retry_delay_seconds: float = 1.0):
        super().__init__(tools)
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds

    def warn(self, message: str, *args: Any) -> None:
        """Log a warning to the run."""
        get_run_logger().warning(message, *args)

    async def run(self, tool: RunnableTool, call: PendingToolCall) -> list[dict[str, Any]] | None:
        """Run one call as a ``custom-tool`` task run (with its retries); raise its final error."""
        runner = run_custom_tool.with_options(
            name=f"custom-tool-{call.name}",
            task_run_name=f"{call.name} [{call.event_id}]",
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
        )
        # Each call commits on its own: a tool run cannot be undone, and in the parent task's
        # transaction one failing call would mark its siblings "RolledBack".
        async with atransaction(commit_mode=CommitMode.EAGER):
            # Calling an async task returns a coroutine at runtime; Prefect's overloads say State.
            state = await cast("Awaitable[State[Any]]", runner(tool, call, return_state=True))
        return cast("list[dict[str, Any]] | None", await state.aresult())
