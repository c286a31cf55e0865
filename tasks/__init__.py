"""Prefect tasks, one per Managed Agents API step: thin, typed and retry-safe."""
