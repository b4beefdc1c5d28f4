"""Telling people: turning a booking or a recorded change into notices and outbox rows.

Called inside the transaction that records the booking or change, so the emails exist exactly
when the change does (``sync.outbox`` holds them until the calendar has taken the change).
Who hears what: the customer (with their manage link), the owner and every stakeholder
(without it); for changes the owner made in their own calendar, only the customer and the
stakeholders, and only when ``mail.notify_owner_calendar_changes`` is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy.orm import Session

from calsync.bookings import links
from calsync.bookings.held import event_zone
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.compose import compose, installation_namespace, organizer_for
from calsync.notify.values import (
    ActedBy,
    Notice,
    NoticeKind,
    Person,
    Recipient,
    Role,
    SessionNotice,
)
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    Change,
    ChangeKind,
    Owner,
    SessionStatus,
    utcnow,
)

ACTED_BY = {
    Actor.CUSTOMER: ActedBy.CUSTOMER,
    Actor.OWNER: ActedBy.OWNER,
    Actor.OWNER_CALENDAR: ActedBy.OWNER_CALENDAR,
    Actor.SYSTEM: ActedBy.OWNER,
}


def recipients(booking: Booking, owner: Owner, *, include_owner: bool = True) -> list[Recipient]:
    people = [
        Recipient(
            booking.customer_email, booking.customer_name, Role.CUSTOMER, booking.customer_timezone
        )
    ]
    if include_owner:
        people.append(Recipient(owner.email, owner.name, Role.OWNER, owner.timezone))
    # Stakeholders are usually on the customer's side (a parent, an assistant).
    people += [
        Recipient(address, "", Role.STAKEHOLDER, booking.customer_timezone)
        for address in booking.stakeholders
    ]
    return people


def _session_notice(
    booked: BookedSession, zone: str, previous: tuple[datetime, datetime] | None = None
) -> SessionNotice:
    cancelled = booked.status is SessionStatus.CANCELLED
    return SessionNotice(
        uid=booked.uid,
        sequence=booked.sequence,
        position=booked.position,
        start=booked.start,
        end=booked.end,
        status="CANCELLED" if cancelled else "CONFIRMED",
        previous_start=previous[0] if previous else None,
        previous_end=previous[1] if previous else None,
        timezone=zone,
    )


def _notice(
    booking: Booking,
    owner: Owner,
    kind: NoticeKind,
    actor: Actor,
    sessions: Sequence[SessionNotice],
    *,
    change_key: str,
    settings: Settings,
    reason: str | None = None,
    fee_text: str | None = None,
) -> Notice:
    return Notice(
        kind=kind,
        acted_by=ACTED_BY[actor],
        booking_id=booking.id,
        title=booking.title,
        owner=Person(owner.email, owner.name),
        customer=Person(booking.customer_email, booking.customer_name),
        stakeholders=tuple(Person(a) for a in booking.stakeholders),
        sessions=tuple(sessions),
        package_size=len(booking.sessions),
        reason=reason,
        manage_url=links.current_link(settings, booking),
        fee_text=fee_text,
        change_key=f"{installation_namespace(settings.require_secret_key())}/{change_key}",
    )


def _messages(
    settings: Settings, notice: Notice, people: Iterable[Recipient]
) -> list[tuple[str, EmailMessage]]:
    now = utcnow()
    organizer = organizer_for(notice, settings.mail)
    return [
        (person.role.value, message)
        for person in people
        for message in compose(notice, person, mail=settings.mail, now=now, organizer=organizer)
    ]


def queue_booked(session: Session, settings: Settings, booking: Booking, owner: Owner) -> None:
    """The confirmation of a new booking (held until its events are written)."""
    zone = event_zone(session, booking)
    notice = _notice(
        booking,
        owner,
        NoticeKind.BOOKED,
        # Made through the API or CLI on the customer's behalf: told as the customer's booking.
        Actor.CUSTOMER,
        [_session_notice(s, zone) for s in booking.sessions],
        change_key=f"booking-{booking.id}",
        settings=settings,
    )
    outbox.enqueue(
        session,
        _messages(settings, notice, recipients(booking, owner)),
        booking_id=booking.id,
        box=outbox.sealing_box(settings),
    )


def queue_change(
    session: Session,
    settings: Settings,
    booking: Booking,
    owner: Owner,
    change: Change,
    receipt: str | None = None,
) -> None:
    """The update for a recorded reschedule or cancel (held until the calendar took it);
    ``receipt`` follows the fee line (the Stripe payment that paid it, or how a refund is paid)."""
    zone = event_zone(session, booking)
    by_id = {s.id: s for s in booking.sessions}
    sessions = []
    for item in change.items:
        booked = by_id[item.session_id]
        before = (item.before.start, item.before.end) if item.after else None
        sessions.append(_session_notice(booked, zone, before))
    kind = NoticeKind.RESCHEDULED if change.kind is ChangeKind.RESCHEDULE else NoticeKind.CANCELLED
    fee_text = None
    if change.fee is not None:
        label = "Reschedule fee" if change.kind is ChangeKind.RESCHEDULE else "Refund"
        fee_text = f"{label}: {change.fee} {booking.currency}"
        if receipt:
            fee_text += f" — {receipt}"
    notice = _notice(
        booking,
        owner,
        kind,
        change.actor,
        sessions,
        change_key=f"change-{change.id}",
        settings=settings,
        reason=change.reason,
        fee_text=fee_text,
    )
    outbox.enqueue(
        session,
        _messages(settings, notice, recipients(booking, owner)),
        booking_id=booking.id,
        box=outbox.sealing_box(settings),
        change_id=change.id,
    )


def queue_owner_calendar_change(
    session: Session,
    settings: Settings,
    booking: Booking,
    booked: BookedSession,
    previous: tuple[datetime, datetime] | None,
    key: str,
) -> None:
    """Tell the customer (and stakeholders) that the owner moved or deleted a session in
    their own calendar; sent at once, the calendar already has the change."""
    if not settings.mail.notify_owner_calendar_changes:
        return
    owner = session.get(Owner, booking.owner_id)
    assert owner is not None
    zone = event_zone(session, booking)
    kind = (
        NoticeKind.CANCELLED if booked.status is SessionStatus.CANCELLED else NoticeKind.RESCHEDULED
    )
    notice = _notice(
        booking,
        owner,
        kind,
        Actor.OWNER_CALENDAR,
        [_session_notice(booked, zone, previous)],
        change_key=key,
        settings=settings,
    )
    people = recipients(booking, owner, include_owner=False)
    outbox.enqueue(
        session,
        _messages(settings, notice, people),
        booking_id=booking.id,
        box=outbox.sealing_box(settings),
        held=False,
    )


def queue_new_link(
    session: Session,
    settings: Settings,
    booking: Booking,
    owner: Owner,
    *,
    change_key: str,
    actor: Actor = Actor.OWNER,
) -> None:
    """The booking's confirmation again, to the customer only, carrying its new manage link
    (``booking relink --email``); ready to send at once, the events have the link already."""
    zone = event_zone(session, booking)
    notice = _notice(
        booking,
        owner,
        NoticeKind.BOOKED,
        actor,
        [_session_notice(s, zone) for s in booking.sessions],
        change_key=change_key,
        settings=settings,
    )
    customer = recipients(booking, owner, include_owner=False)[:1]
    outbox.enqueue(
        session,
        _messages(settings, notice, customer),
        booking_id=booking.id,
        box=outbox.sealing_box(settings),
        held=False,
    )
