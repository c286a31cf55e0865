"""Our Blocks build their JSON schema once per class (blocks/schema_cache.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic.json_schema import GenerateJsonSchema

from blocks.agent import ManagedAgent
from blocks.credentials import AnthropicCredentials
from blocks.schema_cache import CachedJsonSchema


def agent() -> ManagedAgent:
    return ManagedAgent(
        credentials=AnthropicCredentials(api_key="sk-ant-unit", base_url="http://127.0.0.1:9"),
        agent_id="agent_1",
        version=1,
        environment_id="env_1",
        agent_name="unit",
    )


@pytest.mark.parametrize("block", [ManagedAgent, AnthropicCredentials])
def test_the_schema_is_prefects_and_a_caller_cannot_change_the_cached_one(block: type[Any]) -> None:
    uncached = super(CachedJsonSchema, block).model_json_schema()  # Prefect's Block, built afresh
    first = block.model_json_schema()
    assert first == uncached
    assert "secret_fields" in first and first["block_type_slug"] == block.get_block_type_slug()
    first["properties"].clear()
    first["secret_fields"].append("changed")
    assert block.model_json_schema() == uncached


def test_dumping_a_block_with_its_secrets_builds_no_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    block = agent()
    block.model_dump(context={"include_secrets": True})  # the class's schemas are built by now
    built: list[str] = []
    generate = GenerateJsonSchema.generate

    def counted(self: GenerateJsonSchema, *args: Any, **kwargs: Any) -> Any:
        built.append(type(self).__name__)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerateJsonSchema, "generate", counted)
    dumped = block.model_dump(context={"include_secrets": True})
    assert dumped["credentials"]["api_key"] == "sk-ant-unit"  # Prefect still renders the secret
    assert built == []  # Prefect's serializer asks for the schema once per field: all from the cache
