"""Paying for a priced package on the booking page (README "The booking page").

The customer's times are held first (``bookings/checkouts.py``); this module makes the
checkout's PaymentIntent (minor units, metadata with the checkout, an idempotency key per
attempt), confirms it with the payment method Stripe.js made, and once Stripe says it is paid
(re-read from Stripe, never taken from a request body) books the package with the same engine
as an unpaid one, the PaymentIntent recorded on the booking (cancellations refund against it)
and a receipt line in the confirmation emails. Every step may run twice at once (the webhook
and the return URL): the checkout's state changes under the owner's lock and the booking has
the page's submit key, so it is made once. Paid but not bookable (the hold ran out, a time was
taken, the calendar failed): the payment is refunded in full, with its idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from calsync.bookings import links
from calsync.bookings.checkouts import STRIPE_NONCE, request_of
from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput
from calsync.bookings.held import lock_owner
from calsync.bookings.packages import (
    BookingResult,
    CalendarWriteFailed,
    SlotTaken,
    book,
    get_booking,
)
from calsync.bookings.paid_changes import stripe_key
from calsync.config import Settings
from calsync.payments.errors import PaymentDeclined, PaymentError, PaymentsUnavailable
from calsync.payments.gateway import Intent, IntentStatus, StripeGateway
from calsync.policy.money import minor_text
from calsync.store.db import Database
from calsync.store.models import (
    Checkout,
    CheckoutState,
    Payment,
    PaymentKind,
    PaymentState,
    utcnow,
)
from calsync.sync.fresh_busy import BusyTimeNotFresh
from calsync.sync.providers import ProviderFactory

log = logging.getLogger(__name__)

LATE = (
    "Your payment arrived after the times were released, so nothing was booked and the payment "
    "is being refunded in full. Please choose your times again."
)
NOT_BOOKED = (
    "Your payment was received but the sessions could not be booked ({why}), so nothing was "
    "booked and the payment is being refunded in full. Please choose your times again."
)
EXPIRED = "The times were held for you but not paid in time; they are free again."
#: A checkout paid this long ago and still not booked was left by a process that stopped.
STUCK_AFTER = timedelta(minutes=5)
MISMATCH = (
    "The payment did not match this booking, so nothing was booked and it is being refunded in "
    "full. Please choose your times again."
)
UNREACHABLE = "The payment service could not be reached, so the times were released."


class StepState(StrEnum):
    PAY = "pay"  # waiting for the card
    ACTION = "action"  # Stripe.js must ask the customer (3-D Secure)
    BOOKED = "booked"
    REFUNDED = "refunded"  # paid but not bookable: the money goes back
    ENDED = "ended"  # the hold ran out unpaid


@dataclass(frozen=True, slots=True)
class CheckoutStep:
    state: StepState
    checkout_id: int
    amount: int
    currency: str
    intent_id: str | None
    client_secret: str | None
    expires_at: datetime
    booking_id: str | None = None
    message: str | None = None

    @property
    def amount_text(self) -> str:
        return minor_text(self.amount, self.currency)


def access_tag(settings: Settings, checkout_id: int) -> str:
    """The secret in the payment step's URL: only who submitted the form can open it."""
    key = settings.require_secret_key().encode()
    return hmac.new(key, f"checkout-{checkout_id}".encode(), hashlib.sha256).hexdigest()[:32]


def tag_ok(settings: Settings, checkout_id: int, tag: str | None) -> bool:
    return bool(tag) and hmac.compare_digest(access_tag(settings, checkout_id), tag or "")


def _step(checkout: Checkout, secret: str | None = None) -> CheckoutStep:
    state = {
        CheckoutState.HOLDING: StepState.PAY,
        CheckoutState.PAID: StepState.PAY,
        CheckoutState.BOOKED: StepState.BOOKED,
        CheckoutState.REFUNDED: StepState.REFUNDED,
        CheckoutState.EXPIRED: StepState.ENDED,
    }[checkout.state]
    return CheckoutStep(
        state,
        checkout.id,
        checkout.amount,
        checkout.currency,
        checkout.stripe_id,
        secret,
        checkout.expires_at,
        checkout.booking_id,
        checkout.message,
    )


def _nonce(checkout: Checkout) -> str:
    """The random bytes chosen when the checkout was made (ids repeat after a database reset,
    and Stripe keeps a key 24 hours); a checkout made before they were stored gets bytes
    from its own submit key and creation time, which are fixed too."""
    stored = (checkout.request or {}).get(STRIPE_NONCE)
    if stored:
        return str(stored)
    made = f"{checkout.submit_key}|{checkout.created_at.isoformat()}".encode()
    return hashlib.sha256(made).hexdigest()[:16]


def charge_key(settings: Settings, checkout: Checkout) -> str:
    """The idempotency key of the checkout's current charge: the same on every retry."""
    what = f"checkout-{checkout.id}-charge-{checkout.attempt}"
    return stripe_key(settings, what, _nonce(checkout))


def refund_key(settings: Settings, checkout: Checkout) -> str:
    """The idempotency key of the checkout's one refund: the same on every retry."""
    return stripe_key(settings, f"checkout-{checkout.id}-refund", _nonce(checkout))


def checkout_step(
    db: Database, settings: Settings, gateway: StripeGateway, checkout_id: int
) -> CheckoutStep:
    """The payment step: the checkout's PaymentIntent, made on first need. A hold that ran out
    is released here too (the worker does it as well). Stripe unreachable: the times are
    released at once and PaymentsUnavailable raised."""
    now = utcnow()
    with db.reading() as session:
        checkout = session.get(Checkout, checkout_id)
        if checkout is None:
            raise PaymentError("no such checkout")
        if checkout.state is not CheckoutState.HOLDING:
            return _step(checkout)
        expired = checkout.expires_at <= now
        intent_id = checkout.stripe_id
        amount, currency, key = checkout.amount, checkout.currency, charge_key(settings, checkout)
        event_type_id = checkout.event_type_id
    if expired:
        release(db, checkout_id, EXPIRED)
        return _read(db, checkout_id)
    if intent_id is not None:
        intent = gateway.retrieve_intent(intent_id)
        return _read(db, checkout_id, intent.client_secret)
    metadata = {
        "calsync_checkout_id": str(checkout_id),
        "calsync_event_type_id": str(event_type_id),
    }
    try:
        intent = gateway.create_intent(amount, currency, metadata, key)
    except PaymentsUnavailable:
        release(db, checkout_id, UNREACHABLE)
        raise
    with db.writing() as session:
        stored = session.get(Checkout, checkout_id)
        assert stored is not None
        if stored.stripe_id is None:
            stored.stripe_id = intent.id
    return _read(db, checkout_id, intent.client_secret)


def _read(db: Database, checkout_id: int, secret: str | None = None) -> CheckoutStep:
    with db.reading() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        return _step(checkout, secret)


def release(db: Database, checkout_id: int, why: str, now: datetime | None = None) -> bool:
    """End a checkout unpaid: its times are free again. False if it was not holding."""
    now = now or utcnow()
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        if checkout is None:
            return False
        lock_owner(session, checkout.owner_id)
        session.refresh(checkout)
        if checkout.state is not CheckoutState.HOLDING:
            return False
        checkout.state = CheckoutState.EXPIRED
        checkout.released_at = checkout.released_at or now
        checkout.message = why
    return True


def pay(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    checkout_id: int,
    payment_method: str,
    factory: ProviderFactory | None = None,
) -> tuple[CheckoutStep, BookingResult | None]:
    """Confirm the checkout's intent with Stripe.js's payment method. Declined: nothing is
    booked, a fresh intent is made for the next card (PaymentDeclined raised)."""
    step = checkout_step(db, settings, gateway, checkout_id)
    if step.state is not StepState.PAY or step.intent_id is None:
        return step, booked_result(db, settings, step)
    try:
        intent = gateway.confirm_intent(step.intent_id, payment_method)
    except PaymentDeclined:
        _declined(db, checkout_id, step.intent_id)
        raise
    if intent.status is IntentStatus.REQUIRES_ACTION:
        return _read(db, checkout_id, intent.client_secret), None
    return settle(db, settings, gateway, intent.id, factory)


def _declined(db: Database, checkout_id: int, intent_id: str) -> None:
    """The next attempt gets a fresh intent with its own key (as the manage page's fee)."""
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        if checkout is None or checkout.stripe_id != intent_id:
            return
        if checkout.state is CheckoutState.HOLDING:
            checkout.stripe_id = None
            checkout.attempt += 1


def checkout_of_intent(db: Database, intent_id: str) -> int | None:
    with db.reading() as session:
        return session.scalars(
            select(Checkout.id).where(Checkout.stripe_id == intent_id)
        ).one_or_none()


def booked_result(db: Database, settings: Settings, step: CheckoutStep) -> BookingResult | None:
    """The booking a paid checkout made (for its result page)."""
    if step.state is not StepState.BOOKED or step.booking_id is None:
        return None
    booking = get_booking(db, step.booking_id)
    url = links.current_link(settings, booking)
    return None if url is None else BookingResult(booking, url, booking.sessions)


def settle(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    intent_id: str,
    factory: ProviderFactory | None = None,
) -> tuple[CheckoutStep, BookingResult | None]:
    """What a payment of ``intent_id`` means, re-read from Stripe: paid while the times are
    held, the package is booked (once, however many callers); paid too late or not bookable,
    refunded in full."""
    intent = gateway.retrieve_intent(intent_id)
    checkout_id = checkout_of_intent(db, intent_id)
    if checkout_id is None:
        raise PaymentError(f"{intent_id} is not a checkout calsync asked for")
    if intent.status is not IntentStatus.SUCCEEDED:
        if intent.status is IntentStatus.REQUIRES_PAYMENT_METHOD and intent.error:
            _declined(db, checkout_id, intent_id)
        return _read(db, checkout_id, intent.client_secret), None
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        lock_owner(session, checkout.owner_id)
        session.refresh(checkout)
        state = checkout.state
        mismatch = _mismatch(intent, checkout)
        if state is CheckoutState.HOLDING and mismatch is None:
            checkout.state = state = CheckoutState.PAID  # the worker no longer expires it
        request = request_of(checkout, intent_id, _receipt(checkout, intent_id))
        amount, currency = checkout.amount, checkout.currency
        paid_key = charge_key(settings, checkout)
    if mismatch is not None and state is not CheckoutState.BOOKED:
        # Not the payment this checkout asked for (a key Stripe still remembered from before a
        # database reset answers with an old intent): never booked, what it took goes back.
        log.error("intent %s does not match checkout %s: %s", intent_id, checkout_id, mismatch)
        _refund(db, settings, gateway, checkout_id, intent_id, intent.amount, MISMATCH)
    elif state is CheckoutState.EXPIRED:
        _refund(db, settings, gateway, checkout_id, intent_id, amount, LATE)
    elif state is CheckoutState.PAID:
        try:
            result = book(db, settings, request, provider_factory=factory)
        except (
            SlotTaken,
            InvalidInput,
            AvailabilityUnknown,
            BusyTimeNotFresh,
            CalendarWriteFailed,
        ) as exc:
            log.warning("checkout %s paid by %s but not booked: %s", checkout_id, intent_id, exc)
            why = (
                "a time was taken meanwhile"
                if isinstance(exc, SlotTaken)
                else ("the calendar could not be checked or written")
            )
            _refund(
                db, settings, gateway, checkout_id, intent_id, amount, NOT_BOOKED.format(why=why)
            )
        else:
            _booked(db, checkout_id, result, intent_id, amount, currency, paid_key)
    step = _read(db, checkout_id)
    return step, booked_result(db, settings, step)


def _mismatch(intent: Intent, checkout: Checkout) -> str | None:
    """Why ``intent`` is not the charge ``checkout`` asked for, or None when it is."""
    if intent.metadata.get("calsync_checkout_id") != str(checkout.id):
        return f"it is for checkout {intent.metadata.get('calsync_checkout_id')}, not {checkout.id}"
    if (intent.amount, intent.currency.upper()) != (checkout.amount, checkout.currency.upper()):
        took, asked = (intent.amount, intent.currency), (checkout.amount, checkout.currency)
        return f"it is for {took}, not {asked}"
    return None


def _receipt(checkout: Checkout, intent_id: str) -> str:
    return f"Paid {minor_text(checkout.amount, checkout.currency)}, Stripe payment {intent_id}"


def _booked(
    db: Database,
    checkout_id: int,
    result: BookingResult,
    intent_id: str,
    amount: int,
    currency: str,
    key: str,
) -> None:
    """The checkout is booked and its charge recorded (once) for ``calsync payments list``."""
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        lock_owner(session, checkout.owner_id)
        session.refresh(checkout)
        if checkout.state is CheckoutState.BOOKED:
            return
        checkout.state = CheckoutState.BOOKED
        checkout.booking_id = result.booking.id
        checkout.released_at = checkout.released_at or utcnow()
        checkout.message = None
        session.add(
            Payment(
                kind=PaymentKind.CHARGE,
                state=PaymentState.SUCCEEDED,
                booking_id=result.booking.id,
                amount=amount,
                currency=currency,
                stripe_id=intent_id,
                payment_intent=intent_id,
                idempotency_key=key,
            )
        )


def _refund(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    checkout_id: int,
    intent_id: str,
    amount: int,
    why: str,
) -> None:
    """Refund a paid checkout that was not booked, once (its key); Stripe away: left for the
    worker (``refund_id`` unset on a refunded checkout)."""
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        lock_owner(session, checkout.owner_id)
        session.refresh(checkout)
        if checkout.state is CheckoutState.BOOKED or checkout.refund_id:
            return
        checkout.state = CheckoutState.REFUNDED
        checkout.released_at = checkout.released_at or utcnow()
        checkout.message = why
    pay_refund(db, settings, gateway, checkout_id, intent_id, amount)


def pay_refund(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    checkout_id: int,
    intent_id: str,
    amount: int,
) -> None:
    with db.reading() as session:
        found = session.get(Checkout, checkout_id)
        assert found is not None
        key = refund_key(settings, found)
    try:
        refund = gateway.refund(intent_id, amount, key, {"calsync_checkout_id": str(checkout_id)})
    except PaymentError as exc:
        log.error("refund of checkout %s (%s) not paid yet: %s", checkout_id, intent_id, exc)
        return
    with db.writing() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        checkout.refund_id = refund.id


def expire(
    db: Database, settings: Settings, gateway: StripeGateway | None, now: datetime | None = None
) -> int:
    """The worker's job: release checkouts whose hold ran out (their intents cancelled where
    Stripe still can; one paid anyway is refunded by ``settle``), and send refunds Stripe
    could not take before."""
    now = now or utcnow()
    with db.reading() as session:
        due = list(
            session.scalars(
                select(Checkout.id).where(
                    Checkout.state == CheckoutState.HOLDING, Checkout.expires_at <= now
                )
            )
        )
        stuck = [
            intent
            for intent in session.scalars(
                select(Checkout.stripe_id).where(
                    Checkout.state == CheckoutState.PAID,
                    Checkout.updated_at <= now - STUCK_AFTER,
                )
            )
            if intent
        ]
        unpaid_refunds = list(
            session.execute(
                select(Checkout.id, Checkout.stripe_id, Checkout.amount).where(
                    Checkout.state == CheckoutState.REFUNDED, Checkout.refund_id.is_(None)
                )
            )
        )
    released = 0
    for checkout_id in due:
        if not release(db, checkout_id, EXPIRED, now):
            continue
        released += 1
        with db.reading() as session:
            intent_id = session.scalars(
                select(Checkout.stripe_id).where(Checkout.id == checkout_id)
            ).one()
        if gateway is not None and intent_id:
            try:
                gateway.cancel_intent(intent_id)
            except PaymentError:
                log.info("intent %s of expired checkout %s not cancelled", intent_id, checkout_id)
    if gateway is not None:
        for checkout_id, intent_id, amount in unpaid_refunds:
            if intent_id:
                pay_refund(db, settings, gateway, checkout_id, intent_id, amount)
        for intent_id in stuck:
            # Paid, but the process that was booking it stopped: book it now (the submit
            # key makes it once) or refund it.
            try:
                settle(db, settings, gateway, intent_id)
            except PaymentError as exc:
                log.warning("paid checkout %s not settled yet: %s", intent_id, exc)
    return released
