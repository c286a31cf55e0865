"""The output task: collect a session's output files (the session report lists them).

The download logic (streamed, verified, atomic, contained, cut downloads retried) is in
:mod:`managed_agents_core.outputs`; the task adds Prefect logging and retries on transient
failures. A task retry (or a flow retry) downloads nothing twice: files already written with
the same size and SHA-256 are reported with ``skipped=True``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.filesystems import WritableFileSystem
from prefect.logging import get_run_logger

from blocks.credentials import AnthropicCredentials
from blocks.filesystem_sink import output_destination
from managed_agents_core.output_sinks import OutputSink
from managed_agents_core.outputs import acollect_session_outputs
from managed_agents_core.results import OutputFile
from tasks.retry import TRANSIENT_RETRY_OPTIONS


@task(name="collect-outputs", **TRANSIENT_RETRY_OPTIONS)
async def collect_outputs(
    credentials: AnthropicCredentials,
    session_id: str,
    destination: str | os.PathLike[str] | OutputSink | WritableFileSystem,
    *,
    exclude_file_ids: Sequence[str] = (),
    listing_timeout: float = 10.0,
    expected_count: int | None = None,
    turn_ended_at: datetime | None = None,
    roots: Sequence[Path] | None = None,
) -> list[OutputFile]:
    """Download every output file of a session into a folder or a filesystem block.

    Lists ``files.list(scope_id=session_id)`` until the service's indexing has settled (see
    :func:`managed_agents_core.outputs.list_session_outputs`), drops the session's input copies and the ids
    in ``exclude_file_ids``, and streams each file to disk with bounded memory, checked against
    its metadata and written atomically. Server-supplied names are sanitized and can never
    leave ``destination`` (see :mod:`managed_agents_core.output_paths`).

    Args:
        credentials: The ``AnthropicCredentials`` block.
        session_id: The session whose outputs to collect (``sesn_...``).
        destination: A local folder, or a Prefect ``WritableFileSystem`` block.
        exclude_file_ids: File ids never to collect (the uploaded inputs, earlier turns' outputs).
        listing_timeout: Longest wait, in seconds, for ``expected_count`` outputs to be listed.
        expected_count: Wait until at least this many outputs are listed (fail otherwise).
        turn_ended_at: When the turn ended; the indexing window counts from it (now when None).
        roots: Output roots a folder ``destination`` must be inside (resolved; default
            ``MANAGED_AGENTS_OUTPUT_ROOTS``, see :mod:`managed_agents_core.roots`). An output never replaces a
            file the collector did not write (:class:`~managed_agents_core.exceptions.OutputOverwriteError`).

    Returns:
        One ``OutputFile`` (path, size, sha256, file id) per output, oldest first.
    """
    logger = get_run_logger()
    async with credentials.get_async_client() as client:
        outputs = await acollect_session_outputs(
            client,
            session_id,
            output_destination(destination),
            exclude_file_ids=exclude_file_ids,
            listing_timeout=listing_timeout,
            expected_count=expected_count,
            turn_ended_at=turn_ended_at,
            logger=logger,
            roots=roots,
        )
    late = [o.filename for o in outputs if o.arrived_late]
    if late:
        logger.info("Indexed after the turn ended (waited for): %s", ", ".join(late))
    fresh = sum(not o.skipped for o in outputs)
    logger.info(
        "Collected %d output file(s) of session %s (%d downloaded, %d already present)",
        len(outputs),
        session_id,
        fresh,
        len(outputs) - fresh,
    )
    return outputs
