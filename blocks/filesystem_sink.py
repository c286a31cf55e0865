"""Output sinks for Prefect's filesystem blocks, and the one place a destination parameter
(a folder path or a filesystem block) becomes what the core's collector writes to.

* A ``LocalFileSystem`` block is its ``basepath`` folder: streamed and atomic, as a path is.
* A ``RemoteFileSystem`` block (fsspec): staged in a local temporary folder, then streamed with
  ``put_file`` to a partial name and moved to the final one (atomic where the file system's
  ``mv`` is, e.g. ``file://``; a copy then delete on object stores). Memory stays bounded.
* Any other ``WritableFileSystem`` block: its API only takes and returns whole ``bytes``
  (``write_path``/``read_path``), so each file is held in memory once while it is handed over
  or checked. Use a local folder or a ``RemoteFileSystem`` for very large outputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio
from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem

from managed_agents_core.output_paths import check_file_id, contained_path
from managed_agents_core.output_sinks import (
    CHUNK_BYTES,
    RECORDS_DIR,
    TEMP_PREFIX,
    LocalDirectorySink,
    OutputRecord,
    OutputSink,
    name_record_id,
)


class FileSystemBlockSink(OutputSink):
    """A Prefect ``WritableFileSystem`` block (see the module docstring for memory use).

    Args:
        block: The filesystem block; paths are relative to its base path.
    """

    def __init__(self, block: WritableFileSystem) -> None:
        self.block = block
        self.staging_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        self.fs: Any = block.filesystem if isinstance(block, RemoteFileSystem) else None
        self.base = block.basepath.rstrip("/") if isinstance(block, RemoteFileSystem) else ""

    def _relative(self, name: str) -> str:
        # The same containment rules as a local folder, checked on a stand-in path.
        contained_path(self.staging_dir, name)
        return name

    def _remote(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def describe(self, name: str) -> str:
        """Return the block's full path of ``name`` (its URL for a RemoteFileSystem)."""
        relative = self._relative(name)
        return self._remote(relative) if self.fs is not None else relative

    async def holds_copy(self, record: OutputRecord) -> bool:
        """Check size and SHA-256 of the copy in the block (streamed for a RemoteFileSystem)."""
        relative = self._relative(record.name)
        if self.fs is not None:
            return await anyio.to_thread.run_sync(self._remote_matches, self._remote(relative), record)
        try:
            content = await self.block.read_path(relative)
        except (OSError, ValueError):
            return False
        return len(content) == record.size_bytes and hashlib.sha256(content).hexdigest() == record.sha256

    def _remote_matches(self, path: str, record: OutputRecord) -> bool:
        if not self.fs.exists(path) or self.fs.isdir(path):
            return False
        if int(self.fs.info(path).get("size", -1)) != record.size_bytes:
            return False
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest() == record.sha256

    async def is_plain_file(self, name: str) -> bool:
        """True unless the block holds a folder at ``name``."""
        if self.fs is None:
            return True
        return not await anyio.to_thread.run_sync(self.fs.isdir, self._remote(self._relative(name)))

    async def exists(self, name: str) -> bool:
        """True when the block already holds a file (or folder) at ``name``."""
        relative = self._relative(name)
        if self.fs is not None:
            return bool(await anyio.to_thread.run_sync(self.fs.exists, self._remote(relative)))
        try:
            await self.block.read_path(relative)
        except (OSError, ValueError):
            return False
        return True

    async def commit(self, staged: Path, name: str) -> str:
        """Hand the verified staging file to the block (replacing only a file this collector wrote).

        Raises:
            OutputOverwriteError: Another file is at ``name``.
        """
        relative = self._relative(name)
        await self.ensure_replaceable(name)
        if self.fs is not None:
            final = self._remote(relative)
            partial = self._remote(f"{TEMP_PREFIX}{os.path.basename(staged)}")
            await anyio.to_thread.run_sync(self._put_remote, staged, partial, final)
            return final
        content = await anyio.Path(staged).read_bytes()  # the block API takes whole bytes
        await self.block.write_path(relative, content)
        return relative

    def _put_remote(self, staged: Path, partial: str, final: str) -> None:
        self.fs.makedirs(self.base, exist_ok=True)
        self.fs.put_file(str(staged), partial)
        self.fs.mv(partial, final)

    async def read_record(self, file_id: str) -> OutputRecord | None:
        """Read the record from ``.managed-agents-records/<file_id>.json`` in the block."""
        relative = f"{RECORDS_DIR}/{check_file_id(file_id)}.json"
        try:
            if self.fs is not None:
                raw = await anyio.to_thread.run_sync(self.fs.cat_file, self._remote(relative))
            else:
                raw = await self.block.read_path(relative)
            return OutputRecord.model_validate_json(raw)
        except (OSError, ValueError):
            return None

    async def write_record(self, record: OutputRecord) -> None:
        """Write the record into the block, by file id and by name."""
        data = record.model_dump_json().encode()
        for record_id in (check_file_id(record.file_id), name_record_id(record.name)):
            relative = f"{RECORDS_DIR}/{record_id}.json"
            if self.fs is not None:
                await anyio.to_thread.run_sync(self._pipe_remote, self._remote(relative), data)
            else:
                await self.block.write_path(relative, data)

    def _pipe_remote(self, path: str, data: bytes) -> None:
        self.fs.makedirs(f"{self.base}/{RECORDS_DIR}", exist_ok=True)
        self.fs.pipe_file(path, data)

    async def aclose(self) -> None:
        """Remove the local staging folder."""
        await anyio.to_thread.run_sync(shutil.rmtree, self.staging_dir, True)


def output_destination(
    destination: str | os.PathLike[str] | OutputSink | WritableFileSystem,
) -> str | os.PathLike[str] | OutputSink:
    """Turn a destination parameter into what the core's collector takes.

    A filesystem block becomes its sink; a folder path stays a path (the collector checks it
    against the output roots before creating it).

    Args:
        destination: A folder path, an output sink, or a Prefect ``WritableFileSystem`` block.
    """
    if isinstance(destination, OutputSink):
        return destination
    if isinstance(destination, LocalFileSystem):
        return LocalDirectorySink(Path(destination.basepath or ".").expanduser())
    if isinstance(destination, WritableFileSystem):
        return FileSystemBlockSink(destination)
    return destination
