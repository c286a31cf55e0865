"""The webhook receiver: wake detached flow runs when Anthropic says their session stopped working.

A detached run (``run_agent_session(..., detach=True)``) suspends itself while its session works.
Anthropic POSTs a signed, thin ``event`` (reference §14) to ``/webhooks/anthropic`` when a
session changes status; for ``session.status_idled`` and ``session.status_terminated`` this app
emits ``managed-agents.session.idled`` / ``.terminated`` (:func:`tasks.events.emit_session_wake`)
for each suspended run waiting for that session (:func:`tasks.detached.asuspended_runs`), and
the resume Automation resumes them. The watcher flow emits the same event when it polls, so
either path wakes the run.

* Deliveries are verified with the SDK (``client.beta.webhooks.unwrap``, Standard Webhooks
  HMAC): a missing or bad signature (or a stale timestamp) gets 400 and emits nothing.
* Retries reuse the event id: an id already handled gets 200 and emits nothing again (the last
  :data:`REMEMBERED_IDS` ids are kept in memory). A delivery whose wake events could not be
  emitted gets 500 and is not remembered, so the sender's retry tries again.
* A session that stops before its detached run has suspended (the run is still Running with the
  detached tag) gets 503, so the sender delivers again once the run is suspended.
* Other event types get 200 and are ignored. Order is not guaranteed, so nothing here depends
  on it: a run is only woken while it is suspended.

Serve it with ``managed-agents webhooks serve`` (key from ``ANTHROPIC_WEBHOOK_SIGNING_KEY``).
The signing key and the signature headers are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from typing import Annotated, Any

import anthropic
import typer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flows.detached import RESUME_AUTOMATION_NAME, aensure_resume_automation
from managed_agents.output import typed_errors
from managed_agents_core.exceptions import ConfigurationError
from tasks.detached import asuspended_runs
from tasks.events import emit_session_wake

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/anthropic"
"""Where deliveries are POSTed (register ``https://<host>/webhooks/anthropic`` in the Console)."""

SIGNING_KEY_ENV = "ANTHROPIC_WEBHOOK_SIGNING_KEY"
"""The environment variable ``serve`` reads the signing key from by default (the SDK's too)."""

WAKE_STATUSES = {"session.status_idled": "idle", "session.status_terminated": "terminated"}
"""Webhook ``data.type`` -> the ``status`` of the wake event it causes."""

REMEMBERED_IDS = 10_000
"""How many handled event ids the receiver remembers to drop repeated deliveries."""


class _RecentIds:
    """The last ``limit`` ids seen, oldest dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


def check_signing_key(signing_key: str) -> None:
    """Fail early on a key that cannot verify anything.

    Args:
        signing_key: The ``whsec_<base64>`` webhook signing secret.

    Raises:
        ConfigurationError: The key is empty or not base64 after its ``whsec_`` prefix (the
            message never contains the key).
    """
    from standardwebhooks import Webhook

    if not signing_key.strip():
        raise ConfigurationError("the webhook signing key is empty")
    try:
        Webhook(signing_key.strip())
    except Exception:
        raise ConfigurationError("the webhook signing key is not a whsec_<base64> secret") from None


def create_webhook_app(signing_key: str, *, remember: int = REMEMBERED_IDS) -> Starlette:
    """The ASGI app that receives Anthropic webhooks and wakes detached flow runs.

    Routes: ``POST /webhooks/anthropic`` (the deliveries) and ``GET /healthz``. The app needs a
    Prefect API (``PREFECT_API_URL``) to find suspended runs and emit events; it makes no
    Anthropic API call.

    Args:
        signing_key: The ``whsec_`` secret the deliveries are signed with.
        remember: How many handled event ids are kept to drop repeated deliveries.

    Returns:
        A Starlette app.

    Raises:
        ConfigurationError: The key cannot be used (see :func:`check_signing_key`).
    """
    check_signing_key(signing_key)
    key = signing_key.strip()
    # Verification only: this client never sends a request (unwrap is local).
    verifier = anthropic.Anthropic(api_key="webhook-receiver-makes-no-api-calls", max_retries=0)
    handled = _RecentIds(remember)
    in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}

    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            event = verifier.beta.webhooks.unwrap(
                body.decode("utf-8"), headers=dict(request.headers), key=key
            )
        except Exception as exc:
            reason = _rejection(exc)
            logger.warning("rejected a webhook delivery: %s", reason)
            return PlainTextResponse(f"rejected: {reason}\n", status_code=400)
        event_id = getattr(event, "id", None)
        data = getattr(event, "data", None)
        data_type, object_id = getattr(data, "type", None), getattr(data, "id", None)
        if not isinstance(event_id, str) or not isinstance(data_type, str) or not isinstance(object_id, str):
            logger.warning("rejected a webhook delivery: no event id, data.type or data.id")
            return PlainTextResponse("rejected: no event id, data.type or data.id\n", status_code=400)
        summary: dict[str, Any] = {"event_id": event_id, "type": data_type}
        if event_id in handled or event_id in in_flight:
            logger.info("webhook %s (%s) already handled: ignored", event_id, data_type)
            return JSONResponse({**summary, "duplicate": True, "woken": []})
        task = asyncio.ensure_future(_wake(data_type, object_id))
        in_flight[event_id] = task
        try:
            done = await asyncio.shield(task)
        except NotSuspendedYet:
            logger.info(
                "webhook %s (%s): its run is not suspended yet; asked for a retry", event_id, data_type
            )
            return PlainTextResponse("the detached run is not suspended yet; retry\n", status_code=503)
        except Exception as exc:
            logger.error("webhook %s (%s) not handled: %s", event_id, data_type, type(exc).__name__)
            return PlainTextResponse(
                f"could not emit the wake events ({type(exc).__name__}); retry\n", status_code=500
            )
        finally:
            del in_flight[event_id]
        handled.add(event_id)
        return JSONResponse({**summary, "duplicate": False, **done})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )


class NotSuspendedYet(Exception):
    """A detached run of the session is between its prompt and its suspend: the sender should
    deliver again (a wake emitted now would find nothing to resume, and the run would wait)."""


async def _wake(data_type: str, session_id: str) -> dict[str, Any]:
    """Emit the wake event for each suspended run of ``session_id``; what was done, as JSON.

    Raises:
        NotSuspendedYet: The session's detached run has not suspended yet (a fast session can
            idle first); the delivery is refused with 503 so that its retry finds the run suspended.
    """
    status = WAKE_STATUSES.get(data_type)
    if status is None:
        return {"ignored": True, "woken": []}
    runs = await asuspended_runs(session_id)
    if not runs and await asuspended_runs(session_id, state="Running"):
        raise NotSuspendedYet(session_id)
    for run in runs:
        emit_session_wake(session_id, status, str(run.id), source="webhook")
    woken = [str(run.id) for run in runs]
    logger.info("webhook %s about %s: woke %d suspended run(s)", data_type, session_id, len(woken))
    return {"ignored": False, "session_id": session_id, "status": status, "woken": woken}


def _rejection(exc: Exception) -> str:
    """One line saying why a delivery was refused, without the key or the signature."""
    from standardwebhooks.webhooks import WebhookVerificationError

    if isinstance(exc, WebhookVerificationError):
        return f"bad signature ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8"
    return f"bad signature or body ({type(exc).__name__})"


app = typer.Typer(
    no_args_is_help=True,
    help="Receive Anthropic webhooks and wake detached flow runs (run_agent_session(detach=True)).",
)


@app.command()
@typed_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8787,
    signing_key_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the webhook signing key (whsec_...)."),
    ] = SIGNING_KEY_ENV,
) -> None:
    """Serve the webhook receiver: POST /webhooks/anthropic, GET /healthz.

    Register ``https://<this host>/webhooks/anthropic`` in the Console for the
    ``session.status_idled`` and ``session.status_terminated`` events; the receiver needs
    ``PREFECT_API_URL`` to reach the Prefect server of the detached runs.
    """
    import uvicorn

    key = os.environ.get(signing_key_env, "").strip()
    if not key:
        raise ConfigurationError(
            f"{signing_key_env} is not set: the receiver needs the webhook signing key (whsec_...) "
            "to verify deliveries"
        )
    receiver = create_webhook_app(key)
    # The wake events resume nothing without the Automation: make sure it exists before serving.
    automation_id = asyncio.run(aensure_resume_automation())
    typer.echo(f"Resume Automation {RESUME_AUTOMATION_NAME} ({automation_id}) is in place")
    typer.echo(f"Webhook receiver on http://{host}:{port}{WEBHOOK_PATH} (signing key from {signing_key_env})")
    uvicorn.run(receiver, host=host, port=port, log_level="info")
