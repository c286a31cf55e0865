"""``python -m emulator``: the ``managed-agents emulator`` command on its own (see :mod:`emulator.cli`)."""

import typer

from emulator.cli import emulator

if __name__ == "__main__":
    typer.run(emulator)
