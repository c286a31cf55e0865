"""Count the Prefect API requests and Prefect events a worker process makes.

Prefect's clients are ``httpx`` clients (the ``anthropic`` SDK uses ``httpx2``, so it is not
counted here); every attempt goes through ``httpx.AsyncClient.send`` / ``httpx.Client.send``,
wrapped once per process before the clock starts. Events are read from Prefect's own counter of
emitted events after its events worker has drained. Measurement only: nothing in the product
uses this.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

_counts = {"requests": 0}


def install() -> None:
    """Wrap httpx's send methods to count requests to ``PREFECT_API_URL`` (idempotent)."""
    if getattr(httpx.AsyncClient.send, "_bench_counted", False):
        return
    api = os.environ.get("PREFECT_API_URL", "")
    async_send, sync_send = httpx.AsyncClient.send, httpx.Client.send

    async def counted_async(
        self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any
    ) -> Any:
        if api and str(request.url).startswith(api):
            _counts["requests"] += 1
        return await async_send(self, request, *args, **kwargs)

    def counted_sync(self: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        if api and str(request.url).startswith(api):
            _counts["requests"] += 1
        return sync_send(self, request, *args, **kwargs)

    counted_async._bench_counted = True  # type: ignore[attr-defined]
    httpx.AsyncClient.send = counted_async  # type: ignore[method-assign]
    httpx.Client.send = counted_sync  # type: ignore[method-assign]


def _events_emitted() -> float:
    from prefect.events.clients import EVENTS_EMITTED

    return sum(
        sample.value
        for metric in EVENTS_EMITTED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def snapshot(*, drain: bool = False) -> dict[str, float]:
    """The counts so far (``drain``: first wait for queued events to be sent)."""
    if drain:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=30)
    return {"prefect_requests": float(_counts["requests"]), "prefect_events": _events_emitted()}
