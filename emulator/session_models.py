"""Request bodies of the session endpoints: user events and resource parameters.

Unknown fields are rejected (400), like the real API does for misspelt parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_MESSAGE_BLOCKS = frozenset({"text", "image", "document", "redacted"})
_RESULT_BLOCKS = frozenset({"text", "image", "document", "search_result"})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_blocks(blocks: list[dict[str, Any]], allowed: frozenset[str]) -> list[dict[str, Any]]:
    for block in blocks:
        kind = block.get("type")
        if kind not in allowed:
            raise ValueError(f"content block type {kind!r} is not one of {sorted(allowed)}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise ValueError("a text block needs a string 'text'")
        if kind in ("image", "document") and not isinstance(block.get("source"), dict):
            raise ValueError(f"a {kind} block needs a 'source' object")
    return blocks


class UserMessageParams(_Body):
    """``user.message``."""

    type: Literal["user.message"]
    content: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("content")
    @classmethod
    def _blocks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _check_blocks(value, _MESSAGE_BLOCKS)


class UserInterruptParams(_Body):
    """``user.interrupt``."""

    type: Literal["user.interrupt"]
    session_thread_id: str | None = None


class UserToolConfirmationParams(_Body):
    """``user.tool_confirmation`` (``tool_use_id`` is the ``agent.tool_use`` event id)."""

    type: Literal["user.tool_confirmation"]
    tool_use_id: str
    result: Literal["allow", "deny"]
    deny_message: str | None = None


class _ToolResultBody(_Body):
    """What both tool-result events carry: result content blocks and an error flag."""

    content: list[dict[str, Any]] | None = None
    is_error: bool | None = None

    @field_validator("content")
    @classmethod
    def _blocks(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else _check_blocks(value, _RESULT_BLOCKS)


class UserCustomToolResultParams(_ToolResultBody):
    """``user.custom_tool_result``."""

    type: Literal["user.custom_tool_result"]
    custom_tool_use_id: str


class UserToolResultParams(_ToolResultBody):
    """``user.tool_result`` (self-hosted environments)."""

    type: Literal["user.tool_result"]
    tool_use_id: str


class TextRubric(_Body):
    """``{"type": "text", "content"}``."""

    type: Literal["text"]
    content: str


class FileRubric(_Body):
    """``{"type": "file", "file_id"}``."""

    type: Literal["file"]
    file_id: str


class UserDefineOutcomeParams(_Body):
    """``user.define_outcome``."""

    type: Literal["user.define_outcome"]
    description: str = Field(min_length=1)
    rubric: Annotated[TextRubric | FileRubric, Field(discriminator="type")]
    max_iterations: int | None = Field(default=None, ge=1, le=20)


UserEventParams = Annotated[
    UserMessageParams
    | UserInterruptParams
    | UserToolConfirmationParams
    | UserCustomToolResultParams
    | UserToolResultParams
    | UserDefineOutcomeParams,
    Field(discriminator="type"),
]
"""Any event a client may send."""

InitialEventParams = Annotated[UserMessageParams | UserDefineOutcomeParams, Field(discriminator="type")]
"""Events accepted as ``initial_events`` at session create."""


class SendEventsBody(_Body):
    """``POST /v1/sessions/{id}/events``."""

    events: list[UserEventParams] = Field(min_length=1)


def event_dict(params: BaseModel) -> dict[str, Any]:
    """The sent event as the echo carries it (fields the client set, plus ``type``)."""
    data: dict[str, Any] = params.model_dump(exclude_unset=True, mode="json")
    return data


class FileResourceParams(_Body):
    """``{"type": "file", "file_id", "mount_path"?}``."""

    type: Literal["file"]
    file_id: str
    mount_path: str | None = None


class BranchCheckout(_Body):
    """``{"type": "branch", "name"}``."""

    type: Literal["branch"]
    name: str


class CommitCheckout(_Body):
    """``{"type": "commit", "sha"}``."""

    type: Literal["commit"]
    sha: str


class GitHubRepositoryParams(_Body):
    """``{"type": "github_repository", "url", ...}``; the token is stored, never echoed."""

    type: Literal["github_repository"]
    url: str = Field(min_length=1)
    authorization_token: str | None = None
    mount_path: str | None = None
    checkout: Annotated[BranchCheckout | CommitCheckout, Field(discriminator="type")] | None = None


class MemoryStoreParams(_Body):
    """``{"type": "memory_store", "memory_store_id", "access"?, "instructions"?}``."""

    type: Literal["memory_store"]
    memory_store_id: str
    access: Literal["read_write", "read_only"] | None = None
    instructions: str | None = Field(default=None, max_length=4096)


ResourceParams = Annotated[
    FileResourceParams | GitHubRepositoryParams | MemoryStoreParams, Field(discriminator="type")
]
"""A resource given at session create."""
