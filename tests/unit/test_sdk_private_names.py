"""The SDK's private names we use, checked so that an SDK release that moves them fails here,
loudly, rather than deep in a session.

``managed_agents_core.custom_tools`` runs custom tools through the SDK's own dispatch helpers
(``anthropic.lib.tools._tool_dispatch``), so that a tool's result and error content are exactly
what the SDK's ``SessionToolRunner`` sends. They are private: ``pyproject.toml`` pins the SDK to
the minor version they were read in.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from anthropic.lib.tools import _tool_dispatch


def test_the_sdk_is_the_minor_version_its_private_helpers_were_read_in() -> None:
    assert version("anthropic").startswith("2.12."), (
        "anthropic moved past 2.12: re-read anthropic/lib/tools/_tool_dispatch.py, check "
        "managed_agents_core/custom_tools.py against it, then widen the pin in pyproject.toml"
    )


def test_the_dispatch_helpers_keep_their_signatures() -> None:
    expected = {
        "run_runnable_tool": ["tool", "input"],
        "tool_error_content": ["exc"],
        "tool_result_content": ["content"],
    }
    found = {name: list(inspect.signature(getattr(_tool_dispatch, name)).parameters) for name in expected}
    assert found == expected
    assert inspect.iscoroutinefunction(_tool_dispatch.run_runnable_tool)
