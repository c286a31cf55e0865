"""The API's error envelope, raised from route code as :class:`ApiError`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .ids import new_id

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    412: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """An error answered with the reference's envelope (§1.4).

    Args:
        status: HTTP status code.
        message: Human-readable ``error.message``.
        error_type: ``error.type``; derived from the status when omitted.
        error_code: Optional ``error.details.error_code`` (selects the SDK's specific class).
        extra: Extra keys merged into ``error`` (for example ``conflicting_memory_id``).
        should_retry: Sent as ``x-should-retry``. Deterministic conflicts send ``false`` so the
            SDK does not repeat them (it retries 409 by default).
        headers: Extra response headers (``retry-after`` on 429).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        extra: dict[str, Any] | None = None,
        should_retry: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or _TYPE_BY_STATUS.get(status, "api_error")
        self.error_code = error_code
        self.extra = extra or {}
        if should_retry is None and status in (400, 404, 409, 412, 413, 422):
            should_retry = False
        self.should_retry = should_retry
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        """Return the JSON envelope for this error."""
        error: dict[str, Any] = {"type": self.error_type, "message": self.message, **self.extra}
        if self.error_code is not None:
            error["details"] = {"error_code": self.error_code}
        return {"type": "error", "error": error, "request_id": request_id}

    def response(self, request_id: str) -> JSONResponse:
        """Return the full HTTP response for this error."""
        headers = {"request-id": request_id, **self.headers}
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return JSONResponse(self.body(request_id), status_code=self.status, headers=headers)


def not_found(kind: str, object_id: str) -> ApiError:
    """Return the 404 for an unknown id."""
    return ApiError(404, f"{kind} {object_id!r} not found.")


def request_id_of(request: Request) -> str:
    """Return the request id the middleware assigned (or a fresh one)."""
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else new_id("req")


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI handler for :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return exc.response(request_id_of(request))


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer Starlette's own errors (unknown route, wrong method) with the API envelope."""
    assert isinstance(exc, StarletteHTTPException)
    message = "Not found." if exc.status_code == 404 else str(exc.detail)
    return ApiError(exc.status_code, message).response(request_id_of(request))


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Turn FastAPI's 422 into the API's 400 ``invalid_request_error`` envelope."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return ApiError(400, "; ".join(parts) or "Invalid request.").response(request_id_of(request))
