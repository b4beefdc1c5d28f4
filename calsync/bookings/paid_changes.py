"""The change engine's side of payments: what a change paid through Stripe leaves in the
database when it is recorded (``bookings/changes.py`` ``record`` calls these in its
transaction). Stripe itself is called by ``payments/service.py``, after the commit.

- A customer's reschedule with a fee is recorded as *awaiting payment*: its new times are
  held (``PaymentHold`` rows, busy for every other customer and booking, read by
  ``held.booked_spans``), the sessions keep their times, and an open charge (``Payment``)
  carries the amount in minor units and the idempotency key of its PaymentIntent.
- A customer's cancel of a booking paid through calsync queues its refund (an open refund
  ``Payment``), paid by ``payments/service.py`` ``pay_refunds`` once the cancel is recorded.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from calsync.config import PaymentSettings, Settings
from calsync.notify.compose import installation_namespace
from calsync.policy.money import to_minor
from calsync.store.models import (
    Booking,
    Change,
    Payment,
    PaymentHold,
    PaymentKind,
    utcnow,
)


def stripe_key(settings: Settings, what: str, nonce: str | None = None) -> str:
    """A new idempotency key for Stripe, stored on its row when the row is made (retries reuse
    the stored key): this installation's own (two installations may share one Stripe account),
    calsync's ids for whoever reads Stripe's log, e.g. ``calsync-<ns>-change-12-charge-1-<r>``,
    and random bytes, because ids count from 1 again after a database reset and Stripe keeps a
    key for 24 hours: the same key would answer with the old database's intent or refund.
    ``nonce``: random bytes a row without a key column stored when it was made (a checkout),
    so its keys can be made again the same."""
    namespace = installation_namespace(settings.require_secret_key())
    return f"calsync-{namespace}-{what}-{nonce or secrets.token_hex(8)}"


def hold(
    session: Session,
    settings: Settings,
    payments: PaymentSettings,
    booking: Booking,
    change: Change,
    fee: Decimal,
) -> Payment:
    """Hold ``change``'s new times for ``payments.hold_minutes`` and open its charge."""
    expires = utcnow() + timedelta(minutes=payments.hold_minutes)
    uids = {s.id: s.uid for s in booking.sessions}
    for item in change.items:
        if item.after is not None:
            session.add(
                PaymentHold(
                    owner_id=booking.owner_id,
                    change_id=change.id,
                    uid=uids[item.session_id],
                    start=item.after.start,
                    end=item.after.end,
                    expires_at=expires,
                )
            )
    payment = Payment(
        kind=PaymentKind.CHARGE,
        booking_id=booking.id,
        change_id=change.id,
        amount=to_minor(fee, booking.currency),
        currency=booking.currency.upper(),
        idempotency_key=stripe_key(settings, f"change-{change.id}-charge-1"),
        booking_version=booking.version,
        attempt=1,
    )
    session.add(payment)
    return payment


def queue_refund(
    session: Session, settings: Settings, booking: Booking, change: Change, refund: Decimal
) -> str:
    """An open refund of ``refund`` against the booking's PaymentIntent; the words that follow
    the refund line of the emails."""
    session.add(
        Payment(
            kind=PaymentKind.REFUND,
            booking_id=booking.id,
            change_id=change.id,
            amount=to_minor(refund, booking.currency),
            currency=booking.currency.upper(),
            payment_intent=booking.payment_intent,
            idempotency_key=stripe_key(settings, f"change-{change.id}-refund"),
        )
    )
    return f"paid back through Stripe to the card that paid (payment {booking.payment_intent})"
