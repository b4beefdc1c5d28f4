"""The Stripe API behind a few typed calls: PaymentIntents and Refunds.

Every write carries an idempotency key made from calsync's own ids (``change-12-charge``), so a
retry after a timeout never makes a second charge or refund. Amounts are integer minor units.
Stripe's exceptions become ``payments/errors.py``'s tree here, with the original chained; the
key is given to the client object only, never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import stripe

from calsync.config import PaymentSettings
from calsync.payments.errors import (
    PaymentDeclined,
    PaymentError,
    PaymentRefused,
    PaymentsUnavailable,
)


class IntentStatus(StrEnum):
    """A PaymentIntent's status, as Stripe names it."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"  # new, or the last card was declined
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"  # 3-D Secure: Stripe.js asks the customer
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Intent:
    """A PaymentIntent as calsync reads it."""

    id: str
    status: IntentStatus
    amount: int  # minor units
    currency: str
    client_secret: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # the last payment error, in Stripe's words

    @property
    def change_id(self) -> int | None:
        raw = self.metadata.get("calsync_change_id")
        return int(raw) if raw and raw.isdigit() else None


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    status: str  # succeeded, pending, failed, canceled
    amount: int
    metadata: Mapping[str, str] = field(default_factory=dict)


def _intent(found: Any) -> Intent:
    obj = found.to_dict()
    error = obj.get("last_payment_error") or None
    return Intent(
        id=obj["id"],
        status=IntentStatus(obj["status"]),
        amount=int(obj["amount"]),
        currency=str(obj["currency"]),
        client_secret=obj.get("client_secret"),
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        error=None if error is None else str(error.get("message") or error.get("code")),
    )


def _translated(exc: stripe.StripeError) -> PaymentError:
    message = exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(message, code=exc.code)
    if isinstance(exc, stripe.IdempotencyError):
        # Another request with the same key is in flight (or just was): retry later, when
        # Stripe answers the key with what that request did.
        return PaymentsUnavailable(message, code=exc.code)
    if isinstance(exc, stripe.InvalidRequestError):
        return PaymentRefused(message, code=exc.code)
    return PaymentsUnavailable(message, code=exc.code)


class StripeGateway:
    """Stripe's API for one account. ``api_base`` points it at localstripe in tests."""

    def __init__(
        self, secret_key: str, *, api_base: str | None = None, timeout: float = 20.0
    ) -> None:
        bases: Any = {"api": api_base.rstrip("/")} if api_base else None
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses=bases,
            max_network_retries=0,  # our own retries reuse the idempotency key
            # requests (already a dependency of Google's client): stripe's httpx client passes the
            # body in a way httpx deprecates, which the tests treat as an error.
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    @classmethod
    def from_settings(cls, settings: PaymentSettings) -> StripeGateway:
        """Raises ConfigError when the key's variable is unset."""
        return cls(
            settings.secret_key(),
            api_base=settings.api_base,
            timeout=settings.request_timeout_seconds,
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _translated(exc) from exc

    def create_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Intent:
        """A PaymentIntent for ``amount`` minor units, paid by card. The same key answers
        with the same intent (Stripe keeps keys 24 hours)."""
        params: Any = {
            "amount": amount,
            "currency": currency.lower(),
            "metadata": dict(metadata),
            "payment_method_types": ["card"],
        }
        obj = self._call(
            self._client.v1.payment_intents.create,
            params,
            {"idempotency_key": idempotency_key},
        )
        return _intent(obj)

    def retrieve_intent(self, intent_id: str) -> Intent:
        return _intent(self._call(self._client.v1.payment_intents.retrieve, intent_id))

    def confirm_intent(self, intent_id: str, payment_method: str) -> Intent:
        """Confirm with a payment method Stripe.js made in the browser (``pm_…`` or a tokenised
        ``card_…``); raises PaymentDeclined for a declined card. The result may ask for 3-D
        Secure (``REQUIRES_ACTION``), which Stripe.js's ``confirmCardPayment`` completes."""
        update: Any = {"payment_method": payment_method}
        self._call(self._client.v1.payment_intents.update, intent_id, update)
        return _intent(self._call(self._client.v1.payment_intents.confirm, intent_id))

    def cancel_intent(self, intent_id: str) -> Intent:
        return _intent(self._call(self._client.v1.payment_intents.cancel, intent_id))

    def refund(
        self,
        intent_id: str,
        amount: int,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Refund:
        """Refund ``amount`` minor units of a paid intent; raises PaymentRefused when Stripe
        will not (a failed payment, more than was paid, …)."""
        params: Any = {"payment_intent": intent_id, "amount": amount}
        if metadata:
            params["metadata"] = dict(metadata)
        obj = self._call(
            self._client.v1.refunds.create, params, {"idempotency_key": idempotency_key}
        )
        obj = obj.to_dict()
        if obj.get("status") == "failed":
            raise PaymentRefused(f"Stripe could not pay refund {obj['id']} back", code="failed")
        return _refund(obj)

    def retrieve_refund(self, refund_id: str) -> Refund:
        """A refund as Stripe holds it now (a pending one turns succeeded or failed later)."""
        return _refund(self._call(self._client.v1.refunds.retrieve, refund_id).to_dict())

    def refunds_of(self, intent_id: str) -> list[Refund]:
        """The refunds Stripe made of a paid intent (the latest hundred, newest first)."""
        params: Any = {"payment_intent": intent_id, "limit": 100}
        found = self._call(self._client.v1.refunds.list, params)
        return [_refund(obj.to_dict()) for obj in found.data]


def _refund(obj: Mapping[str, Any]) -> Refund:
    metadata = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
    return Refund(obj["id"], str(obj.get("status")), int(obj["amount"]), metadata)
