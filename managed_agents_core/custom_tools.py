"""Custom tools as plain Python functions: register, describe (JSON schema) and run them.

The SDK's own tool decorators (``beta_tool`` / ``beta_async_tool``) derive each tool's name,
description and JSON schema from the function's type hints and Google-style docstring and
validate the agent's input before the call; this module only adds what the integration needs
around them:

- a **registry**: tools are registered in code, with the :func:`custom_tool` decorator or
  :func:`register_custom_tool`, and the modules listed in ``MANAGED_AGENTS_TOOL_MODULES`` are
  imported to register theirs. Flow-run parameters and specs only *name* registered tools; an
  import path ``"package.module:function"`` is only accepted for a registered function of a
  module inside those listed modules, so a parameter can never make the worker import code
  (``"os:system"`` is refused before anything is imported, created or uploaded);
- functions that take one pydantic model (its schema is the tool's input schema);
- the ``CustomTool`` spec entry ``deploy_agent`` puts on the agent;
- turning a tool's return value or exception into a ``user.custom_tool_result``.

Passing a function object from Python keeps working: it is used as given, and registered under
its name when that name is free.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast, get_type_hints, overload

from anthropic.lib.tools import BetaAsyncFunctionTool, BetaFunctionTool, beta_async_tool, beta_tool
from anthropic.lib.tools._tool_dispatch import run_runnable_tool, tool_error_content, tool_result_content
from anthropic.types.beta.sessions import BetaManagedAgentsUserCustomToolResultEventParams
from anthropic.types.beta.sessions.beta_managed_agents_user_custom_tool_result_event_params import Content
from pydantic import BaseModel

from .events import EventParam
from .exceptions import ConfigurationError, SpecValidationError, UnknownCustomToolError
from .settings import SecuritySettings
from .tool_calls import PendingToolCall
from .tool_names import BUILTIN_TOOL_NAMES, CUSTOM_TOOL_NAME

RunnableTool: TypeAlias = BetaFunctionTool[Any] | BetaAsyncFunctionTool[Any]
ToolSource: TypeAlias = Callable[..., Any] | str | RunnableTool
"""A custom tool as users give it: a function or an SDK runnable tool (from Python), or the name
of a registered tool (from Python, a parameter or a spec)."""

F = TypeVar("F", bound=Callable[..., Any])

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredTool:
    """A tool in the registry: the SDK runnable tool and where its function lives."""

    tool: RunnableTool
    module: str
    qualname: str


_REGISTRY: dict[str, RegisteredTool] = {}
_LOCK = threading.Lock()


def _origin(func: Any) -> tuple[str, str]:
    target = getattr(func, "func", func)  # an SDK runnable tool wraps the user's function
    return str(getattr(target, "__module__", "") or ""), str(getattr(target, "__qualname__", "") or "")


def _refuse_builtin(func: Any) -> None:
    module, qualname = _origin(func)
    if inspect.isbuiltin(getattr(func, "func", func)) or module == "builtins":
        raise UnknownCustomToolError(
            f"Custom tool {qualname or func!r} is a Python builtin; builtins cannot be custom tools. "
            "Write a documented function with typed arguments and register it with @custom_tool."
        )


def _single_model_parameter(func: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model of a function whose only parameter is one, else None."""
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 1:
        return None
    hints = get_type_hints(func)
    hint = hints.get(params[0].name)
    return hint if inspect.isclass(hint) and issubclass(hint, BaseModel) else None


def _model_tool(func: Callable[..., Any], model: type[BaseModel], name: str) -> RunnableTool:
    """Wrap ``func(model)`` so the agent's input (the model's fields) is validated into the model."""
    description = inspect.getdoc(func) or ""
    description = description.split("\n\nArgs:")[0].strip()
    if inspect.iscoroutinefunction(func):

        async def acall(**fields: Any) -> Any:
            return await func(model.model_validate(fields))

        acall.__module__, acall.__qualname__ = func.__module__, func.__qualname__
        return beta_async_tool(acall, name=name, description=description, input_schema=model)

    def call(**fields: Any) -> Any:
        return func(model.model_validate(fields))

    call.__module__, call.__qualname__ = func.__module__, func.__qualname__
    return beta_tool(call, name=name, description=description, input_schema=model)


def build_tool(func: Callable[..., Any] | RunnableTool, name: str | None = None) -> RunnableTool:
    """Turn a function or an SDK tool into the SDK's runnable tool (not registered).

    Args:
        func: A plain function with typed arguments (sync or async), a function taking one
            pydantic model, or a tool already made with ``beta_tool`` / ``beta_async_tool``.
        name: The tool's name (default: the function's name).

    Raises:
        UnknownCustomToolError: ``func`` is a Python builtin.
        SpecValidationError: The function has no docstring (the agent needs a description to
            know when to call it), or the name is not a valid custom tool name.
    """
    _refuse_builtin(func)
    if isinstance(func, BetaFunctionTool | BetaAsyncFunctionTool):
        tool: RunnableTool = func
        if name is not None and name != tool.name:
            raise SpecValidationError(
                f"Tool {tool.name!r} is already an SDK tool; give it the name {name!r} when you make it."
            )
    else:
        model = _single_model_parameter(func)
        tool_name = name or func.__name__
        if model is not None:
            tool = _model_tool(func, model, tool_name)
        elif inspect.iscoroutinefunction(func):
            tool = beta_async_tool(func, name=tool_name)
        else:
            tool = beta_tool(func, name=tool_name)
    if not CUSTOM_TOOL_NAME.match(tool.name) or tool.name in BUILTIN_TOOL_NAMES:
        raise SpecValidationError(
            f"Custom tool name {tool.name!r} must be 1-128 letters, digits, '_' or '-' and not a "
            f"built-in tool's name {list(BUILTIN_TOOL_NAMES)}; pass another name."
        )
    if not tool.description.strip():
        raise SpecValidationError(
            f"Custom tool {tool.name!r} has no description; give the function a docstring that says "
            "what it does (the agent reads it to decide when to call the tool)."
        )
    return tool


def _register(tool: RunnableTool, *, strict: bool) -> bool:
    """Add ``tool`` to the registry; True when it is registered under its name afterwards.

    A name already registered for another function is an error when ``strict``, else left alone.
    """
    module, qualname = _origin(tool)
    entry = RegisteredTool(tool, module, qualname)
    with _LOCK:
        current = _REGISTRY.get(tool.name)
        if current is None or (current.module, current.qualname) == (module, qualname):
            _REGISTRY[tool.name] = entry  # new, or the same function again (e.g. a reloaded module)
            return True
        if not strict:
            return False
    raise SpecValidationError(
        f"Custom tool name {tool.name!r} is already registered for {current.module}.{current.qualname}; "
        f"register {module}.{qualname} under another name (register_custom_tool(func, name=...))."
    )


def register_custom_tool(func: Callable[..., Any] | RunnableTool, name: str | None = None) -> RunnableTool:
    """Register a function as a custom tool that parameters and specs may name.

    Registering is code, done by whoever deploys it: a flow-run parameter can only *name* a
    registered tool. Put the registrations in a module listed in ``MANAGED_AGENTS_TOOL_MODULES``
    so deployment runs find them (that module is imported when a tool is looked up).

    Args:
        func: A documented function with typed arguments (sync or async), a function taking one
            pydantic model, or an SDK tool made with ``beta_tool`` / ``beta_async_tool``.
        name: The name parameters and specs use (default: the function's name).

    Returns:
        The SDK runnable tool.

    Raises:
        SpecValidationError: No docstring, an invalid name, or the name is already registered
            for another function.
        UnknownCustomToolError: ``func`` is a Python builtin.
    """
    tool = build_tool(func, name)
    _register(tool, strict=True)
    return tool


@overload
def custom_tool(func: F, /) -> F: ...


@overload
def custom_tool(*, name: str | None = None) -> Callable[[F], F]: ...


def custom_tool(func: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Decorator: register the function as a custom tool (see :func:`register_custom_tool`).

    The function itself is returned unchanged, so it can still be called (and passed to a flow).

    Example:
        ```python
        from managed_agents_core.custom_tools import custom_tool

        @custom_tool
        def lookup_ticket(id: str) -> str:
            '''Look up a support ticket's status.

            Args:
                id: The ticket id, like T-1.
            '''
            return tickets[id].status
        ```

    Args:
        func: The function (when used as ``@custom_tool``).
        name: The tool's name (when used as ``@custom_tool(name="...")``).
    """

    def decorate(target: F) -> F:
        register_custom_tool(target, name)
        return target

    return decorate(func) if func is not None else decorate


def registered_tools() -> dict[str, RegisteredTool]:
    """Return the registry (after importing the configured tool modules), by tool name."""
    load_tool_modules()
    with _LOCK:
        return dict(_REGISTRY)


def load_tool_modules() -> list[str]:
    """Import the modules of ``MANAGED_AGENTS_TOOL_MODULES`` so their tools are registered.

    Returns:
        The module names.

    Raises:
        ConfigurationError: A listed module cannot be imported.
    """
    modules = SecuritySettings().tool_modules
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"Cannot import tool module {module!r} listed in MANAGED_AGENTS_TOOL_MODULES: {exc}. "
                "Fix the setting or install the module."
            ) from None
    return modules


def _allowed(module: str, allowed: Sequence[str]) -> bool:
    return any(module == a or module.startswith(f"{a}.") for a in allowed)


def _registered_names() -> str:
    with _LOCK:
        return ", ".join(sorted(_REGISTRY)) or "none"


def lookup_custom_tool(reference: str) -> RunnableTool:
    """Return the registered tool a parameter or spec names; never import anything else.

    Args:
        reference: A registered tool's name (``lookup_ticket``), or the import path
            ``package.module:function`` of a registered function in a module inside
            ``MANAGED_AGENTS_TOOL_MODULES``.

    Raises:
        UnknownCustomToolError: No tool of that name is registered; the import path is outside
            the allowed tool modules (or names a builtin); or the function is not registered.
        ConfigurationError: A configured tool module cannot be imported.
    """
    allowed = load_tool_modules()
    reference = reference.strip()
    fix = (
        "Register the function with @custom_tool (or register_custom_tool) in a module listed in "
        "MANAGED_AGENTS_TOOL_MODULES, and name it here."
    )
    if ":" not in reference and "." not in reference:
        with _LOCK:
            entry = _REGISTRY.get(reference)
        if entry is None:
            raise UnknownCustomToolError(
                f"No custom tool named {reference!r} is registered (registered: {_registered_names()}). "
                f"{fix} Nothing was uploaded or created."
            )
        return entry.tool
    module, sep, attr = reference.partition(":")
    if not sep:
        module, _, attr = reference.rpartition(".")
    if not module or not attr or module == "builtins" or not _allowed(module, allowed):
        raise UnknownCustomToolError(
            f"Custom tool {reference!r} is an import path outside the allowed tool modules "
            f"{allowed or '(none)'} (MANAGED_AGENTS_TOOL_MODULES); parameters and specs may only name "
            f"registered tools (registered: {_registered_names()}). {fix} Nothing was imported, "
            "uploaded or created."
        )
    try:
        importlib.import_module(module)  # inside an allowed package: code whoever deploys chose
    except ImportError as exc:
        raise UnknownCustomToolError(f"Cannot import tool module {module!r}: {exc}. {fix}") from None
    with _LOCK:
        found = [e for e in _REGISTRY.values() if (e.module, e.qualname) == (module, attr)]
    if not found:
        raise UnknownCustomToolError(
            f"{reference!r} is not a registered custom tool (registered: {_registered_names()}). {fix}"
        )
    return found[0].tool


def as_runnable_tool(source: ToolSource) -> RunnableTool:
    """Turn a tool as users give it into the SDK's runnable tool.

    Args:
        source: The name of a registered tool (or the import path of one, see
            :func:`lookup_custom_tool`); or, from Python, a documented function with typed
            arguments (sync or async), a function taking one pydantic model, or a tool already
            made with ``beta_tool`` / ``beta_async_tool``. A function registered already is used
            under its registered name; any other is used as given and registered under its name
            when that name is free.

    Raises:
        UnknownCustomToolError: A name that is not registered, or a builtin.
        SpecValidationError: The function has no docstring (the agent needs a description to
            know when to call it).
    """
    if isinstance(source, str):
        return lookup_custom_tool(source)
    if not isinstance(source, BetaFunctionTool | BetaAsyncFunctionTool):
        origin = _origin(source)
        with _LOCK:
            known = next((e.tool for e in _REGISTRY.values() if (e.module, e.qualname) == origin), None)
        if known is not None:  # registered already (perhaps under another name): use that
            return known
    tool = build_tool(source)
    if not _register(tool, strict=False):
        _log.debug("Custom tool name %r is registered for another function; using the one given", tool.name)
    return tool


def tool_registry(sources: Iterable[ToolSource]) -> dict[str, RunnableTool]:
    """Index one run's tools by name.

    Raises:
        SpecValidationError: Two tools share a name.
        UnknownCustomToolError: A name is not registered.
    """
    registry: dict[str, RunnableTool] = {}
    for source in sources:
        tool = as_runnable_tool(source)
        if tool.name in registry:
            raise SpecValidationError(f"Two custom tools are named {tool.name!r}; rename one.")
        registry[tool.name] = tool
    return registry


def custom_tool_definition(source: ToolSource) -> dict[str, Any]:
    """The ``{"type": "custom", name, description, input_schema}`` entry of the agent's tools."""
    tool = as_runnable_tool(source)
    return {
        "type": "custom",
        "name": tool.name,
        "description": tool.description,
        "input_schema": dict(tool.input_schema),
    }


def result_content(value: Any) -> list[dict[str, Any]] | None:
    """A tool's return value as ``user.custom_tool_result`` content blocks.

    Strings become one text block; a list of content blocks (dicts with ``type``) is sent as is;
    ``None`` sends no content; anything else is sent as JSON text.
    """
    value = tool_result_content(value) if isinstance(value, str | list) else value
    if value is None:
        return None
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, list) and all(isinstance(b, Mapping) and "type" in b for b in value):
        return [dict(b) for b in value]
    if isinstance(value, BaseModel):
        return [{"type": "text", "text": value.model_dump_json()}]
    return [{"type": "text", "text": json.dumps(value, default=str, sort_keys=True)}]


def error_content(exc: BaseException) -> list[dict[str, Any]]:
    """An exception raised by a tool as content blocks (the SDK's rendering: type and message)."""
    content = tool_error_content(exc)
    return result_content(content) or [{"type": "text", "text": repr(exc)}]


def result_event(
    call: PendingToolCall, content: list[dict[str, Any]] | None, *, is_error: bool
) -> BetaManagedAgentsUserCustomToolResultEventParams:
    """The ``user.custom_tool_result`` event param answering ``call``."""
    event: BetaManagedAgentsUserCustomToolResultEventParams = {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": call.event_id,
    }
    if content is not None:
        # Content blocks as the SDK's own tool-result rendering made them.
        event["content"] = cast("list[Content]", content)
    if is_error:
        event["is_error"] = True
    return event


async def run_tool(tool: RunnableTool, call: PendingToolCall) -> list[dict[str, Any]] | None:
    """Run one call (sync tools on a worker thread); return its result content; raise its error."""
    return result_content(await run_runnable_tool(tool, dict(call.input)))


def unknown_tool_event(
    call: PendingToolCall, known: Sequence[str]
) -> BetaManagedAgentsUserCustomToolResultEventParams:
    """The error result for a call to a tool no function is registered for."""
    names = ", ".join(sorted(known)) or "none"
    text = f"No function is registered for custom tool {call.name!r} (registered: {names})."
    return result_event(call, [{"type": "text", "text": text}], is_error=True)


class ToolDispatcher:
    """Answers custom tool calls by running the registered functions in this process.

    Plugs into the stream engine (a :class:`~managed_agents_core.turn.CustomToolDispatcher`):
    every pending ``agent.custom_tool_use`` is run at once, and answered with a
    ``user.custom_tool_result`` (``is_error`` with the error text when the function raised).
    The Prefect flows use a subclass that runs each call as a task run.

    Example:
        ```python
        def lookup_ticket(id: str) -> str:
            '''Look up a support ticket by id.'''
            return tickets[id].status

        run = agent.trigger("Triage ticket 42", custom_tools=ToolDispatcher([lookup_ticket]))
        ```

    Args:
        tools: Names of registered tools (see :func:`custom_tool`), or from Python functions or
            SDK runnable tools. Every name is checked here, when the dispatcher is built, so an
            unknown one fails before anything is uploaded or created.

    Raises:
        UnknownCustomToolError: A name is not a registered tool.
    """

    def __init__(self, tools: Iterable[ToolSource]) -> None:
        self.tools = tool_registry(tools)

    def warn(self, message: str, *args: Any) -> None:
        """Log a warning about a call (the Prefect subclass logs to the run)."""
        _log.warning(message, *args)

    async def run(self, tool: RunnableTool, call: PendingToolCall) -> list[dict[str, Any]] | None:
        """Run one call; return its result content or raise the tool's error."""
        return await run_tool(tool, call)

    async def answer(self, call: PendingToolCall) -> EventParam:
        """The ``user.custom_tool_result`` for one call (a tool's error goes to the agent)."""
        tool = self.tools.get(call.name)
        if tool is None:
            self.warn("No function registered for custom tool %r (%s)", call.name, call.event_id)
            return unknown_tool_event(call, list(self.tools))
        try:
            content = await self.run(tool, call)
        except Exception as exc:  # the tool's own error goes to the agent, not up the stack
            self.warn("Custom tool %s failed: %s", call.name, type(exc).__name__)
            return result_event(call, error_content(exc), is_error=True)
        return result_event(call, content, is_error=False)

    async def __call__(self, calls: Sequence[PendingToolCall]) -> list[EventParam]:
        """Run every call concurrently; return one ``user.custom_tool_result`` param per call."""
        return list(await asyncio.gather(*(self.answer(call) for call in calls)))
