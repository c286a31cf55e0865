"""Environments endpoints through the real SDK, bodies validated strictly with the SDK's models."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.beta import BetaEnvironment, BetaEnvironmentDeleteResponse
from anthropic.types.beta.beta_environment_archived_error import BetaEnvironmentArchivedError
from anthropic.types.beta.beta_invalid_config_type_change_error import BetaInvalidConfigTypeChangeError

from tests.contract.strict import body_of, strict

EMPTY_PACKAGES = {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": []}


def test_create_fills_cloud_defaults(client: anthropic.Anthropic) -> None:
    raw = client.beta.environments.with_raw_response.create(
        name="prefect-env", config={"type": "cloud", "networking": {"type": "unrestricted"}}
    )
    body = body_of(raw)
    env = strict(BetaEnvironment, body)
    assert env.id.startswith("env_") and env.type == "environment"
    assert body["config"] == {
        "type": "cloud",
        "networking": {"type": "unrestricted"},
        "packages": EMPTY_PACKAGES,
    }
    assert env.description is None and env.metadata == {} and env.scope == "organization"
    assert env.archived_at is None
    bare = client.beta.environments.create(name="bare")
    assert bare.config.type == "cloud" and bare.config.networking.type == "unrestricted"


def test_limited_networking_defaults_and_packages_rule(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(
        name="limited",
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["api.x.com"]}},
    )
    assert env.config.type == "cloud"
    net = env.config.networking
    assert net.type == "limited"
    assert (net.allowed_hosts, net.allow_mcp_servers, net.allow_package_managers) == (
        ["api.x.com"],
        False,
        False,
    )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.create(
            name="bad",
            config={"type": "cloud", "networking": {"type": "limited"}, "packages": {"pip": ["pandas"]}},
        )


def test_unique_name_conflict(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(name="dup")
    with pytest.raises(anthropic.ConflictError):
        client.beta.environments.create(name="dup")
    client.beta.environments.archive(env.id)
    assert client.beta.environments.create(name="dup").name == "dup"


def test_update_semantics(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(
        name="upd",
        description="first",
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["a.com"], "allow_package_managers": True},
            "packages": {"pip": ["pandas"]},
        },
        metadata={"a": "1", "b": "2", "c": "3"},
    )
    raw = client.beta.environments.with_raw_response.update(
        env.id,
        config={"type": "cloud", "packages": {"npm": ["left-pad"]}},
        metadata={"a": None, "b": "", "d": "4"},
        description=None,
    )
    updated = strict(BetaEnvironment, body_of(raw))
    assert updated.metadata == {"c": "3", "d": "4"}
    assert updated.description is None
    assert updated.config.type == "cloud"
    assert updated.config.networking.type == "limited"
    assert updated.config.networking.allowed_hosts == ["a.com"]
    assert updated.config.packages.pip == ["pandas"] and updated.config.packages.npm == ["left-pad"]
    with pytest.raises(BetaInvalidConfigTypeChangeError) as info:
        client.beta.environments.update(env.id, config={"type": "self_hosted"})
    assert info.value.error_code == "invalid_config_type_change"


def test_archived_update_and_delete(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(name="gone")
    archived = strict(BetaEnvironment, body_of(client.beta.environments.with_raw_response.archive(env.id)))
    assert archived.archived_at is not None
    with pytest.raises(BetaEnvironmentArchivedError):
        client.beta.environments.update(env.id, name="renamed")
    deleted = strict(
        BetaEnvironmentDeleteResponse, body_of(client.beta.environments.with_raw_response.delete(env.id))
    )
    assert (deleted.id, deleted.type) == (env.id, "environment_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.retrieve(env.id)


def test_list_and_pagination(client: anthropic.Anthropic) -> None:
    made = [client.beta.environments.create(name=f"env-{i}") for i in range(3)]
    client.beta.environments.archive(made[0].id)
    raw = client.beta.environments.with_raw_response.list(limit=1)
    body = body_of(raw)
    assert set(body) == {"data", "next_page"}
    for item in body["data"]:
        strict(BetaEnvironment, item)
    assert [e.id for e in client.beta.environments.list(limit=1)] == [made[2].id, made[1].id]
    assert len(list(client.beta.environments.list(include_archived=True))) == 3


def test_self_hosted(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(name="sh", config={"type": "self_hosted"})
    assert env.config.type == "self_hosted"


async def test_async_environment_roundtrip(async_client: anthropic.AsyncAnthropic) -> None:
    raw = await async_client.beta.environments.with_raw_response.create(name="async-env", metadata={"k": "v"})
    env = strict(BetaEnvironment, body_of(raw))
    fetched = await async_client.beta.environments.retrieve(env.id)
    assert fetched.id == env.id and fetched.metadata == {"k": "v"}
    renamed = await async_client.beta.environments.update(env.id, name="async-env-2")
    assert renamed.name == "async-env-2"
    assert [e.id async for e in async_client.beta.environments.list()] == [env.id]
    deleted = await async_client.beta.environments.delete(env.id)
    assert deleted.type == "environment_deleted"
