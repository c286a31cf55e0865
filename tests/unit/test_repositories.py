"""GitHub repository resources: only github.com URLs, one checkout, an absolute mount path; the
token is added only to repositories, only when there is one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from managed_agents_core.repositories import GitHubRepository, needs_token, with_token


def test_a_repository_becomes_its_resource_param() -> None:
    repo = GitHubRepository.coerce(
        {"url": "https://github.com/acme/app.git", "commit": "a1b2c3d", "mount_path": "/src"}
    )
    assert repo.resource_param(token=None) == {
        "type": "github_repository",
        "url": "https://github.com/acme/app.git",
        "mount_path": "/src",
        "checkout": {"type": "commit", "sha": "a1b2c3d"},
    }
    assert GitHubRepository.coerce("https://github.com/acme/app").resource_param(token=None) == {
        "type": "github_repository",
        "url": "https://github.com/acme/app",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://gitlab.com/acme/app", "github.com"),
        ({"url": "https://github.com/acme/app", "branch": "main", "commit": "a1b2c3d"}, "not both"),
        ({"url": "https://github.com/acme/app", "mount_path": "workspace/app"}, "absolute"),
        ({"url": "https://github.com/acme/app", "mount_path": "/workspace/../etc"}, "absolute"),
        ({"url": "https://github.com/acme/app", "token": "ghp_x"}, "Extra inputs"),
    ],
)
def test_bad_repositories_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GitHubRepository.coerce(value)  # type: ignore[arg-type]


def test_the_token_goes_only_to_repositories() -> None:
    resources = [{"type": "file", "file_id": "file_1"}, {"type": "github_repository", "url": "u"}]
    assert needs_token(resources) and not needs_token(resources[:1])
    assert with_token(resources, "ghp_t") == [resources[0], {**resources[1], "authorization_token": "ghp_t"}]
    assert with_token(resources, None) == resources
