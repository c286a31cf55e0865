"""Where collected output files go: a local folder, or any :class:`OutputSink` (a Prefect
filesystem block's, from :mod:`blocks.filesystem_sink`).

Every download is first streamed to a *staging* file and checked; only a complete, verified
file is put in place. Each destination also keeps a small JSON record per downloaded file id
(under ``.managed-agents-records/``) holding the name, size and SHA-256, so a later run can
tell that an identical copy is already there and skip the download, and one per output name,
so an output **never replaces a file the collector did not write**: something already at the
destination name is only replaced when a record says the collector wrote a file of that name
there and it is still a plain file (not a link or a folder); otherwise
:class:`~managed_agents_core.exceptions.OutputOverwriteError` and nothing is overwritten. (A recorded output
that was edited since is the collector's file: collecting it again restores it.)

A local folder given as a path must resolve, after symlinks, inside the output roots
(``MANAGED_AGENTS_OUTPUT_ROOTS``, see :mod:`managed_agents_core.roots`), checked before it is created and
again on its real path after.

A local folder's staging file lives in the destination itself and is moved into place with
``os.replace`` (atomic); memory stays bounded at any size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import anyio
from pydantic import BaseModel, Field, ValidationError

from .exceptions import OutputError, OutputOverwriteError
from .output_paths import RESERVED_PREFIX, check_file_id, contained_path
from .roots import check_inside_roots, output_roots

CHUNK_BYTES = 1 << 20
"""Read and write in 1 MiB chunks."""

RECORDS_DIR = f"{RESERVED_PREFIX}-records"
"""Folder (inside the destination) holding one JSON record per downloaded file id."""

TEMP_PREFIX = f"{RESERVED_PREFIX}-tmp-"
"""Prefix of staging and partial files (never a sanitized output name, which cannot start so)."""


def partial_prefix() -> str:
    """Prefix of this process's partial files: ``TEMP_PREFIX`` plus the process id.

    A process killed mid-download (SIGKILL, a cancelled run) cannot delete its partial file;
    the pid lets :func:`remove_orphaned_partials` tell such leftovers from a live writer's files.
    """
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphaned_partials(folder: Path) -> list[Path]:
    """Delete partial files that processes which no longer run left in ``folder``.

    Looks at ``folder`` and its records folder (not deeper); files of live processes and
    files without a pid in their name are kept.

    Returns:
        The deleted files.
    """
    removed: list[Path] = []
    for place in (folder, folder / RECORDS_DIR):
        if not place.is_dir():
            continue
        for path in place.glob(f"{TEMP_PREFIX}*"):
            pid, _, _ = path.name.removeprefix(TEMP_PREFIX).partition("-")
            if pid.isdigit() and not _process_alive(int(pid)) and path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


class OutputRecord(BaseModel):
    """What a destination remembers about a file it received."""

    file_id: str = Field(description="Id of the file in the Files API.")
    name: str = Field(description="Local name the file was written under.")
    size_bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="Lowercase hex SHA-256 of the content.")


def name_record_id(name: str) -> str:
    """The record id under which the record of the output named ``name`` is kept (``name-<sha256>``)."""
    return "name-" + hashlib.sha256(name.encode("utf-8")).hexdigest()


def sha256_of_local_file(path: Path) -> tuple[str, int]:
    """Return the SHA-256 and size of a local file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class OutputSink(ABC):
    """A destination for verified output files."""

    staging_dir: Path
    """Local folder where downloads are staged before :meth:`commit`."""

    @abstractmethod
    def describe(self, name: str) -> str:
        """Return the path reported for an output named ``name``."""

    @abstractmethod
    async def holds_copy(self, record: OutputRecord) -> bool:
        """True when the destination holds ``record.name`` with exactly that size and SHA-256."""

    @abstractmethod
    async def commit(self, staged: Path, name: str) -> str:
        """Put the verified staging file in place as ``name``; return its reported path."""

    @abstractmethod
    async def read_record(self, file_id: str) -> OutputRecord | None:
        """Return the record of ``file_id``, or None when there is none (or it is unreadable)."""

    @abstractmethod
    async def write_record(self, record: OutputRecord) -> None:
        """Store the record of a file that was just committed (by its file id and by its name)."""

    @abstractmethod
    async def exists(self, name: str) -> bool:
        """True when something (a file, a link, a folder) is already at ``name``."""

    async def is_plain_file(self, name: str) -> bool:
        """True when what is at ``name`` is a plain file (not a link, not a folder)."""
        return True

    async def records_named(self, name: str) -> list[OutputRecord]:
        """The records of files this collector wrote as ``name`` (the name record, if any)."""
        record = await self.read_record(name_record_id(name))
        return [record] if record is not None and record.name == name else []

    async def ensure_replaceable(self, name: str) -> None:
        """Check that committing ``name`` replaces nothing but a file this collector wrote.

        Raises:
            OutputOverwriteError: Something is at ``name`` and either no record says this
                collector wrote a file of that name, or it is not a plain file any more.
        """
        if not await self.exists(name):
            return
        if await self.records_named(name) and await self.is_plain_file(name):
            return
        raise OutputOverwriteError(
            f"Output {name!r} would replace {self.describe(name)!r}, which this collector did not write; "
            "nothing was overwritten. Move or remove that file, or collect into another output_dir."
        )

    async def aclose(self) -> None:  # noqa: B027  (optional hook, nothing to release by default)
        """Release local resources (staging folders)."""


def current_umask() -> int:
    """This process's umask, read without changing it where the OS says it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # elsewhere: set and restore (another thread's file is private meanwhile)
    os.umask(mask)
    return mask


class LocalDirectorySink(OutputSink):
    """A local folder: stage in the folder itself, then ``os.replace`` (atomic).

    Args:
        directory: The output folder; created when missing.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = Path(os.path.realpath(directory))
        self.staging_dir = self.directory
        self.records = self.directory / RECORDS_DIR
        remove_orphaned_partials(self.directory)  # left by an earlier run that was killed

    def _target(self, name: str) -> Path:
        return contained_path(self.directory, name)

    def describe(self, name: str) -> str:
        """Return the absolute local path of ``name``."""
        return str(self._target(name))

    async def holds_copy(self, record: OutputRecord) -> bool:
        """Check a regular file (never a symlink) of the recorded size and SHA-256."""
        target = self._target(record.name)
        try:
            info = target.lstat()
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode) or info.st_size != record.size_bytes:
            return False
        digest, _ = await anyio.to_thread.run_sync(sha256_of_local_file, target)
        return digest == record.sha256

    async def exists(self, name: str) -> bool:
        """True when anything is at ``name`` (a symlink counts, dangling or not)."""
        return await anyio.to_thread.run_sync(os.path.lexists, self._target(name))

    async def is_plain_file(self, name: str) -> bool:
        """True for a regular file; a symlink (never followed) or anything else is not one."""
        info = await anyio.to_thread.run_sync(os.lstat, self._target(name))
        return stat.S_ISREG(info.st_mode)

    async def records_named(self, name: str) -> list[OutputRecord]:
        """The name record, else the file-id records that name ``name`` (folders written before
        name records existed)."""
        found = await super().records_named(name)
        if found or not self.records.is_dir():
            return found
        for path in self.records.glob("*.json"):
            with contextlib.suppress(OSError, ValidationError):
                record = OutputRecord.model_validate_json(await anyio.Path(path).read_text())
                if record.name == name:
                    found.append(record)
        return found

    async def commit(self, staged: Path, name: str) -> str:
        """Atomically rename the staging file (same folder) onto ``name``.

        Only a file this collector wrote (and nobody changed since) is replaced; a symlink is
        never followed.

        Raises:
            OutputError: A folder is in the way.
            OutputOverwriteError: Another file (or a symlink) is at ``name``.
        """
        target = self._target(name)
        if target.is_dir() and not target.is_symlink():
            raise OutputError(f"Cannot write output {name!r}: {str(target)!r} is a folder.")
        await self.ensure_replaceable(name)
        # The staging file was made private (0600) while incomplete; the output gets the mode
        # any file this process writes gets, so a downstream job or a teammate can read it.
        os.chmod(staged, 0o666 & ~current_umask())
        os.replace(staged, target)
        return str(target)

    async def read_record(self, file_id: str) -> OutputRecord | None:
        """Read ``.managed-agents-records/<file_id>.json``."""
        path = self.records / f"{check_file_id(file_id)}.json"
        try:
            raw = await anyio.Path(path).read_text()
            return OutputRecord.model_validate_json(raw)
        except (OSError, ValidationError):
            return None

    async def write_record(self, record: OutputRecord) -> None:
        """Write the record atomically (temporary file, then rename), by file id and by name."""
        self.records.mkdir(exist_ok=True)
        for record_id in (check_file_id(record.file_id), name_record_id(record.name)):
            path = self.records / f"{record_id}.json"
            fd, tmp = tempfile.mkstemp(dir=self.records, prefix=partial_prefix())
            try:
                async with await anyio.open_file(fd, "w") as fh:
                    await fh.write(record.model_dump_json())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise


def open_sink(
    destination: str | os.PathLike[str] | OutputSink, roots: Sequence[Path] | None = None
) -> OutputSink:
    """Return the sink for a destination: a folder path, or a sink made already.

    A folder given as a path must be inside the output roots: checked (after symlinks) before
    the folder is created, and again on its real path after; ``~`` is not expanded. A sink made
    already (a Prefect filesystem block's, :func:`blocks.filesystem_sink.output_destination`) is
    configuration (code or a saved block), so its own base path is used as it is.

    Args:
        destination: A folder path, or an :class:`OutputSink`.
        roots: The output roots in force, resolved (default: ``MANAGED_AGENTS_OUTPUT_ROOTS``).

    Raises:
        OutputError: The destination is neither a path nor a sink.
        PathOutsideRootsError: A folder path outside every output root (nothing is created).
    """
    if isinstance(destination, OutputSink):
        return destination
    if isinstance(destination, str | os.PathLike):
        allowed = output_roots() if roots is None else list(roots)
        folder = check_inside_roots(destination, allowed, kind="output", what="output_dir")
        folder.mkdir(parents=True, exist_ok=True)
        # Again on the real folder: a link swapped in since the first check is caught here.
        check_inside_roots(os.path.realpath(folder), allowed, kind="output", what="output_dir")
        return LocalDirectorySink(folder)
    raise OutputError(
        "Output destination must be a folder path or a Prefect WritableFileSystem block, "
        f"got {type(destination).__name__}."
    )
