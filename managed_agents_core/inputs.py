"""What a session run takes in: local input files and memory-store attachments.

The models are usable as flow parameters (the Prefect UI form shows their descriptions). The
``check_*`` functions turn every problem into a typed :class:`~managed_agents_core.exceptions.ConfigurationError`
subclass before anything is uploaded or created remotely.

Default mount path (the references disagree; decided here): an input file without ``mount_path``
is mounted read-only at ``/mnt/session/uploads/<local file name>``. That is the SDK's own upload
folder, outside the agent's working directory ``/workspace``, but named after the file (not its
id) so a prompt can refer to it. Two inputs that end up at the same mount path are an error.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from .exceptions import InputFileError, MemoryStoreConfigError
from .roots import check_inside_roots, input_roots

DEFAULT_MOUNT_DIR = "/mnt/session/uploads"
"""Folder where inputs without an explicit ``mount_path`` are mounted."""

MAX_MEMORY_STORES = 8
"""At most this many memory stores per session (API limit)."""

MAX_INSTRUCTIONS_CHARS = 4096
"""Longest per-attachment ``instructions`` the API accepts."""

MEMORY_STORE_ID_PREFIX = "memstore_"

HASH_CHUNK_BYTES = 1 << 20


def _check_mount_path(value: str) -> str:
    if "\x00" in value:
        raise ValueError("mount_path must not contain a NUL character.")
    path = PurePosixPath(value)
    if not path.is_absolute():
        raise ValueError(f"mount_path must be an absolute path (starting with '/'), got {value!r}.")
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"mount_path must not contain '.' or '..' segments, got {value!r}.")
    if value.endswith("/"):
        raise ValueError(f"mount_path must name a file, not a folder, got {value!r}.")
    return value


class InputFile(BaseModel):
    """A local file to upload and mount into the session (read-only)."""

    path: str = Field(min_length=1, description="Local path of the file to upload.")
    mount_path: str | None = Field(
        default=None,
        description="Absolute path where the agent sees the file; default /mnt/session/uploads/<file name>.",
    )

    @field_validator("mount_path")
    @classmethod
    def _absolute_mount_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_mount_path(value)

    @classmethod
    def coerce(cls, item: InputFile | str | os.PathLike[str] | Mapping[str, Any]) -> InputFile:
        """Return ``item`` as an ``InputFile`` (a plain path is accepted too).

        Raises:
            InputFileError: The item is not a valid input file description.
        """
        if isinstance(item, InputFile):
            return item
        raw: Any = {"path": os.fspath(item)} if isinstance(item, str | os.PathLike) else item
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise InputFileError(f"Invalid input file {raw!r}: {problems}") from None


class MemoryStoreAttachment(BaseModel):
    """A memory store to attach to the session, by id or by exact name."""

    store: str = Field(
        min_length=1,
        max_length=255,
        description="Memory store id (memstore_...) or its exact name.",
    )
    access: Literal["read_write", "read_only"] = Field(
        default="read_write",
        description="read_write lets the agent change memories; read_only is enforced by the service.",
    )
    instructions: str | None = Field(
        default=None,
        description=f"Instructions shown to the agent for this store (at most {MAX_INSTRUCTIONS_CHARS} characters).",
    )
    create_if_missing: bool = Field(
        default=False,
        description="Create a store with this name when none exists (only for names, not ids).",
    )
    description: str | None = Field(
        default=None,
        max_length=1024,
        description="Description of a store created by create_if_missing.",
    )

    @field_validator("instructions")
    @classmethod
    def _instructions_fit(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_INSTRUCTIONS_CHARS:
            raise ValueError(
                f"instructions are {len(value)} characters long; the limit is {MAX_INSTRUCTIONS_CHARS}."
            )
        return value

    @property
    def is_id(self) -> bool:
        """True when ``store`` is a memory store id rather than a name."""
        return self.store.startswith(MEMORY_STORE_ID_PREFIX)

    @classmethod
    def coerce(cls, item: MemoryStoreAttachment | str | Mapping[str, Any]) -> MemoryStoreAttachment:
        """Return ``item`` as an attachment (a plain id or name is accepted too).

        Raises:
            MemoryStoreConfigError: The item is not a valid attachment.
        """
        if isinstance(item, MemoryStoreAttachment):
            return item
        try:
            return cls(store=item) if isinstance(item, str) else cls.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            raise MemoryStoreConfigError(f"Invalid memory store attachment: {problems}") from None


class UploadedFile(BaseModel):
    """An input file that is in the Files API, ready to mount."""

    file_id: str = Field(description="Id of the uploaded file (file_...).")
    filename: str = Field(description="Local file name.")
    sha256: str = Field(description="Lowercase hex SHA-256 of the content.")
    size_bytes: int = Field(description="Size in bytes.")
    mount_path: str = Field(description="Absolute path where the session mounts the file.")
    reused: bool = Field(description="True when an earlier upload of the same content was reused.")

    def resource_param(self) -> dict[str, str]:
        """The ``{"type": "file", ...}`` session resource param that mounts this file."""
        return {"type": "file", "file_id": self.file_id, "mount_path": self.mount_path}


@dataclass(frozen=True)
class LocalInput:
    """An input file checked on disk: where it is and where it will be mounted."""

    path: Path
    filename: str
    mount_path: str


def check_input_files(
    files: Sequence[InputFile | str | os.PathLike[str] | Mapping[str, Any]],
    roots: Sequence[Path] | None = None,
) -> list[LocalInput]:
    """Check that every input lies inside the input roots, exists, is a regular file, and has a
    unique absolute mount path.

    Args:
        files: Input files as models, plain paths or dicts.
        roots: The input roots in force, resolved (default: ``MANAGED_AGENTS_INPUT_ROOTS``,
            see :mod:`managed_agents_core.roots`).

    Returns:
        The checked inputs, in order, with their resolved paths.

    Raises:
        PathOutsideRootsError: A path starts with ``~`` or resolves (after symlinks) outside
            every input root; nothing is read.
        InputFileError: A file is missing, is a directory or is unreadable, a ``mount_path`` is
            not absolute, or two inputs share a mount path.
    """
    allowed = input_roots() if roots is None else list(roots)
    specs = [InputFile.coerce(item) for item in files]
    # Every path is checked against the roots before any file is looked at.
    resolved = [check_inside_roots(spec.path, allowed, kind="input", what="input file") for spec in specs]
    checked: list[LocalInput] = []
    seen: dict[str, Path] = {}
    for spec, path in zip(specs, resolved, strict=True):
        if not path.exists():
            raise InputFileError(f"Input file {spec.path!r} does not exist.")
        if path.is_dir():
            raise InputFileError(f"Input {spec.path!r} is a directory; pass the files in it one by one.")
        if not path.is_file():
            raise InputFileError(f"Input {spec.path!r} is not a regular file.")
        if not os.access(path, os.R_OK):
            raise InputFileError(f"Input file {spec.path!r} is not readable.")
        filename = unicodedata.normalize("NFC", Path(spec.path).name)  # the name given, not a link target
        mount = spec.mount_path or f"{DEFAULT_MOUNT_DIR}/{filename}"
        if mount in seen:
            raise InputFileError(
                f"Inputs {str(seen[mount])!r} and {spec.path!r} would both be mounted at {mount!r}; "
                "give one of them another mount_path."
            )
        seen[mount] = path
        checked.append(LocalInput(path=path, filename=filename, mount_path=mount))
    return checked


def check_memory_attachments(
    attachments: Sequence[MemoryStoreAttachment | str | Mapping[str, Any]],
) -> list[MemoryStoreAttachment]:
    """Check the attachments against the API's limits before anything is resolved.

    Args:
        attachments: Attachments as models, plain ids or names, or dicts.

    Returns:
        The attachments as models, in order.

    Raises:
        MemoryStoreConfigError: More than 8 attachments, the same store twice, instructions
            too long, or ``create_if_missing`` with an id.
    """
    checked = [MemoryStoreAttachment.coerce(a) for a in attachments]
    if len(checked) > MAX_MEMORY_STORES:
        raise MemoryStoreConfigError(
            f"{len(checked)} memory stores requested; a session takes at most {MAX_MEMORY_STORES}."
        )
    refs = [a.store for a in checked]
    duplicates = sorted({r for r in refs if refs.count(r) > 1})
    if duplicates:
        raise MemoryStoreConfigError(f"Memory store(s) {duplicates} are attached more than once.")
    for a in checked:
        if a.is_id and a.create_if_missing:
            raise MemoryStoreConfigError(
                f"create_if_missing needs a store name, but {a.store!r} is an id; pass the name instead."
            )
    return checked


def check_uploaded_size(path: str | os.PathLike[str], hashed: int, uploaded: int) -> None:
    """Check that the Files API received as many bytes as were hashed.

    Raises:
        InputFileError: The file changed while it was uploaded.
    """
    if uploaded != hashed:
        raise InputFileError(
            f"Input file {str(path)!r} changed while it was uploaded ({hashed} bytes hashed, "
            f"{uploaded} uploaded); run again once it is stable."
        )


def file_sha256(path: Path) -> tuple[str, int]:
    """Return the SHA-256 (lowercase hex) and size of a file, read in 1 MiB chunks.

    Args:
        path: The file.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
