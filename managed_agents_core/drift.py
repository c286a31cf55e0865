"""Was an agent version written by ``deploy_agent``, or edited outside it? Plain functions on snapshots.

``deploy_agent`` stamps every version it writes with the spec fingerprint in the agent's metadata.
Metadata updates are patches, so an edit made elsewhere keeps the stamp of the version it edited.
The version that *introduced* a fingerprint is therefore the trusted result of that spec: a later
version with the same stamp but different content was changed outside ``deploy_agent``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .diff import IGNORED_KEYS
from .keys import FINGERPRINT_KEY
from .spec import RESERVED_METADATA_KEYS


def fingerprint_of(snapshot: Mapping[str, Any]) -> str | None:
    """Return the spec fingerprint stamped on an agent snapshot, if any.

    Args:
        snapshot: An agent version as JSON.
    """
    value = (snapshot.get("metadata") or {}).get(FINGERPRINT_KEY)
    return str(value) if value else None


def agent_content(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """Return what an agent version *does*: its snapshot without ids, timestamps or our stamps.

    Args:
        snapshot: An agent version as JSON.
    """
    content = {k: v for k, v in snapshot.items() if k not in IGNORED_KEYS}
    content["metadata"] = {
        k: v for k, v in (snapshot.get("metadata") or {}).items() if k not in RESERVED_METADATA_KEYS
    }
    return content


def introducing_version(versions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Return the earliest version of the trailing run that carries the latest version's stamp.

    Args:
        versions: Every snapshot of one agent, oldest first (at least one).
    """
    latest = versions[-1]
    stamp = fingerprint_of(latest)
    start = len(versions) - 1
    while start > 0 and fingerprint_of(versions[start - 1]) == stamp:
        start -= 1
    return versions[start]


def edited_outside(versions: Sequence[Mapping[str, Any]]) -> bool:
    """Return True when the latest version is not exactly what ``deploy_agent`` wrote for its stamp.

    That is: it has no stamp, or its content differs from the version that introduced the stamp.

    Args:
        versions: Every snapshot of one agent, oldest first (at least one).
    """
    latest = versions[-1]
    if fingerprint_of(latest) is None:
        return True
    return agent_content(latest) != agent_content(introducing_version(versions))
