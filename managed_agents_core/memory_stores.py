"""Memory-store attachments resolved into session resource params (by id or exact name).

* By id (``memstore_...``): ``memory_stores.retrieve``; unknown → ``MemoryStoreNotFoundError``.
* By name: page through ``memory_stores.list`` (archived stores are not listed) for an exact,
  case-sensitive match; more than one → ``AmbiguousMemoryStoreError`` naming the ids to pick
  from; none → create it when ``create_if_missing``, otherwise ``MemoryStoreNotFoundError``
  (or ``MemoryStoreArchivedError`` when only archived stores have that name).
* An archived store → ``MemoryStoreArchivedError`` (the API refuses to attach it).

Creating is not idempotent: it goes through :func:`~managed_agents_core.send_once.send_once`,
which looks the name up again before another attempt, so a create that was committed but whose
answer was lost does not make a second store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic
from anthropic import omit
from anthropic.types.beta import BetaManagedAgentsMemoryStore

from .exceptions import (
    AmbiguousMemoryStoreError,
    MemoryStoreArchivedError,
    MemoryStoreConfigError,
    MemoryStoreNotFoundError,
)
from .inputs import MemoryStoreAttachment, check_memory_attachments
from .send_once import send_once

logger = logging.getLogger(__name__)

CREATE_ATTEMPTS = 3


async def stores_named(
    client: anthropic.AsyncAnthropic, name: str, *, include_archived: bool = False
) -> list[BetaManagedAgentsMemoryStore]:
    """Return every memory store whose name is exactly ``name`` (paging through the list)."""
    return [
        store
        async for store in client.beta.memory_stores.list(limit=100, include_archived=include_archived)
        if store.name == name and (include_archived or store.archived_at is None)
    ]


async def _create_store(client: anthropic.AsyncAnthropic, attachment: MemoryStoreAttachment) -> str:
    once = client.with_options(max_retries=0)

    async def create() -> str:
        created = await once.beta.memory_stores.create(
            name=attachment.store,
            description=attachment.description if attachment.description else omit,
        )
        return created.id

    async def find() -> str | None:
        committed = await stores_named(client, attachment.store)
        return committed[0].id if committed else None

    return await send_once(create, find, attempts=CREATE_ATTEMPTS)


async def resolve_memory_store_id(client: anthropic.AsyncAnthropic, attachment: MemoryStoreAttachment) -> str:
    """Return the id of the store an attachment names (creating it if asked and missing).

    Raises:
        MemoryStoreNotFoundError: No such store (and no ``create_if_missing``).
        AmbiguousMemoryStoreError: Several stores have that name.
        MemoryStoreArchivedError: The store is archived.
    """
    ref = attachment.store
    if attachment.is_id:
        try:
            store = await client.beta.memory_stores.retrieve(ref)
        except anthropic.NotFoundError:
            raise MemoryStoreNotFoundError(f"Memory store {ref!r} does not exist.") from None
        if store.archived_at is not None:
            raise MemoryStoreArchivedError(
                f"Memory store {ref!r} ({store.name!r}) is archived and cannot be attached."
            )
        return store.id
    matches = await stores_named(client, ref)
    if len(matches) > 1:
        ids = ", ".join(sorted(s.id for s in matches))
        raise AmbiguousMemoryStoreError(
            f"{len(matches)} memory stores are named {ref!r} ({ids}); attach one by its id instead."
        )
    if matches:
        return matches[0].id
    if attachment.create_if_missing:
        store_id = await _create_store(client, attachment)
        logger.info("Created memory store %r: %s", ref, store_id)
        return store_id
    archived = await stores_named(client, ref, include_archived=True)
    if archived:
        raise MemoryStoreArchivedError(
            f"Memory store {ref!r} ({archived[0].id}) is archived and cannot be attached; "
            "unarchiving is not possible, so create a new store or use another name."
        )
    raise MemoryStoreNotFoundError(
        f"No memory store is named {ref!r}; create it, or set create_if_missing=True on the attachment."
    )


def memory_store_resource(store_id: str, attachment: MemoryStoreAttachment) -> dict[str, str]:
    """The ``{"type": "memory_store", ...}`` session resource param of an attachment."""
    param = {"type": "memory_store", "memory_store_id": store_id, "access": attachment.access}
    if attachment.instructions:
        param["instructions"] = attachment.instructions
    return param


async def aresolve_memory_resources(
    client: anthropic.AsyncAnthropic,
    attachments: Sequence[MemoryStoreAttachment | str | Mapping[str, Any]],
    *,
    log: logging.Logger | logging.LoggerAdapter[Any] = logger,
) -> list[dict[str, str]]:
    """Resolve memory-store attachments (ids or names) into session resource params.

    Args:
        client: The async SDK client.
        attachments: Stores to attach, as models, plain ids or names, or dicts.
        log: Where to say which stores were attached.

    Returns:
        ``[{"type": "memory_store", "memory_store_id", "access", "instructions"?}, ...]`` in order.

    Raises:
        MemoryStoreConfigError: More than 8 stores, one store twice, instructions too long.
        MemoryStoreNotFoundError: A store does not exist.
        AmbiguousMemoryStoreError: A name matches several stores.
        MemoryStoreArchivedError: A store is archived.
    """
    checked = check_memory_attachments(attachments)
    resources: list[dict[str, str]] = []
    for attachment in checked:
        store_id = await resolve_memory_store_id(client, attachment)
        if any(r["memory_store_id"] == store_id for r in resources):
            raise MemoryStoreConfigError(
                f"Memory store {attachment.store!r} resolves to {store_id}, which is already attached."
            )
        resources.append(memory_store_resource(store_id, attachment))
    if resources:
        log.info(
            "Memory stores: %s",
            ", ".join(f"{r['memory_store_id']} ({r['access']})" for r in resources),
        )
    return resources
