"""Pure ASGI middleware: request ids, auth, beta headers and the request log.

Pure ASGI (not ``BaseHTTPMiddleware``) so SSE streams pass through unbuffered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError
from .ids import new_id
from .runtime import Emulator
from .state import RequestRecord

MANAGED_AGENTS_BETA = "managed-agents-2026-04-01"
MEMORY_BETA = "agent-memory-2026-07-22"
_MANAGED_PREFIXES = (
    "/v1/agents",
    "/v1/environments",
    "/v1/sessions",
    "/v1/vaults",
    "/v1/deployments",
    "/v1/deployment_runs",
)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def check_access(emulator: Emulator, scope: Scope) -> None:
    """Raise :class:`ApiError` when a ``/v1`` request lacks a valid key or its beta header."""
    headers = _headers(scope)
    key = headers.get("x-api-key", "").strip()
    auth = headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    if not key:
        raise ApiError(401, "Missing API key: send x-api-key or Authorization: Bearer.")
    if emulator.config.api_key is not None and key != emulator.config.api_key:
        raise ApiError(401, "Invalid API key.")
    betas = {b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()}
    path: str = scope["path"]
    if path.startswith(_MANAGED_PREFIXES) and MANAGED_AGENTS_BETA not in betas:
        raise ApiError(400, f"This endpoint requires the anthropic-beta header {MANAGED_AGENTS_BETA!r}.")
    if path.startswith("/v1/memory_stores") and not betas & {MEMORY_BETA, MANAGED_AGENTS_BETA}:
        raise ApiError(
            400,
            f"This endpoint requires the anthropic-beta header {MEMORY_BETA!r} or {MANAGED_AGENTS_BETA!r}.",
        )
    if path.startswith("/v1/files") and emulator.config.require_scope_beta:
        query = parse_qs(scope.get("query_string", b"").decode())
        if "scope_id" in query and MANAGED_AGENTS_BETA not in betas:
            raise ApiError(400, f"scope_id requires the anthropic-beta header {MANAGED_AGENTS_BETA!r}.")


class ApiMiddleware:
    """Assigns ``request-id``, enforces auth/beta on ``/v1`` and records every request."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        record = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            status=0,
        )
        if scope["path"].startswith("/v1/"):
            self.emulator.requests.append(record)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
                headers: list[Any] = list(message.get("headers", []))
                if not any(k.lower() == b"request-id" for k, _ in headers):
                    headers.append((b"request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if scope["path"].startswith("/v1/"):
            try:
                check_access(self.emulator, scope)
            except ApiError as exc:
                await exc.response(request_id)(scope, receive, send_wrapper)
                return
        scope["state"]["request_record"] = record
        await self.app(scope, receive, send_wrapper)
