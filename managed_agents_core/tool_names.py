"""The names a tool may have: the agent toolset's built-ins, and the rule for a custom tool's."""

from __future__ import annotations

import re

BUILTIN_TOOL_NAMES = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
"""The agent toolset's built-in tools; a custom tool may not take one of these names."""

CUSTOM_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
"""What the API accepts as a custom tool's name."""
