"""``POST /webhooks/stripe``: Stripe tells calsync a payment succeeded or failed, or that a
refund it had answered "pending" changed (re-read from Stripe and recorded paid or failed).

The signature is checked with the webhook secret and a timestamp tolerance before anything
is read; a bad one is refused with 400 and logged (without the body). Each event only makes
calsync re-read the PaymentIntent from Stripe and settle it (``payments/service.py``), which
is idempotent: a replayed, duplicated or out-of-order event changes nothing twice. Events
calsync does not use are answered 200, so Stripe stops sending them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.config import ConfigError, Settings
from calsync.payments import checkout, service
from calsync.payments.errors import BadSignature, PaymentsUnavailable
from calsync.payments.gateway import StripeGateway
from calsync.payments.webhooks import verified_event
from calsync.store.db import Database

log = logging.getLogger(__name__)

router = APIRouter()

#: The events calsync acts on; enable these on the endpoint in Stripe's dashboard.
HANDLED = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})
#: Events about a refund Stripe had answered "pending": it was paid or failed since.
REFUND_EVENTS = frozenset({"charge.refund.updated", "refund.updated", "refund.failed"})


def _settle(db: Database, settings: Settings, intent_id: str) -> None:
    assert settings.payments is not None
    gateway = StripeGateway.from_settings(settings.payments)
    if service.change_of_intent(db, intent_id) is not None:
        service.settle(db, settings, gateway, intent_id)
    elif checkout.checkout_of_intent(db, intent_id) is not None:
        checkout.settle(db, settings, gateway, intent_id)  # a package paid on the booking page
    # else not a payment calsync asked for (another app on the same account)


def _refund_changed(db: Database, settings: Settings, refund_id: str) -> None:
    assert settings.payments is not None
    gateway = StripeGateway.from_settings(settings.payments)
    service.refund_update(db, gateway, refund_id)  # not ours or not pending: nothing to do


@router.post("/webhooks/stripe", include_in_schema=False)
async def stripe_webhook(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    if settings.payments is None:
        return JSONResponse({"error": "payments are not configured"}, status_code=404)
    payload = await request.body()
    try:
        secret = settings.payments.webhook_secret()
    except ConfigError as exc:
        log.error("Stripe webhook refused: %s", exc)
        return JSONResponse({"error": "webhook secret not configured"}, status_code=503)
    try:
        event = verified_event(
            payload,
            request.headers.get("stripe-signature"),
            secret,
            settings.payments.webhook_tolerance_seconds,
        )
    except BadSignature as exc:
        client = request.client.host if request.client else "?"
        log.warning("Stripe webhook refused from %s: %s", client, exc.message)
        return JSONResponse({"error": "bad signature"}, status_code=400)
    if event.type in HANDLED and event.object_type == "payment_intent" and event.object_id:
        act: Callable[[Database, Settings, str], None] | None = _settle
    elif event.type in REFUND_EVENTS and event.object_type == "refund" and event.object_id:
        act = _refund_changed
    else:
        act = None
    if act is not None and event.object_id:
        try:
            await to_thread.run_sync(act, request.app.state.db, settings, event.object_id)
        except PaymentsUnavailable as exc:
            # Stripe sends the event again later; by then it can be re-read.
            log.warning("Stripe webhook %s not settled yet: %s", event.id, exc.message)
            return JSONResponse({"error": "try again"}, status_code=503)
    return JSONResponse({"received": True, "event": event.id})
