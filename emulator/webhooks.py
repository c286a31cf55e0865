"""Webhook deliveries: signed, thin ``event`` payloads POSTed when a session changes status.

The real service (reference §14) sends a thin payload
``{"type": "event", "id", "created_at", "data": {"type", "id", "organization_id", "workspace_id"}}``
to an endpoint registered in the Console, signed the Standard Webhooks way (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` headers, HMAC-SHA256 with a ``whsec_`` secret). Order
is not guaranteed and retries reuse the event id. The emulator does the same when
``EmulatorConfig.webhook_url`` and ``webhook_secret`` are set:

* which session events give which delivery: :data:`WEBHOOK_TYPES`;
* each delivery waits ``webhook_delay`` plus a seeded draw of up to ``webhook_jitter`` seconds,
  so deliveries arrive late and, with jitter, out of order;
* a failed attempt (connection error, timeout, non-2xx) is retried ``webhook_retries`` times,
  ``webhook_retry_backoff`` seconds after the first failure and doubling, with the same event id
  (``webhook-id``) and body, re-signed with a fresh timestamp; after that it is logged and dropped.

Deliveries run as background tasks of the app's loop: the session engine only schedules them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from .ids import new_id, now_iso
from .runtime import Emulator

logger = logging.getLogger(__name__)

WEBHOOK_TYPES = {
    "session.status_running": "session.status_run_started",
    "session.status_rescheduled": "session.status_rescheduled",
    "session.status_idle": "session.status_idled",
    "session.status_terminated": "session.status_terminated",
}
"""Session (SSE) event type -> webhook ``data.type`` of the delivery it causes."""

ORGANIZATION_ID = "org_emulator"
"""``data.organization_id`` of every delivery."""
WORKSPACE_ID = "wrkspc_emulator_default"
"""``data.workspace_id`` of every delivery."""


def new_webhook_secret() -> str:
    """A fresh signing secret in the ``whsec_<base64 of 32 random bytes>`` form.

    The same as ``python -c "import base64, secrets; print('whsec_' +
    base64.b64encode(secrets.token_bytes(32)).decode())"``.
    """
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_headers(secret: str, event_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery attempt.

    Args:
        secret: The ``whsec_`` signing secret.
        event_id: The event id, sent as ``webhook-id`` (the same on every retry).
        body: The exact JSON text that is POSTed.
        at: The signing time (now when omitted), sent as ``webhook-timestamp``.
    """
    moment = at or datetime.now(UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, moment, body),
        "content-type": "application/json",
        "user-agent": "managed-agents-emulator-webhooks/1",
    }


def webhook_payload(data_type: str, object_id: str) -> dict[str, Any]:
    """A thin ``event`` payload about ``object_id`` (a new event id, created now)."""
    return {
        "type": "event",
        "id": new_id("wevt"),
        "created_at": now_iso(),
        "data": {
            "type": data_type,
            "id": object_id,
            "organization_id": ORGANIZATION_ID,
            "workspace_id": WORKSPACE_ID,
        },
    }


class WebhookDispatcher:
    """Schedules and sends the deliveries of one emulator app (``emulator.services["webhooks"]``).

    Args:
        emulator: The app's emulator context (its config is read at each delivery).
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        """The latest attempts, one record each: ``event_id``, ``type``, ``attempt``, ``status``
        (or ``error``)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random(f"{emulator.config.faults.seed}:webhooks")
        self._stopped = False

    @property
    def pending(self) -> int:
        """Deliveries waiting, in flight or between retries."""
        return len(self._tasks)

    @property
    def enabled(self) -> bool:
        """True when a URL and a secret are configured."""
        cfg = self.emulator.config
        return bool(cfg.webhook_url and cfg.webhook_secret)

    async def start(self) -> None:
        """Accept deliveries again. The HTTP client is opened by the first delivery: most
        emulators never send one, and opening a client builds a TLS context (~30 ms of CPU)."""
        self._stopped = False

    async def stop(self) -> None:
        """Cancel deliveries still waiting or retrying and close the client."""
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def session_event(self, session_id: str, event_type: str) -> None:
        """Schedule the delivery a session event causes, if any (called by the engine; never blocks)."""
        data_type = WEBHOOK_TYPES.get(event_type)
        if data_type is None or not self.enabled or self._stopped:
            return
        self.schedule(webhook_payload(data_type, session_id))

    def schedule(self, payload: dict[str, Any]) -> None:
        """Send ``payload`` in the background (delay, jitter and retries as configured)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing can send it (the engine always has one)
            logger.warning("webhook %s dropped: no running event loop", payload["id"])
            return
        task = loop.create_task(self._deliver(payload), name=f"webhook-{payload['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        cfg = self.emulator.config
        url, secret = cfg.webhook_url, cfg.webhook_secret
        if not url or not secret:
            return
        body = json.dumps(payload, separators=(",", ":"))
        event_id, data_type = payload["id"], payload["data"]["type"]
        wait = cfg.webhook_delay + (self._rng.uniform(0, cfg.webhook_jitter) if cfg.webhook_jitter > 0 else 0)
        attempts = 1 + cfg.webhook_retries
        for attempt in range(1, attempts + 1):
            if wait > 0:
                await asyncio.sleep(wait)
            record: dict[str, Any] = {"event_id": event_id, "type": data_type, "attempt": attempt}
            self.deliveries.append(record)
            try:
                if self._client is None:
                    self._client = httpx.AsyncClient(timeout=cfg.webhook_timeout)
                response = await self._client.post(
                    url, content=body, headers=sign_headers(secret, event_id, body)
                )
                record["status"] = response.status_code
                if response.is_success:
                    return
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
            if attempt < attempts:
                wait = cfg.webhook_retry_backoff * 2 ** (attempt - 1)
                logger.info(
                    "webhook %s (%s) attempt %d failed (%s); retrying in %.2fs",
                    event_id,
                    data_type,
                    attempt,
                    record.get("status", record.get("error")),
                    wait,
                )
        logger.warning("webhook %s (%s) dropped after %d attempts", event_id, data_type, attempts)


def get_dispatcher(emulator: Emulator) -> WebhookDispatcher | None:
    """The app's webhook dispatcher (``None`` for an emulator built without one)."""
    dispatcher = emulator.services.get("webhooks")
    return dispatcher if isinstance(dispatcher, WebhookDispatcher) else None
