"""Our Blocks build their JSON schema once per class instead of once per field of every dump.

Prefect's ``Block`` serializer, when it dumps a block with its secrets (as ``Block.save`` does),
asks ``model_json_schema()`` for the secret fields once per field: about 95 ms of CPU for a
``ManagedAgent``, paid again at every dump. A class's schema depends on the class and the arguments only, so it is built once and a
copy is handed out (callers may change what they get).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


class CachedJsonSchema(BaseModel):
    """Mixin for a Block (put it first among the bases): ``model_json_schema`` built once per class."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The class's JSON schema (see ``pydantic.BaseModel.model_json_schema``), built once."""
        key = (cls, args, tuple(sorted(kwargs.items())))
        schema = _SCHEMAS.get(key)
        if schema is None:
            schema = _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(schema)
