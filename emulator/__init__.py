"""A local stand-in for the Claude Managed Agents API.

The real ``anthropic`` SDK talks to it over real HTTP and SSE. Start it with
``managed-agents emulator`` or, in Python, with :class:`EmulatorServer`.
"""

from .app import create_app
from .config import EmulatorConfig, FaultConfig
from .script import scenario_prompt
from .server import ControlClient, EmulatorProcess, EmulatorServer, free_port

__all__ = [
    "ControlClient",
    "EmulatorConfig",
    "EmulatorProcess",
    "EmulatorServer",
    "FaultConfig",
    "create_app",
    "free_port",
    "scenario_prompt",
]
