"""A module no parameter may make the worker import: importing it is the attack's effect.

The security tests name ``tests.security.canary_tool_module:boom`` as a custom tool and check that
this module was never imported (it is not in ``sys.modules`` afterwards).
"""

from __future__ import annotations


def boom(command: str) -> str:
    """Pretend to run a command.

    Args:
        command: Anything.
    """
    return command
