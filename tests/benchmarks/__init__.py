"""Benchmarks: our flows against a plain ``anthropic`` SDK baseline on the emulator.

Run ``uv run python -m tests.benchmarks.bench [--quick] [--json PATH]``.
"""
