"""Input and output roots: the only folders a flow-run parameter may make the worker read or write.

Flow-run parameters come from whoever may run a deployment (the UI's Run form, the API, an
Automation filling them from an event), a lower right than deploying code or configuring the
worker. So every local path a parameter names (input ``files``, a batch's ``items`` file and the
files its items name, ``deploy_agent``'s spec file, ``output_dir``) must resolve, after symlinks,
inside a root:

* input roots: ``MANAGED_AGENTS_INPUT_ROOTS`` (default: the working directory);
* output roots: ``MANAGED_AGENTS_OUTPUT_ROOTS`` (default: ``./outputs``);
* a ``ManagedAgent`` block's ``input_roots`` / ``output_roots``, when set, replace the
  environment's for runs of that block (block fields are set by whoever may edit blocks).

``~`` is never expanded: a parameter path starting with ``~`` is refused (the worker's home is not
the caller's). Relative paths and relative roots are taken from the working directory at the
time of the check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .exceptions import PathOutsideRootsError
from .settings import SecuritySettings

RootKind = Literal["input", "output"]

_SETTING = {"input": "MANAGED_AGENTS_INPUT_ROOTS", "output": "MANAGED_AGENTS_OUTPUT_ROOTS"}
_FIELD = {"input": "input_roots", "output": "output_roots"}


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else Path.cwd() / path


def resolve_roots(roots: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Return the roots as absolute, symlink-free paths (``~`` in a configured root is expanded).

    Args:
        roots: Configured roots (from settings or a block; never from a parameter).
    """
    return [_absolute(Path(root).expanduser()).resolve(strict=False) for root in roots]


def configured_roots(kind: RootKind, agent: object | None = None) -> list[Path]:
    """Return the input or output roots in force: the block's when it sets them, else the settings'.

    Args:
        kind: ``input`` or ``output``.
        agent: The ``ManagedAgent`` block of the run, if any.
    """
    from_block = getattr(agent, _FIELD[kind], None) if agent is not None else None
    if from_block is not None:
        return resolve_roots(from_block)
    settings = SecuritySettings()
    return resolve_roots(settings.input_roots if kind == "input" else settings.output_roots)


def input_roots(agent: object | None = None) -> list[Path]:
    """Return the input roots in force (see :func:`configured_roots`)."""
    return configured_roots("input", agent)


def output_roots(agent: object | None = None) -> list[Path]:
    """Return the output roots in force (see :func:`configured_roots`)."""
    return configured_roots("output", agent)


def _describe(roots: Sequence[Path]) -> str:
    return ", ".join(repr(str(r)) for r in roots) if roots else "(none)"


def check_inside_roots(
    path: str | os.PathLike[str], roots: Sequence[Path], *, kind: RootKind, what: str
) -> Path:
    """Return ``path`` resolved (after symlinks), after checking it lies inside one of ``roots``.

    Args:
        path: The path as a parameter gave it (relative paths are taken from the working
            directory).
        roots: The roots in force, already resolved (:func:`configured_roots`).
        kind: ``input`` or ``output`` (names the setting in the message).
        what: What the path is, for the message (``input file``, ``output_dir``, ...).

    Raises:
        PathOutsideRootsError: The path starts with ``~``, holds a NUL character, or resolves
            outside every root. The message names the roots and how to change them.
    """
    raw = os.fspath(path)
    fix = (
        f"Use a path inside the {kind} root(s) {_describe(roots)}, or ask whoever deploys the worker "
        f"to add a root ({_SETTING[kind]}, or the ManagedAgent block's {_FIELD[kind]})."
    )
    if "\x00" in raw:
        raise PathOutsideRootsError(f"The {what} path contains a NUL character. {fix}")
    if raw.startswith("~"):
        raise PathOutsideRootsError(
            f"The {what} {raw!r} starts with '~', which is not expanded (the worker's home folder is "
            f"not the caller's). {fix}"
        )
    resolved = _absolute(Path(raw)).resolve(strict=False)
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    raise PathOutsideRootsError(
        f"The {what} {raw!r} resolves (after symlinks) outside the {kind} root(s) {_describe(roots)}; "
        f"nothing was read, written or created. {fix}"
    )
