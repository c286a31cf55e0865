"""Prefect blocks for Claude Managed Agents (register with ``prefect block register -m blocks``)."""
