"""Custom tools as plain Python functions: import, describe (JSON schema) and run them.

The SDK's own tool decorators (``beta_tool`` / ``beta_async_tool``) derive each tool's name,
description and JSON schema from the function's type hints and Google-style docstring and
validate the agent's input before the call; this module only adds what the integration needs
around them:

- import paths (``"package.module:function"``), which is what a deployment's UI form can send;
- functions that take one pydantic model (its schema is the tool's input schema);
- the ``CustomTool`` spec entry ``deploy_agent`` puts on the agent;
- turning a tool's return value or exception into a ``user.custom_tool_result``.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, get_type_hints

from anthropic.lib.tools import BetaAsyncFunctionTool, BetaFunctionTool, beta_async_tool, beta_tool
from anthropic.lib.tools._tool_dispatch import run_runnable_tool, tool_error_content, tool_result_content
from pydantic import BaseModel

from .exceptions import SpecValidationError
from .tool_calls import PendingToolCall

RunnableTool: TypeAlias = BetaFunctionTool[Any] | BetaAsyncFunctionTool[Any]
ToolSource: TypeAlias = Callable[..., Any] | str | RunnableTool
"""A custom tool as users give it: a function, an import path, or an SDK runnable tool."""


def import_callable(path: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (``"package.module.function"`` also works).

    Raises:
        SpecValidationError: The path does not name an importable callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise SpecValidationError(
            f"Custom tool {path!r} must be an import path like 'package.module:function'."
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise SpecValidationError(f"Cannot import custom tool {path!r}: {exc}") from None
    if not callable(target):
        raise SpecValidationError(f"Custom tool {path!r} is not callable.")
    return target  # type: ignore[no-any-return]


def _single_model_parameter(func: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model of a function whose only parameter is one, else None."""
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 1:
        return None
    hints = get_type_hints(func)
    hint = hints.get(params[0].name)
    return hint if inspect.isclass(hint) and issubclass(hint, BaseModel) else None


def _model_tool(func: Callable[..., Any], model: type[BaseModel]) -> RunnableTool:
    """Wrap ``func(model)`` so the agent's input (the model's fields) is validated into the model."""
    description = inspect.getdoc(func) or ""
    description = description.split("\n\nArgs:")[0].strip()
    if inspect.iscoroutinefunction(func):

        async def acall(**fields: Any) -> Any:
            return await func(model.model_validate(fields))

        return beta_async_tool(acall, name=func.__name__, description=description, input_schema=model)

    def call(**fields: Any) -> Any:
        return func(model.model_validate(fields))

    return beta_tool(call, name=func.__name__, description=description, input_schema=model)


def as_runnable_tool(source: ToolSource) -> RunnableTool:
    """Turn a function, an import path or an SDK tool into the SDK's runnable tool.

    Args:
        source: A plain function with typed arguments (sync or async), a function taking one
            pydantic model, an import path ``"package.module:function"``, or a tool already
            made with ``beta_tool`` / ``beta_async_tool``.

    Raises:
        SpecValidationError: The path cannot be imported or the function has no docstring
            (the agent needs a description to know when to call it).
    """
    if isinstance(source, BetaFunctionTool | BetaAsyncFunctionTool):
        tool: RunnableTool = source
    else:
        func = import_callable(source) if isinstance(source, str) else source
        model = _single_model_parameter(func)
        if model is not None:
            tool = _model_tool(func, model)
        elif inspect.iscoroutinefunction(func):
            tool = beta_async_tool(func)
        else:
            tool = beta_tool(func)
    if not tool.description.strip():
        raise SpecValidationError(
            f"Custom tool {tool.name!r} has no description; give the function a docstring that says "
            "what it does (the agent reads it to decide when to call the tool)."
        )
    return tool


def tool_registry(sources: Iterable[ToolSource]) -> dict[str, RunnableTool]:
    """Index tools by name.

    Raises:
        SpecValidationError: Two tools share a name.
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
) -> dict[str, Any]:
    """The ``user.custom_tool_result`` event param answering ``call``."""
    event: dict[str, Any] = {"type": "user.custom_tool_result", "custom_tool_use_id": call.event_id}
    if content is not None:
        event["content"] = content
    if is_error:
        event["is_error"] = True
    return event


async def run_tool(tool: RunnableTool, call: PendingToolCall) -> list[dict[str, Any]] | None:
    """Run one call (sync tools on a worker thread); return its result content; raise its error."""
    return result_content(await run_runnable_tool(tool, dict(call.input)))


def unknown_tool_event(call: PendingToolCall, known: Sequence[str]) -> dict[str, Any]:
    """The error result for a call to a tool no function is registered for."""
    names = ", ".join(sorted(known)) or "none"
    text = f"No function is registered for custom tool {call.name!r} (registered: {names})."
    return result_event(call, [{"type": "text", "text": text}], is_error=True)
