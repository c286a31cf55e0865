"""GitHub repositories a session mounts: the ``github_repository`` session resource.

A run names the repository (its ``https://github.com/<owner>/<repo>`` URL, a branch or a commit,
where to mount it); the token that lets the service clone a private one never comes from a
parameter: the block names a Prefect ``Secret`` block holding it, or the worker's environment
has ``GITHUB_TOKEN``. The service keeps the token to itself (the API never echoes it) and we
never log it, put it in a cache key, or in a Prefect parameter.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GITHUB_URL = re.compile(
    r"^https://github\.com/[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}?(?:\.git)?/?$"
)
"""``https://github.com/<owner>/<repo>`` (an optional ``.git``): nothing else gets the token."""

TOKEN_FIELD = "authorization_token"


class GitHubRepository(BaseModel):
    """A GitHub repository the service clones into the session's container.

    Args:
        url: ``https://github.com/<owner>/<repo>`` (``.git`` optional).
        branch: Check out this branch (default: the repository's default branch).
        commit: Check out this commit (a hex SHA); not with ``branch``.
        mount_path: Absolute path in the container (default: ``/workspace/<repo>``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="https://github.com/<owner>/<repo> (.git optional).")
    branch: str | None = Field(default=None, min_length=1, max_length=255, description="Branch to check out.")
    commit: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{7,40}$", description="Commit SHA to check out (not with branch)."
    )
    mount_path: str | None = Field(default=None, description="Absolute path in the container.")

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _github_url(cls, url: str) -> str:
        if not GITHUB_URL.match(url):
            raise ValueError(f"must be https://github.com/<owner>/<repo>, got {url!r}")
        return url

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or posixpath.normpath(path) != path.rstrip("/")):
            raise ValueError(f"must be an absolute path without '..' or '//', got {path!r}")
        return path

    @model_validator(mode="after")
    def _one_checkout(self) -> GitHubRepository:
        if self.branch and self.commit:
            raise ValueError("give a branch or a commit, not both")
        return self

    @classmethod
    def coerce(cls, value: GitHubRepository | str | Mapping[str, Any]) -> GitHubRepository:
        """A repository from its URL, a mapping of its fields, or itself."""
        return value if isinstance(value, GitHubRepository) else cls.model_validate(value)

    def resource_param(self, token: str | None) -> dict[str, Any]:
        """The ``github_repository`` resource of ``sessions.create`` (with the token, if any)."""
        param: dict[str, Any] = {"type": "github_repository", "url": self.url}
        if token:
            param[TOKEN_FIELD] = token
        if self.mount_path:
            param["mount_path"] = self.mount_path
        if self.branch:
            param["checkout"] = {"type": "branch", "name": self.branch}
        elif self.commit:
            param["checkout"] = {"type": "commit", "sha": self.commit}
        return param


def needs_token(resources: list[dict[str, Any]]) -> bool:
    """Whether any of ``resources`` is a repository (whose token is added at the create)."""
    return any(r.get("type") == "github_repository" for r in resources)


def with_token(resources: list[dict[str, Any]], token: str | None) -> list[dict[str, Any]]:
    """``resources`` as sent: each repository with the token (when there is one)."""
    if not token:
        return resources
    return [{**r, TOKEN_FIELD: token} if r.get("type") == "github_repository" else r for r in resources]
