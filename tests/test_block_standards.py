"""Every block exported by ``blocks`` passes Prefect's own block standard test suite (offline)."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites.blocks import BlockStandardTestSuite

import blocks

EXPORTED_BLOCKS = sorted(
    (obj for obj in vars(blocks).values() if isinstance(obj, type) and issubclass(obj, Block)),
    key=lambda b: b.__name__,
)


def test_every_block_is_exported() -> None:
    assert {b.__name__ for b in EXPORTED_BLOCKS} == {"AnthropicCredentials", "ManagedAgent"}


def test_block_type_slugs_are_fixed() -> None:
    assert blocks.AnthropicCredentials.get_block_type_slug() == "anthropic-credentials"
    assert blocks.ManagedAgent.get_block_type_slug() == "managed-agent"


@pytest.mark.parametrize("block", EXPORTED_BLOCKS, ids=lambda b: b.__name__)
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block: type[Block]) -> type[Block]:
        return block
