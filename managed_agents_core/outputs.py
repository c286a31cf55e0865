"""Collect a session's output files: list, download (streamed, verified, atomic), skip copies.

Plain async functions on the SDK client (no Prefect run needed); ``tasks/outputs.py`` wraps
them in a task. The steps:

1. :func:`list_session_outputs`: ``files.list(scope_id=session_id)`` until the listing has
   settled (the service indexes outputs one by one, seconds after the turn ends), without the
   session's input copies and earlier turns' outputs (ids in ``exclude_file_ids`` and every
   ``file`` resource of the session).
2. :func:`~managed_agents_core.output_paths.plan_output_names`: a safe, distinct local name per file.
3. :func:`download_output`: skip when the destination already holds the same bytes (its record
   says so and the size and SHA-256 still match); otherwise stream the body in 1 MiB chunks to a
   staging file while hashing, check the size against the metadata, and commit it. A download
   cut mid-body (or any transient error) is retried with backoff; a failed attempt never leaves
   a partial file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx2
from anthropic.types.beta import BetaFileMetadata

from .exceptions import OutputError, OutputIntegrityError
from .output_paths import ServerFile, plan_output_names
from .output_sinks import CHUNK_BYTES, OutputRecord, OutputSink, open_sink, partial_prefix
from .results import OutputFile
from .retry_policy import is_transient_error, retrying
from .settings import RuntimeSettings

MANAGED_AGENTS_BETA = "managed-agents-2026-04-01"
DOWNLOAD_ATTEMPTS = 5
"""Tries per file (the first plus four retries) when a download is cut or fails transiently."""
MAX_PARALLEL_DOWNLOADS = 4
"""Files downloaded at once; memory use is about this many chunks."""

_log = logging.getLogger(__name__)


class IncompleteDownloadError(OutputIntegrityError):
    """The body ended before ``size_bytes`` bytes arrived (a cut download; retried)."""


def is_retryable_download_error(exc: BaseException) -> bool:
    """True for a cut body or a transient API/connection error."""
    return isinstance(exc, IncompleteDownloadError) or is_transient_error(exc)


async def session_input_copy_ids(client: anthropic.AsyncAnthropic, session_id: str) -> set[str]:
    """Return the ids of the session-scoped copies of its mounted input files."""
    ids: set[str] = set()
    async for resource in client.beta.sessions.resources.list(session_id):
        if resource.type == "file":
            ids.add(resource.file_id)
    return ids


@dataclass(frozen=True)
class OutputListing:
    """A settled listing of one turn's output files.

    Attributes:
        files: The outputs' metadata (input copies and excluded ids dropped).
        late_ids: Ids that were not listed yet when the turn ended (the service indexed them late).
    """

    files: list[BetaFileMetadata]
    late_ids: frozenset[str]


async def list_session_outputs(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    *,
    exclude_file_ids: Sequence[str] = (),
    listing_timeout: float = 10.0,
    expected_count: int | None = None,
    turn_ended_at: datetime | None = None,
    indexing_window: float | None = None,
) -> OutputListing:
    """List the turn's output files once the service's indexing has settled.

    The service indexes a turn's outputs one by one, seconds after the turn ends, so a listing
    taken at once may be partial. The listing is settled when ``indexing_window`` seconds have
    passed since the turn ended *and* it did not change since the previous listing (or that
    window had already passed at the first listing): lists at the end, once the window is over,
    then every 0.5 s while files keep arriving. With ``expected_count`` it also waits (up to
    ``listing_timeout``) until that many are listed.

    Args:
        client: The async SDK client.
        session_id: The session (``sesn_...``).
        exclude_file_ids: Ids never to collect (the uploaded inputs, earlier turns' outputs).
        listing_timeout: Longest wait for ``expected_count`` files, in seconds.
        expected_count: Wait until at least this many outputs are listed.
        turn_ended_at: When the turn ended (now when None).
        indexing_window: Seconds the service may take to index outputs (the runtime settings'
            ``output_indexing_window`` when None).

    Returns:
        The settled listing, with the ids that arrived late.

    Raises:
        OutputError: Fewer than ``expected_count`` files were listed in time.
    """
    window = RuntimeSettings().output_indexing_window if indexing_window is None else indexing_window
    excluded = set(exclude_file_ids) | await session_input_copy_ids(client, session_id)
    settle_at = (turn_ended_at or datetime.now(UTC)) + timedelta(seconds=window)
    deadline = time.monotonic() + listing_timeout
    first: set[str] | None = None
    previous: set[str] | None = None
    while True:
        files = [
            f
            async for f in client.beta.files.list(scope_id=session_id, limit=100, betas=[MANAGED_AGENTS_BETA])
            if f.id not in excluded
        ]
        ids = {f.id for f in files}
        wait_for_indexing = (settle_at - datetime.now(UTC)).total_seconds()
        settled = wait_for_indexing <= 0 and (previous is None or ids == previous)
        if first is None:
            first = ids
        previous = ids
        short = expected_count is not None and len(files) < expected_count
        if settled and not (short and time.monotonic() < deadline):
            break
        await asyncio.sleep(wait_for_indexing if wait_for_indexing > 0 else 0.5)
    if expected_count is not None and len(files) < expected_count:
        raise OutputError(
            f"Session {session_id} lists {len(files)} output file(s) after {listing_timeout:g} s; "
            f"expected {expected_count}."
        )
    return OutputListing(files, frozenset(ids - first))


async def earlier_output_ids(client: anthropic.AsyncAnthropic, session_id: str) -> list[str]:
    """Ids of the outputs the session's earlier turns made: what a new turn must not collect.

    Taken before a follow-up is sent, once the previous turn's outputs are indexed: the
    indexing window counts from the session's last idle (the newest ``session.status_idle`` or
    the session's ``updated_at`` when it is idle, whichever is later, on the service's clock).
    """
    session = await client.beta.sessions.retrieve(session_id)
    ends: list[datetime] = []
    if session.status == "idle" and session.updated_at is not None:
        ends.append(session.updated_at)
    page = await client.beta.sessions.events.list(
        session_id, limit=1, order="desc", types=["session.status_idle"]
    )
    ends.extend(stamp for e in page.data if (stamp := getattr(e, "processed_at", None)) is not None)
    last_end = max(ends) if ends else datetime.now(UTC) - timedelta(days=1)
    listing = await list_session_outputs(client, session_id, turn_ended_at=last_end)
    return sorted(f.id for f in listing.files)


async def _stream_to_staging(
    client: anthropic.AsyncAnthropic, meta: BetaFileMetadata, staging_dir: Path
) -> tuple[Path, str]:
    """One download attempt into a new staging file; return it and its SHA-256.

    The staging file is deleted when the attempt fails for any reason.
    """
    fd, tmp_name = tempfile.mkstemp(dir=staging_dir, prefix=partial_prefix(), suffix=".part")
    staged = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        async with await anyio.open_file(fd, "wb") as fh:
            async with client.beta.files.with_streaming_response.download(meta.id) as response:
                try:
                    async for chunk in response.iter_bytes(CHUNK_BYTES):
                        size += len(chunk)
                        if size > meta.size_bytes:
                            raise OutputIntegrityError(
                                f"Output {meta.filename!r} ({meta.id}) is longer than its metadata's "
                                f"{meta.size_bytes} bytes."
                            )
                        digest.update(chunk)
                        await fh.write(chunk)
                except httpx2.TransportError as exc:
                    # The body was cut mid-transfer: the same typed (and retried) error as a short body.
                    raise IncompleteDownloadError(
                        f"Output {meta.filename!r} ({meta.id}) was cut after {size} of "
                        f"{meta.size_bytes} bytes ({type(exc).__name__})."
                    ) from exc
            await fh.flush()
            await anyio.to_thread.run_sync(os.fsync, fh.wrapped.fileno())
        if size < meta.size_bytes:
            raise IncompleteDownloadError(
                f"Output {meta.filename!r} ({meta.id}) ended after {size} of {meta.size_bytes} bytes."
            )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    return staged, digest.hexdigest()


async def download_output(
    client: anthropic.AsyncAnthropic,
    meta: BetaFileMetadata,
    name: str,
    sink: OutputSink,
    *,
    attempts: int = DOWNLOAD_ATTEMPTS,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> OutputFile:
    """Download one output into ``sink`` as ``name``, unless an identical copy is there.

    Args:
        client: The async SDK client.
        meta: The file's metadata from the listing.
        name: The safe local name (from :func:`~managed_agents_core.output_paths.plan_output_names`).
        sink: The destination.
        attempts: Tries when the download is cut or fails transiently.
        logger: Where to log retries and skips.

    Raises:
        OutputIntegrityError: The size never matched the metadata.
        anthropic.APIStatusError: A final API error (e.g. 404 ``file_expired``).
    """
    log = logger or _log
    record = await sink.read_record(meta.id)
    if (
        record is not None
        and record.name == name
        and record.size_bytes == meta.size_bytes
        and await sink.holds_copy(record)
    ):
        log.info(
            "Output %s is already at %s (same size and sha256); skipped", meta.filename, sink.describe(name)
        )
        return OutputFile(
            file_id=meta.id,
            filename=meta.filename,
            path=sink.describe(name),
            size_bytes=record.size_bytes,
            sha256=record.sha256,
            skipped=True,
        )

    def _log_retry(state: Any) -> None:
        log.warning(
            "Download of %s (%s) failed (%s); retrying (attempt %d of %d)",
            meta.filename,
            meta.id,
            state.outcome.exception() if state.outcome else "unknown",
            state.attempt_number + 1,
            attempts,
        )

    once = client.with_options(max_retries=0)  # this loop is the only one (retry_policy)
    async for attempt in retrying(
        attempts, retry_on=is_retryable_download_error, multiplier=0.2, longest=5, before_sleep=_log_retry
    ):
        with attempt:
            staged, sha256 = await _stream_to_staging(once, meta, sink.staging_dir)
    try:
        path = await sink.commit(staged, name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
    await sink.write_record(
        OutputRecord(file_id=meta.id, name=name, size_bytes=meta.size_bytes, sha256=sha256)
    )
    return OutputFile(
        file_id=meta.id, filename=meta.filename, path=path, size_bytes=meta.size_bytes, sha256=sha256
    )


async def acollect_session_outputs(
    client: anthropic.AsyncAnthropic,
    session_id: str,
    destination: str | os.PathLike[str] | OutputSink,
    *,
    exclude_file_ids: Sequence[str] = (),
    listing_timeout: float = 10.0,
    expected_count: int | None = None,
    turn_ended_at: datetime | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    roots: Sequence[Path] | None = None,
) -> list[OutputFile]:
    """List (once settled), download and verify the output files of a turn into ``destination``.

    Args:
        client: The async SDK client.
        session_id: The session (``sesn_...``).
        destination: A local folder, or an output sink (a Prefect filesystem block's, see
            :func:`blocks.filesystem_sink.output_destination`).
        exclude_file_ids: Ids never to collect (the uploaded inputs, earlier turns' outputs).
        listing_timeout: Longest wait for ``expected_count`` files, in seconds.
        expected_count: Wait until at least this many outputs are listed.
        turn_ended_at: When the turn ended (the indexing window counts from it; now when None).
        logger: Where to log progress.
        roots: Output roots a folder ``destination`` must be inside (resolved; default
            ``MANAGED_AGENTS_OUTPUT_ROOTS``, see :mod:`managed_agents_core.roots`).

    Returns:
        One ``OutputFile`` per output, oldest first; ``skipped`` marks identical copies kept and
        ``arrived_late`` the files the service listed only after the turn had ended.
    """
    listing = await list_session_outputs(
        client,
        session_id,
        exclude_file_ids=exclude_file_ids,
        listing_timeout=listing_timeout,
        expected_count=expected_count,
        turn_ended_at=turn_ended_at,
    )
    files = listing.files
    names = plan_output_names(ServerFile(f.id, f.filename, f.created_at.isoformat()) for f in files)
    ordered = sorted(files, key=lambda f: (f.created_at.isoformat(), f.id))
    sink = open_sink(destination, roots)
    limit = asyncio.Semaphore(MAX_PARALLEL_DOWNLOADS)

    async def one(meta: BetaFileMetadata) -> OutputFile | None:
        if meta.downloadable is False:
            (logger or _log).warning("Output %s (%s) is not downloadable; skipped", meta.filename, meta.id)
            return None
        async with limit:
            out = await download_output(client, meta, names[meta.id], sink, logger=logger)
        return out.model_copy(update={"arrived_late": meta.id in listing.late_ids})

    try:
        async with asyncio.TaskGroup() as group:
            jobs = [group.create_task(one(meta)) for meta in ordered]
    except BaseExceptionGroup as group_error:
        # Surface the first real error (typed) rather than the group wrapper.
        raise group_error.exceptions[0] from group_error
    finally:
        await sink.aclose()
    return [out for job in jobs if (out := job.result()) is not None]
