"""The Prefect-free core of prefect-managed-agents: a session's lifecycle and stream loop, the
end-of-turn rules, transcript and usage, inputs and outputs, the agent spec, typed errors.

Nothing here imports Prefect (an import-linter contract checks it); ``blocks``, ``tasks`` and
``flows`` wrap it for Prefect. See ``docs/architecture.md``.
"""
