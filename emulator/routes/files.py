"""Files: multipart upload, metadata, list, streamed download, delete (§10).

The upload body is parsed as it arrives (``python_multipart``) and the ``file`` part is written
straight to ``blob_dir``, so neither upload nor download ever holds a whole file in memory.
Lists are newest first; a file whose ``listable_after`` lies ahead is hidden (see
:mod:`emulator.blobs` for the other decisions).
"""

from __future__ import annotations

import mimetypes
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..blobs import (
    BlobWriter,
    create_file_from_writer,
    delete_file,
    get_file,
    is_listable,
    iter_content,
    public_file,
)
from ..errors import ApiError
from ..ids import format_ts, parse_ts
from ..runtime import Emulator, EmulatorDep

router = APIRouter(prefix="/v1")

MIN_EXPIRY = 3600
MAX_EXPIRY = 7_776_000
MAX_IDS = 100
_MAX_FIELD_BYTES = 1024


class _UploadParser:
    """Callbacks for ``MultipartParser``: the ``file`` part goes to a :class:`BlobWriter`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.writer: BlobWriter | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.fields: dict[str, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: str | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._part = None

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode()
        self._part = name
        if name == "file":
            if self.writer is not None:
                raise ApiError(400, "send exactly one 'file' part.")
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            content_type = self._headers.get(b"content-type", b"").decode("latin-1").strip()
            self.content_type = content_type or None
            self.writer = BlobWriter(self.emulator)
        else:
            self.fields[name] = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file" and self.writer is not None:
            self.writer.write(data[start:end])
        elif self._part is not None:
            value = self.fields[self._part] + data[start:end]
            if len(value) > _MAX_FIELD_BYTES:
                raise ApiError(400, f"form field {self._part!r} is too long.")
            self.fields[self._part] = value


def _stored_name(raw: str | None, mime_type: str) -> str:
    """Keep the last path component; an empty name becomes ``unnamed`` plus an extension."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        return "unnamed" + (mimetypes.guess_extension(mime_type) or "")
    return name


def _mime_of(content_type: str | None, filename: str | None) -> str:
    if content_type and content_type != "application/octet-stream":
        return content_type
    guessed, _ = mimetypes.guess_type(filename or "")
    return guessed or "application/octet-stream"


def _expiry(fields: dict[str, bytes]) -> str | None:
    raw = fields.get("expires_in_seconds")
    if raw is None:
        return None
    try:
        seconds = int(raw.decode().strip())
    except ValueError as exc:
        raise ApiError(400, "expires_in_seconds must be an integer.") from exc
    if not MIN_EXPIRY <= seconds <= MAX_EXPIRY:
        raise ApiError(400, f"expires_in_seconds must be between {MIN_EXPIRY} and {MAX_EXPIRY}.")
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))


@router.post("/files")
async def upload_file(request: Request, emulator: EmulatorDep) -> dict[str, Any]:
    """Store a multipart upload (``file`` part, optional ``expires_in_seconds``)."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise ApiError(400, "upload must be multipart/form-data with a 'file' part.")
    upload = _UploadParser(emulator)
    parser = MultipartParser(boundary, upload.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if upload.writer is None:
            raise ApiError(400, "missing the 'file' part.")
        expires_at = _expiry(upload.fields)
    except BaseException as exc:
        if upload.writer is not None:
            upload.writer.discard()
        if isinstance(exc, FormParserError):
            raise ApiError(400, f"malformed multipart body: {exc}") from exc
        raise
    mime_type = _mime_of(upload.content_type, upload.filename)
    return create_file_from_writer(
        emulator,
        upload.writer,
        filename=_stored_name(upload.filename, mime_type),
        mime_type=mime_type,
        downloadable=True,
        expires_at=expires_at,
    )


@router.get("/files")
async def list_files(
    request: Request,
    emulator: EmulatorDep,
    scope_id: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> dict[str, Any]:
    """List files, newest first; ``scope_id`` keeps a session's outputs, ``ids[]`` picks files."""
    ids = request.query_params.getlist("ids[]")
    if scope_id is not None and not scope_id.startswith("sesn_"):
        raise ApiError(400, f"scope_id must be a session id (sesn_...), got {scope_id!r}.")
    now = time.time()
    files = [m for m in reversed(emulator.store.files.values()) if is_listable(emulator, m, scope_id, now)]
    if ids:
        if limit is not None or page is not None:
            raise ApiError(400, "ids[] cannot be combined with page or limit.")
        wanted = set(ids)
        if len(wanted) > MAX_IDS:
            raise ApiError(400, f"ids[] takes at most {MAX_IDS} ids.")
        data = [public_file(m) for m in files if m["id"] in wanted]
        return _envelope(data, None)
    size = 20 if limit is None else limit
    if not 1 <= size <= 1000:
        raise ApiError(400, f"limit must be between 1 and 1000, got {size}.")
    start = _decode_page(page)
    chunk = [public_file(m) for m in files[start : start + size]]
    end = start + len(chunk)
    return _envelope(chunk, f"page_{end}" if end < len(files) else None)


def _decode_page(page: str | None) -> int:
    if page is None:
        return 0
    try:
        offset = int(page.removeprefix("page_"))
    except ValueError as exc:
        raise ApiError(400, f"invalid page cursor {page!r}.") from exc
    if not page.startswith("page_") or offset < 0:
        raise ApiError(400, f"invalid page cursor {page!r}.")
    return offset


def _envelope(data: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
    return {
        "data": data,
        "next_page": next_page,
        "has_more": next_page is not None,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return a file's metadata."""
    return public_file(get_file(emulator, file_id))


@router.get("/files/{file_id}/content")
async def download_file(file_id: str, emulator: EmulatorDep) -> StreamingResponse:
    """Stream a file's bytes with its MIME type and ``content-length``."""
    meta = get_file(emulator, file_id)
    if not meta.get("downloadable", True):
        raise ApiError(400, f"file {file_id!r} is not downloadable.", error_code="file_not_downloadable")
    expires_at = meta.get("expires_at")
    if expires_at is not None and parse_ts(expires_at) <= datetime.now(UTC):
        raise ApiError(404, f"file {file_id!r} has expired.", error_code="file_expired")
    return StreamingResponse(
        iter_content(emulator, meta),
        media_type=meta["mime_type"],
        headers={"content-length": str(meta["size_bytes"])},
    )


@router.delete("/files/{file_id}")
async def remove_file(file_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete a file and its content."""
    delete_file(emulator, file_id)
    return {"id": file_id, "type": "file_deleted"}


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register this module's routes (and any services it needs) on the app."""
    app.include_router(router)
