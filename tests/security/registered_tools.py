"""Custom tools registered in code, the way a team's tool module does it.

The security tests list this module in ``MANAGED_AGENTS_TOOL_MODULES``; looking a tool up imports
it, and ``@custom_tool`` registers ``security_echo``, which deployment runs may then name.
"""

from __future__ import annotations

from managed_agents_core.custom_tools import custom_tool


@custom_tool
def security_echo(text: str) -> str:
    """Echo a text back.

    Args:
        text: What to echo.
    """
    return f"echo {text}"
