"""Input-file tasks: upload with content-hash dedupe, and the session resources that mount them.

Dedupe uses Prefect's own caching, no home-made store: :func:`upload_file_content` is cached on
``(API base URL, SHA-256 of the content, file name)`` with a persisted result (the file id), so
an unchanged file is not uploaded again by a later flow run. Before a remembered id is reused,
:func:`upload_input_files` checks that the file still exists (``files.retrieve_metadata``) with
the same size; when it is gone (deleted, expired, or the key now points at another workspace,
where the id is unknown) the upload runs again with ``refresh_cache=True``, which also replaces
the cache record. Where cache records live follows Prefect's result storage settings
(``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` / ``PREFECT_DEFAULT_RESULT_STORAGE_BLOCK``); use shared
storage to dedupe across machines.

The API key is deliberately not part of the cache key (not even hashed): a different
workspace behind the same base URL is caught by the existence check instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anthropic
import anyio
from prefect import task
from prefect.client.schemas.objects import State
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger

from blocks.credentials import AnthropicCredentials
from managed_agents_core.inputs import (
    InputFile,
    LocalInput,
    UploadedFile,
    check_input_files,
    check_uploaded_size,
    file_sha256,
)
from tasks.retry import TRANSIENT_RETRY_OPTIONS

MAX_PARALLEL_UPLOADS = 4
"""Files hashed and uploaded at once."""


def upload_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key of an upload: the API base URL, the content's SHA-256 and the file name."""
    material = "\n".join((parameters["base_url"], parameters["content_sha256"], parameters["filename"]))
    return "managed-agents-upload-" + hashlib.sha256(material.encode()).hexdigest()


def _upload_blocking(credentials: AnthropicCredentials, path: str, filename: str) -> tuple[str, int]:
    mime_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    with credentials.get_client() as client, open(path, "rb") as fh:
        # A file object, not bytes: httpx streams the multipart body in 64 KiB chunks.
        meta = client.beta.files.upload(file=(filename, fh, mime_type))
    return meta.id, meta.size_bytes


@task(
    name="upload-file",
    cache_key_fn=upload_cache_key,
    persist_result=True,
    result_serializer="json",
    **TRANSIENT_RETRY_OPTIONS,
)
async def upload_file_content(
    credentials: AnthropicCredentials,
    path: str,
    filename: str,
    content_sha256: str,
    size_bytes: int,
    base_url: str,
) -> str:
    """Upload one file (cached: the same content at the same base URL is uploaded once).

    Args:
        credentials: The ``AnthropicCredentials`` block.
        path: Local path of the file.
        filename: Name to give the file in the Files API.
        content_sha256: SHA-256 of the content (part of the cache key).
        size_bytes: Size measured while hashing (checked against the upload).
        base_url: The API base URL (part of the cache key).

    Returns:
        The new file's id.

    Raises:
        InputFileError: The file changed while it was being uploaded.
    """
    file_id, uploaded = await anyio.to_thread.run_sync(_upload_blocking, credentials, path, filename)
    check_uploaded_size(path, size_bytes, uploaded)
    get_run_logger().info("Uploaded %s (%d bytes) as %s", filename, size_bytes, file_id)
    return file_id


async def remembered_file_usable(client: anthropic.AsyncAnthropic, file_id: str, size_bytes: int) -> bool:
    """True when a remembered upload still exists, has the expected size and has not expired."""
    try:
        meta = await client.beta.files.retrieve_metadata(file_id)
    except anthropic.NotFoundError:
        return False
    if meta.size_bytes != size_bytes:
        return False
    return meta.expires_at is None or meta.expires_at > datetime.now(UTC)


async def _upload_one(
    credentials: AnthropicCredentials, client: anthropic.AsyncAnthropic, item: LocalInput, base_url: str
) -> UploadedFile:
    logger = get_run_logger()
    sha256, size = await anyio.to_thread.run_sync(file_sha256, item.path)
    args = (credentials, str(item.path), item.filename, sha256, size, base_url)
    state = await cast("Awaitable[State[str]]", upload_file_content(*args, return_state=True))
    file_id = str(await state.aresult())
    reused = state.name == "Cached"
    if reused and not await remembered_file_usable(client, file_id, size):
        logger.info("Remembered upload %s of %s is gone; uploading it again", file_id, item.filename)
        file_id = str(await upload_file_content.with_options(refresh_cache=True)(*args))
        reused = False
    elif reused:
        logger.info("%s is unchanged; reusing %s", item.filename, file_id)
    return UploadedFile(
        file_id=file_id,
        filename=item.filename,
        sha256=sha256,
        size_bytes=size,
        mount_path=item.mount_path,
        reused=reused,
    )


@task(name="upload-input-files", **TRANSIENT_RETRY_OPTIONS)
async def upload_input_files(
    credentials: AnthropicCredentials,
    files: Sequence[InputFile | str | os.PathLike[str] | Mapping[str, Any]],
    roots: Sequence[Path] | None = None,
) -> list[UploadedFile]:
    """Upload the input files, skipping any whose unchanged content was uploaded before.

    Every file is checked first (inside the input roots, exists, regular file, absolute unique
    mount path), so a bad input fails before anything is uploaded. Files are hashed and
    uploaded by streaming.

    Args:
        credentials: The ``AnthropicCredentials`` block.
        files: Local files, as paths or ``InputFile`` (path and optional mount path).
        roots: The input roots in force, resolved (default: ``MANAGED_AGENTS_INPUT_ROOTS``; see
            :mod:`managed_agents_core.roots`).

    Returns:
        One ``UploadedFile`` per input, in order (``reused`` marks deduplicated ones).

    Raises:
        PathOutsideRootsError: An input is outside the input roots (or starts with ``~``).
        InputFileError: An input is missing, a directory, or has a bad or duplicate mount path.
    """
    inputs = check_input_files(files, roots)
    if not inputs:
        return []
    base_url = credentials.display_base_url()
    limit = asyncio.Semaphore(MAX_PARALLEL_UPLOADS)

    async def one(item: LocalInput) -> UploadedFile:
        async with limit:
            return await _upload_one(credentials, client, item, base_url)

    async with credentials.get_async_client() as client:
        uploaded = await asyncio.gather(*(one(item) for item in inputs))
    reused = sum(u.reused for u in uploaded)
    get_run_logger().info("Inputs ready: %d uploaded, %d reused", len(uploaded) - reused, reused)
    return list(uploaded)


def file_resources(uploaded: Sequence[UploadedFile]) -> list[dict[str, str]]:
    """Session resource params mounting the uploaded files.

    Args:
        uploaded: The result of :func:`upload_input_files`.

    Returns:
        ``[{"type": "file", "file_id": ..., "mount_path": ...}, ...]`` for ``sessions.create``.
    """
    return [u.resource_param() for u in uploaded]
