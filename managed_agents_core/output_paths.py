"""Safe local names for server-supplied output file names.

Policy (decided here): a server name is **sanitized, not rejected**. An agent that writes
``../report.md`` still produces a useful file, so it is kept, but always as a plain file name
directly inside the destination:

* backslashes count as separators, and every directory part is dropped (``a/../../b`` → ``b``,
  ``/etc/passwd`` → ``passwd``, ``sub\\..\\..\\x`` → ``x``);
* control, format (e.g. right-to-left override), surrogate and unassigned characters, line and
  paragraph separators and the characters Windows forbids (``<>:"|?*``) become ``_``;
  NUL included (``con\\0x`` → ``con_x``);
* leading and trailing spaces and trailing dots are stripped (Windows drops them silently);
* an empty result, ``.`` or ``..`` becomes ``unnamed-<file id>``;
* Windows device names (``CON``, ``NUL``, ``COM1``...) and names starting with this
  integration's reserved prefix get a leading ``_``;
* names are NFC-normalized and cut to 255 UTF-8 bytes, keeping the extension.

:func:`contained_path` then checks the result once more and raises
:class:`~managed_agents_core.exceptions.UnsafeOutputPathError` if the name could still leave the destination,
so nothing is ever written outside it even if the rules above had a gap.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .exceptions import UnsafeOutputPathError

MAX_NAME_BYTES = 255
"""Longest file name (in UTF-8 bytes) most file systems accept."""

RESERVED_PREFIX = ".managed-agents"
"""Names starting with this are the integration's own (download records and partial files)."""

_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_EXTENSION_CHARS = 16


def check_file_id(file_id: str) -> str:
    """Return ``file_id`` when it is safe to use in a file name.

    Raises:
        UnsafeOutputPathError: The id has characters other than letters, digits, ``_`` and ``-``.
    """
    if not _FILE_ID.fullmatch(file_id):
        raise UnsafeOutputPathError(f"Server file id {file_id!r} is not a plain identifier.")
    return file_id


def _clean_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp") or ch in _WINDOWS_FORBIDDEN:
        return "_"
    return ch


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > _MAX_EXTENSION_CHARS:
        return name, ""
    return stem, "." + ext


def _cut_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")


def fit_name(stem: str, extension: str, suffix: str = "", max_bytes: int = MAX_NAME_BYTES) -> str:
    """Join ``stem + suffix + extension``, cutting the stem so the result fits ``max_bytes``.

    Args:
        stem: The name without extension.
        extension: The extension with its dot, or "".
        suffix: Text that must survive the cut (e.g. a disambiguating file id).
        max_bytes: Longest result in UTF-8 bytes.
    """
    fixed = len((suffix + extension).encode("utf-8"))
    if fixed >= max_bytes:
        extension = ""
        fixed = len(suffix.encode("utf-8"))
    return _cut_utf8(stem, max_bytes - fixed) + suffix + extension


def safe_output_name(server_name: str, file_id: str) -> str:
    """Return a plain file name for a server-supplied output name (see the module's policy).

    Args:
        server_name: The ``filename`` the Files API reported.
        file_id: The file's id (used for names that are empty after cleaning).

    Raises:
        UnsafeOutputPathError: ``file_id`` is not a plain identifier.
    """
    check_file_id(file_id)
    name = unicodedata.normalize("NFC", server_name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(_clean_char(ch) for ch in name).strip(" ").rstrip(". ")
    if not name.strip("."):
        return f"unnamed-{file_id}"
    if name.casefold().startswith(RESERVED_PREFIX) or name.split(".", 1)[0].upper() in _WINDOWS_DEVICES:
        name = "_" + name
    stem, extension = _split_extension(name)
    return fit_name(stem, extension)


def disambiguated_name(name: str, tag: str) -> str:
    """Return ``name`` with ``-<tag>`` before its extension, still within the length limit."""
    stem, extension = _split_extension(name)
    return fit_name(stem, extension, suffix=f"-{tag}")


@dataclass(frozen=True)
class ServerFile:
    """The parts of a listed file that decide its local name."""

    file_id: str
    filename: str
    created_at: str


def plan_output_names(files: Iterable[ServerFile]) -> dict[str, str]:
    """Give every file a distinct, safe local name, the same way on every run.

    Files are taken oldest first (then by id). The first file with a name keeps it; later ones
    get ``-<file id>`` added. Names are compared case-insensitively, so two names that differ
    only in case do not overwrite each other on macOS or Windows.

    Returns:
        ``{file_id: local name}``.
    """
    planned: dict[str, str] = {}
    taken: set[str] = set()
    for f in sorted(files, key=lambda f: (f.created_at, f.file_id)):
        base = safe_output_name(f.filename, f.file_id)
        candidate = base
        counter = 1
        while candidate.casefold() in taken:
            tag = f.file_id if counter == 1 else f"{f.file_id}-{counter}"
            candidate = disambiguated_name(base, tag)
            counter += 1
        taken.add(candidate.casefold())
        planned[f.file_id] = candidate
    return planned


def contained_path(destination: Path, name: str) -> Path:
    """Return ``destination / name`` after checking that it stays directly inside ``destination``.

    Args:
        destination: The output folder (resolved).
        name: A file name from :func:`safe_output_name`.

    Raises:
        UnsafeOutputPathError: ``name`` has a separator, NUL, is ``.``/``..``/empty, or the
            path's real folder is not ``destination``.
    """
    separators = {"/", "\\", os.sep, *((os.altsep,) if os.altsep else ())}
    if name in ("", ".", "..") or "\x00" in name or any(s in name for s in separators):
        raise UnsafeOutputPathError(
            f"Output name {name!r} would leave the output folder {str(destination)!r}."
        )
    target = destination / name
    if target.parent != destination or os.path.realpath(target.parent) != os.path.realpath(destination):
        raise UnsafeOutputPathError(
            f"Output name {name!r} would leave the output folder {str(destination)!r}."
        )
    return target
