"""Memory-store task: resolve attachments (by id or exact name) into session resource params.

The rules (ids, exact names, archived stores, create once) are in
:mod:`managed_agents_core.memory_stores`; this task adds Prefect logging and retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from blocks.credentials import AnthropicCredentials
from managed_agents_core.inputs import MemoryStoreAttachment
from managed_agents_core.memory_stores import aresolve_memory_resources
from tasks.retry import TRANSIENT_RETRY_OPTIONS


@task(name="resolve-memory-stores", **TRANSIENT_RETRY_OPTIONS)
async def resolve_memory_stores(
    credentials: AnthropicCredentials,
    attachments: Sequence[MemoryStoreAttachment | str | Mapping[str, Any]],
) -> list[dict[str, str]]:
    """Resolve memory-store attachments (ids or names) into session resource params (see
    :func:`managed_agents_core.memory_stores.aresolve_memory_resources` for the rules and errors).

    Args:
        credentials: The ``AnthropicCredentials`` block.
        attachments: Stores to attach, as models, plain ids or names, or dicts.
    """
    async with credentials.get_async_client() as client:
        return await aresolve_memory_resources(client, attachments, log=get_run_logger())
