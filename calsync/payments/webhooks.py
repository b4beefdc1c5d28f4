"""Stripe's webhooks: the ``Stripe-Signature`` header checked (HMAC-SHA256 of
``<timestamp>.<body>`` with the endpoint's secret, and the timestamp no older than the
tolerance, so a captured request cannot be replayed later), the event as a typed value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from calsync.payments.errors import BadSignature


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str  # evt_…, the same on every delivery of one event
    type: str  # payment_intent.succeeded, …
    object_id: str | None  # the PaymentIntent (or other object) the event is about
    object_type: str | None


def verified_event(
    payload: bytes, signature: str | None, secret: str, tolerance: int
) -> WebhookEvent:
    """The event in ``payload``; raises BadSignature when the signature or its timestamp does
    not check out (a forged, altered or too old request) or the body is not an event."""
    if not signature:
        raise BadSignature("the request has no Stripe-Signature header")
    try:
        event: Any = stripe.Webhook.construct_event(payload, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc)) from exc
    except ValueError as exc:
        raise BadSignature(f"the body is not a Stripe event: {exc}") from exc
    event = event.to_dict()
    obj = (event.get("data") or {}).get("object") or {}
    return WebhookEvent(
        id=str(event.get("id")),
        type=str(event.get("type")),
        object_id=obj.get("id"),
        object_type=obj.get("object"),
    )
