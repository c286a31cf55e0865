"""Package-wide constants shared by the blocks: logo, docs URL, provenance header."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

LOGO_URL = "https://avatars.githubusercontent.com/u/76263028?s=200&v=4"
"""Square (200 px) Anthropic logo shown next to the blocks in the Prefect UI."""

DOCUMENTATION_URL = "https://github.com/prefect-managed-agents/prefect-managed-agents#blocks"
"""README section that documents every block."""

try:
    PACKAGE_VERSION = version("prefect-managed-agents")
except PackageNotFoundError:  # running from a source tree that was never installed
    PACKAGE_VERSION = "0+unknown"

INTEGRATION_HEADER = {"x-prefect-integration": f"prefect-managed-agents/{PACKAGE_VERSION}"}
"""Sent on every API call so remote objects can be traced back to this integration."""
