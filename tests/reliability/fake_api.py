"""A deliberately broken Managed Agents API, for server answers the emulator never gives.

The emulator only emits valid events (its contract tests prove it), so malformed frames and
error frames can only come from a stand-in: this tiny stdlib HTTP server serves one session's
event endpoints with whatever SSE frames a test hands it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

SESSION_ID = "sesn_011CFakeBrokenServer000"


def frame(event: str, data: str) -> bytes:
    """One SSE frame."""
    return f"event: {event}\ndata: {data}\n\n".encode()


def event_json(kind: str, index: int, **fields: Any) -> str:
    """A well-formed event of ``kind`` as JSON."""
    return json.dumps(
        {"type": kind, "id": f"sevt_fake{index:04d}", "processed_at": "2026-01-01T00:00:00Z", **fields}
    )


IDLE = event_json("session.status_idle", 999, stop_reason={"type": "end_turn"})


class BrokenApi:
    """Serve ``frames`` on the stream and ``history`` on ``events.list`` for :data:`SESSION_ID`.

    Args:
        frames: Raw SSE bytes sent on every stream connection, then the connection closes.
        history: Event dicts ``events.list`` returns (as one page).
    """

    def __init__(self, frames: bytes, history: list[dict[str, Any]] | None = None) -> None:
        self.frames = frames
        self.history = history or []
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                api.requests.append(f"GET {self.path}")
                if self.path.startswith(f"/v1/sessions/{SESSION_ID}/events/stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(api.frames)
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path.startswith(f"/v1/sessions/{SESSION_ID}/events"):
                    self._json({"data": api.history, "next_page": None})
                elif self.path.startswith(f"/v1/sessions/{SESSION_ID}"):
                    self._json({"id": SESSION_ID, "type": "session", "status": "idle"})
                else:
                    self._json({"type": "error", "error": {"type": "not_found_error", "message": "no"}}, 404)

            def do_POST(self) -> None:
                api.requests.append(f"POST {self.path}")
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                echoed = [
                    {**e, "id": f"sevt_sent{i}", "processed_at": None}
                    for i, e in enumerate(body.get("events", []))
                ]
                self._json({"data": echoed})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for the SDK."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BrokenApi:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
