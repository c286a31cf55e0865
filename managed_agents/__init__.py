"""The ``managed-agents`` command line (emulator, quickstart)."""
