"""Ids in console URLs are checked against the signed-in owner: another owner's calendar,
event type, booking or message answers exactly like one that does not exist (404).

Every console route that takes an id from the URL or a form opens the row through one of
these, never with ``session.get`` alone::

    calendar = owned_calendar(db, owner, calendar_id)   # raises NotYours

``NotYours`` is answered by ``routes.install`` with the console's 404 page. A malformed id
(letters, a huge number) is the same ``NotYours``: the route can take ids as ``str``.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import joinedload

from calsync.access.sessions import SignedInOwner
from calsync.store.db import Database
from calsync.store.models import Booking, CalendarConnection, EventType, OutboxMessage

Row = TypeVar("Row", CalendarConnection, EventType, Booking)


class NotYours(Exception):
    """Unknown, or another owner's: the console does not say which."""


def number(text: str | int) -> int:
    """A row id from a URL; NotYours for anything that is not a plain number that fits."""
    if isinstance(text, int):
        return text
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    raise NotYours()


def owned(db: Database, owner: SignedInOwner, model: type[Row], row_id: int | str) -> Row:
    """The ``model`` row with this id if it is the owner's (``owner_id``); else NotYours.
    Booking ids are strings; the others numbers."""
    key: int | str
    if model is Booking:
        key = str(row_id).strip()
        if not key or len(key) > 32:
            raise NotYours()
    else:
        key = number(row_id)
    with db.reading() as session:
        row = session.scalars(
            select(model).where(model.id == key, model.owner_id == owner.owner_id)
        ).one_or_none()
    if row is None:
        raise NotYours()
    return row


def owned_calendar(
    db: Database, owner: SignedInOwner, calendar_id: int | str
) -> CalendarConnection:
    calendar = owned(db, owner, CalendarConnection, calendar_id)
    with db.reading() as session:
        # With its owner loaded, as sync.connections returns it.
        loaded = session.get(
            CalendarConnection, calendar.id, options=[joinedload(CalendarConnection.owner)]
        )
    if loaded is None:
        raise NotYours()
    return loaded


def owned_event_type(db: Database, owner: SignedInOwner, event_type_id: int | str) -> EventType:
    return owned(db, owner, EventType, event_type_id)


def owned_booking(db: Database, owner: SignedInOwner, booking_id: str) -> Booking:
    return owned(db, owner, Booking, booking_id)


def messages_of(owner: SignedInOwner) -> ColumnElement[bool]:
    """The condition that makes an outbox row the owner's: about one of their bookings, or
    sent to them about no booking (sign-in links, "reconnect Google")."""
    return or_(
        OutboxMessage.booking_id.in_(select(Booking.id).where(Booking.owner_id == owner.owner_id)),
        and_(
            OutboxMessage.booking_id.is_(None),
            # "Name <address>" as the header was written, or the bare address. autoescape:
            # endswith is LIKE, where "_" and "%" in an address would match other addresses.
            or_(
                OutboxMessage.recipient == owner.email,
                OutboxMessage.recipient.endswith(f"<{owner.email}>", autoescape=True),
            ),
        ),
    )


def owned_message(db: Database, owner: SignedInOwner, message_id: int | str) -> OutboxMessage:
    key = number(message_id)
    with db.reading() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.id == key, messages_of(owner))
        ).one_or_none()
    if row is None:
        raise NotYours()
    return row
