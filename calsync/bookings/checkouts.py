"""Holding a priced package's times while the customer pays on the booking page.

The hold is taken as a booking is (fresh busy time, the owner's lock, every start checked by
the same rules) but stores a ``Checkout`` and its ``CheckoutHold`` rows instead of a booking:
held times are busy for everyone else (``held.booked_spans``) until the checkout is released
(paid and booked, or run out). The booking itself is made later by ``packages.book`` with the
checkout's request, which frees the held times in its own transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import select

from calsync.bookings.event_types import InvalidInput, get_event_type, load_event_type
from calsync.bookings.held import lock_owner
from calsync.bookings.live_check import live_busy
from calsync.bookings.packages import (
    BookingRequest,
    check_starts,
    refresh_conflicts,
    request_problems,
)
from calsync.config import Settings
from calsync.policy.types import Slot
from calsync.store.db import Database
from calsync.store.models import Actor, Checkout, CheckoutHold, utcnow
from calsync.sync.providers import ProviderFactory, open_provider

#: The ``request`` entry holding the random bytes of the checkout's Stripe keys.
STRIPE_NONCE = "stripe_nonce"


def request_data(request: BookingRequest) -> dict[str, object]:
    """The request as stored on the checkout (JSON)."""
    data = asdict(request)
    data["starts"] = [s.isoformat() for s in request.starts]
    data["stakeholders"] = list(request.stakeholders)
    data["actor"] = request.actor.value
    return data


def request_of(checkout: Checkout, payment_intent: str, receipt: str) -> BookingRequest:
    """The stored request, to be booked as paid by ``payment_intent``."""
    data = dict(checkout.request)
    return BookingRequest(
        event_type=int(data["event_type"]),
        customer_name=str(data["customer_name"]),
        customer_email=str(data["customer_email"]),
        starts=tuple(datetime.fromisoformat(s) for s in data["starts"]),
        customer_timezone=data.get("customer_timezone"),
        stakeholders=tuple(data.get("stakeholders") or ()),
        actor=Actor(data.get("actor") or Actor.CUSTOMER.value),
        idempotency_key=checkout.submit_key,
        notes=data.get("notes"),
        payment_intent=payment_intent,
        checkout_id=checkout.id,
        receipt=receipt,
    )


def checkout_of_key(db: Database, submit_key: str) -> int | None:
    with db.reading() as session:
        return session.scalars(
            select(Checkout.id).where(Checkout.submit_key == submit_key)
        ).one_or_none()


def hold_package(
    db: Database,
    settings: Settings,
    request: BookingRequest,
    amount: int,
    currency: str,
    minutes: int,
    *,
    provider_factory: ProviderFactory | None = None,
    now: datetime | None = None,
) -> int:
    """Hold the request's times for ``minutes`` and return the checkout's id; a second submit
    with the same key returns the first checkout. Raises InvalidInput, SlotTaken,
    AvailabilityUnknown as ``packages.book`` does."""
    problems = request_problems(request)
    if problems:
        raise InvalidInput(problems)
    assert request.idempotency_key
    found = checkout_of_key(db, request.idempotency_key)
    if found is not None:
        return found
    event_type = get_event_type(db, request.event_type)
    factory = provider_factory or open_provider(settings)
    unstored = refresh_conflicts(db, settings, event_type, factory)
    now = now or utcnow()
    starts = sorted(request.starts)
    duration = timedelta(minutes=event_type.duration_minutes)
    live = [*live_busy(db, event_type, [Slot(s, s + duration) for s in starts], factory)]
    live += unstored
    with db.writing() as session:
        lock_owner(session, event_type.owner_id)
        again = session.scalars(
            select(Checkout.id).where(Checkout.submit_key == request.idempotency_key)
        ).one_or_none()
        if again is not None:
            return again
        fresh = load_event_type(session, event_type.id)
        slots = check_starts(session, fresh, starts, now, live)
        checkout = Checkout(
            owner_id=fresh.owner_id,
            event_type_id=fresh.id,
            # Random bytes for its Stripe keys, chosen once (payments/checkout.py charge_key).
            request=request_data(request) | {STRIPE_NONCE: secrets.token_hex(8)},
            amount=amount,
            currency=currency.lower(),
            submit_key=request.idempotency_key,
            attempt=1,
            expires_at=now + timedelta(minutes=minutes),
        )
        session.add(checkout)
        session.flush()
        for slot in slots:
            session.add(
                CheckoutHold(
                    checkout_id=checkout.id, owner_id=fresh.owner_id, start=slot.start, end=slot.end
                )
            )
        return checkout.id
