"""File contents and metadata: uploads, session outputs, generated files and input copies.

Metadata lives in ``emulator.store.files`` as the public ``BetaFileMetadata`` dict plus private
keys starting with ``_`` (stripped by :func:`public_file`):

* ``_blob``: name of the content file under ``emulator.blob_dir`` (absent for generated files);
* ``_generated``: ``{"size", "seed"}`` of a generated file, whose bytes are produced on the fly
  on download and never stored (so multi-GiB files cost nothing);
* ``_listable_after``: ``time.time()`` before which list endpoints do not show the file (the real
  service's output-indexing lag);
* ``_indexing_pending``: an output of a running turn under ``output_indexing_window``: no list
  shows it until the turn's idle, when :func:`index_outputs` gives it its ``_listable_after``;
* ``_input_copy_of``: for the session-scoped copy made when a file is mounted, the original id.

Contents are written and read in chunks, never whole, so memory stays bounded at any size.

Decisions where the reference says UNKNOWN:

* Session-scoped **input copies do not appear** under ``files.list(scope_id=...)``; only files
  the session produced do. ``EmulatorConfig.list_input_copies_in_scope = True`` shows them too.
* Uploaded files (and their session copies) are ``downloadable: true``; outputs as well.
* ``_listable_after`` hides a file from every list, scoped or not; retrieve and download work.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import ApiError
from .ids import new_id, now_iso
from .runtime import Emulator

GENERATED_BLOCK = 1 << 20
"""Generated content is a sequence of 1 MiB blocks, each seeded from (seed, block index)."""


class BlobWriter:
    """Streams content into a temporary file under ``blob_dir``; :meth:`commit` names it.

    Args:
        emulator: The emulator whose ``blob_dir`` receives the file.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        fd, self._tmp_path = tempfile.mkstemp(dir=emulator.blob_dir, prefix=".upload-")
        self._fh = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        self._fh.write(chunk)
        self.size += len(chunk)

    def commit(self, file_id: str) -> str:
        """Close and rename the content to its final name; return that name."""
        self._fh.close()
        os.replace(self._tmp_path, self.emulator.blob_dir / file_id)
        return file_id

    def discard(self) -> None:
        """Close and delete the partial content (failed upload)."""
        self._fh.close()
        if os.path.exists(self._tmp_path):
            os.unlink(self._tmp_path)


def create_file(
    emulator: Emulator,
    *,
    filename: str,
    mime_type: str,
    data: bytes | None = None,
    chunks: Iterable[bytes] | None = None,
    generated_size: int | None = None,
    generated_seed: int = 0,
    scope_session_id: str | None = None,
    downloadable: bool = True,
    listable_after: float | None = None,
    indexing_pending: bool = False,
    expires_at: str | None = None,
) -> dict[str, Any]:
    """Store a new file and return its public metadata (``BetaFileMetadata`` shape).

    Give at most one content source: ``data``, ``chunks`` (streamed to disk) or
    ``generated_size`` (a deterministic stream derived from ``generated_seed``, never stored).
    With none of them the file is empty.

    Args:
        emulator: The emulator.
        filename: The file's name as listed.
        mime_type: Its MIME type (sent as the download's content type).
        data: The whole content, for small files.
        chunks: The content as chunks, written to disk one by one.
        generated_size: Size in bytes of a generated file.
        generated_seed: Seed of a generated file's content.
        scope_session_id: Make the file session-scoped (``scope: {type: session, id}``).
        downloadable: The ``downloadable`` flag; false makes downloads a 400.
        listable_after: ``time.time()`` before which lists do not show the file.
        indexing_pending: Hide the file from lists until :func:`index_outputs` indexes it.
        expires_at: RFC 3339 expiry; downloads after it are a 404 ``file_expired``.
    """
    if sum(x is not None for x in (data, chunks, generated_size)) > 1:
        raise ValueError("give at most one of data, chunks and generated_size")
    if generated_size is not None:
        if generated_size < 0:
            raise ValueError("generated_size must be >= 0")
        return _register(
            emulator,
            new_id("file"),
            filename=filename,
            mime_type=mime_type,
            size=generated_size,
            private={
                "_generated": {"size": generated_size, "seed": generated_seed},
                **({"_indexing_pending": True} if indexing_pending else {}),
            },
            scope_session_id=scope_session_id,
            downloadable=downloadable,
            listable_after=listable_after,
            expires_at=expires_at,
        )
    writer = BlobWriter(emulator)
    try:
        for chunk in [data] if data is not None else chunks or []:
            writer.write(chunk)
    except BaseException:
        writer.discard()
        raise
    return create_file_from_writer(
        emulator,
        writer,
        filename=filename,
        mime_type=mime_type,
        scope_session_id=scope_session_id,
        downloadable=downloadable,
        listable_after=listable_after,
        indexing_pending=indexing_pending,
        expires_at=expires_at,
    )


def create_file_from_writer(
    emulator: Emulator,
    writer: BlobWriter,
    *,
    filename: str,
    mime_type: str,
    scope_session_id: str | None = None,
    downloadable: bool = True,
    listable_after: float | None = None,
    indexing_pending: bool = False,
    expires_at: str | None = None,
) -> dict[str, Any]:
    """Commit a :class:`BlobWriter`'s content as a new file; return its public metadata."""
    file_id = new_id("file")
    size = writer.size
    blob = writer.commit(file_id)
    return _register(
        emulator,
        file_id,
        filename=filename,
        mime_type=mime_type,
        size=size,
        private={"_blob": blob, **({"_indexing_pending": True} if indexing_pending else {})},
        scope_session_id=scope_session_id,
        downloadable=downloadable,
        listable_after=listable_after,
        expires_at=expires_at,
    )


def _register(
    emulator: Emulator,
    file_id: str,
    *,
    filename: str,
    mime_type: str,
    size: int,
    private: dict[str, Any],
    scope_session_id: str | None,
    downloadable: bool,
    listable_after: float | None,
    expires_at: str | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "type": "file",
        "id": file_id,
        "filename": filename,
        "mime_type": mime_type,
        "size_bytes": size,
        "created_at": now_iso(),
        "downloadable": downloadable,
        "expires_at": expires_at,
        "scope": {"type": "session", "id": scope_session_id} if scope_session_id else None,
        "_listable_after": listable_after,
        **private,
    }
    emulator.store.files[file_id] = meta
    emulator.save()
    return public_file(meta)


def public_file(meta: dict[str, Any]) -> dict[str, Any]:
    """Return the metadata without the private ``_`` keys."""
    return {k: v for k, v in meta.items() if not k.startswith("_")}


def get_file(emulator: Emulator, file_id: str) -> dict[str, Any]:
    """Return the stored metadata (private keys included).

    Raises:
        ApiError: 404 when the file is unknown or deleted.
    """
    meta = emulator.store.files.get(file_id)
    if meta is None:
        raise ApiError(404, f"file {file_id!r} not found.")
    return meta


def is_listable(emulator: Emulator, meta: dict[str, Any], scope_id: str | None, now: float) -> bool:
    """Whether ``files.list`` (optionally scoped to a session) shows this file right now."""
    if meta.get("_indexing_pending"):
        return False
    after = meta.get("_listable_after")
    if after is not None and now < after:
        return False
    if scope_id is None:
        return True
    scope = meta.get("scope")
    if not scope or scope.get("id") != scope_id:
        return False
    return emulator.config.list_input_copies_in_scope or meta.get("_input_copy_of") is None


def index_outputs(emulator: Emulator, file_ids: list[str], at: float) -> None:
    """Index a finished turn's outputs (``output_indexing_window``), in creation order.

    File ``i`` of ``n`` becomes listable at ``at + output_listing_delay + window * i / n``.

    Args:
        emulator: The emulator.
        file_ids: The turn's output files, in creation order (deleted ones are skipped).
        at: ``time.time()`` of the turn's idle (or termination).
    """
    config = emulator.config
    count = len(file_ids)
    for index, file_id in enumerate(file_ids, start=1):
        meta = emulator.store.files.get(file_id)
        if meta is None:
            continue
        meta.pop("_indexing_pending", None)
        meta["_listable_after"] = (
            at + config.output_listing_delay + config.output_indexing_window * index / count
        )


def delete_file(emulator: Emulator, file_id: str) -> None:
    """Delete a file's metadata and content (404 when unknown)."""
    meta = get_file(emulator, file_id)
    del emulator.store.files[file_id]
    blob = meta.get("_blob")
    if blob:
        path = emulator.blob_dir / blob
        if path.exists():
            path.unlink()
    emulator.save()


def iter_content(emulator: Emulator, meta: dict[str, Any], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Yield a file's content in chunks of at most ``chunk_size`` bytes."""
    generated = meta.get("_generated")
    if generated is not None:
        yield from _rechunk(_generate(int(generated["size"]), int(generated["seed"])), chunk_size)
        return
    with open(emulator.blob_dir / meta["_blob"], "rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def read_content(emulator: Emulator, meta: dict[str, Any], limit: int | None = None) -> bytes:
    """Return a file's content (at most ``limit`` bytes when given)."""
    parts: list[bytes] = []
    taken = 0
    for chunk in iter_content(emulator, meta):
        if limit is not None and taken + len(chunk) >= limit:
            parts.append(chunk[: limit - taken])
            break
        parts.append(chunk)
        taken += len(chunk)
    return b"".join(parts)


def generated_sha256(size: int, seed: int) -> str:
    """Return the SHA-256 (hex) of the generated content of ``size`` bytes from ``seed``."""
    digest = hashlib.sha256()
    for block in _generate(size, seed):
        digest.update(block)
    return digest.hexdigest()


def _generate(size: int, seed: int) -> Iterator[bytes]:
    index = 0
    remaining = size
    while remaining > 0:
        n = min(GENERATED_BLOCK, remaining)
        yield random.Random((seed << 32) | index).randbytes(n)
        remaining -= n
        index += 1


def _rechunk(blocks: Iterator[bytes], chunk_size: int) -> Iterator[bytes]:
    for block in blocks:
        for start in range(0, len(block), chunk_size):
            yield block[start : start + chunk_size]


def copy_for_session(emulator: Emulator, file_id: str, session_id: str) -> dict[str, Any]:
    """Make the session-scoped copy (new ``file_id``) of a mounted input file.

    Returns:
        The copy's public metadata (``scope`` set to the session).

    Raises:
        ApiError: 404 when ``file_id`` is unknown.
    """
    original = get_file(emulator, file_id)
    copy_id = new_id("file")
    private: dict[str, Any] = {"_input_copy_of": file_id}
    if original.get("_generated") is not None:
        private["_generated"] = dict(original["_generated"])
    else:
        source = emulator.blob_dir / original["_blob"]
        target = emulator.blob_dir / copy_id
        try:
            os.link(source, target)
        except OSError:
            with open(source, "rb") as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        private["_blob"] = copy_id
    return _register(
        emulator,
        copy_id,
        filename=original["filename"],
        mime_type=original["mime_type"],
        size=original["size_bytes"],
        private=private,
        scope_session_id=session_id,
        downloadable=original.get("downloadable", True),
        listable_after=None,
        expires_at=original.get("expires_at"),
    )
