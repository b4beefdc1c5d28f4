"""Adoption of events the owner already has, against real Radicale and Xandikos: the link is
injected without touching anything else the owner wrote, never twice, and an owner edit that
lands between our read and our write is kept (the real server answers 412)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from calsync.bookings import adoption, links
from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import get_booking
from calsync.bookings.polling import booking_poller
from calsync.calendars.base import CalendarProvider
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.ical.event_edit import description_outside_block, link_of
from calsync.config import Settings
from calsync.notify import outbox
from calsync.store.db import Database
from calsync.store.models import AdoptionRule, BookingSource, CalendarConnection, OutboxMessage
from calsync.sync import connections as services
from tests.support.servers import ServerProcess, put_event
from tests.support.world import OWNER, coaching

OWNER_TEXT = "Bring the signed contract; parking: level -2, spot 14.\nAsk for Zoë, 東京 office."


def existing_event(uid: str, start: datetime, *, attendees: bool = True) -> str:
    end = start + timedelta(hours=1)
    people = (
        f"ORGANIZER;CN=Coach:mailto:{OWNER}\r\n"
        "ATTENDEE;CN=Zoë Client;PARTSTAT=ACCEPTED:mailto:zoe@example.org\r\n"
        "ATTENDEE;CN=Parent;PARTSTAT=NEEDS-ACTION:mailto:parent@example.org\r\n"
        if attendees
        else ""
    )
    description = OWNER_TEXT.replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//macOS 14//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Coaching with Zoë\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        f"DESCRIPTION:{description}\r\n{people}"
        "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class Owner:
    def __init__(self, db: Database, settings: Settings, server: ServerProcess, url: str) -> None:
        self.db, self.settings, self.server, self.url = db, settings, server, url
        services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
        username, password = server.auth or (None, None)
        (self.calendar,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest(OWNER, url, username, password)
        )
        self.event_type = save_event_type(
            db,
            coaching(),
        )
        self.start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
            days=3
        )

    def provider(self) -> CalDAVProvider:
        username, password = self.server.auth or (None, None)
        return CalDAVProvider(self.url, username=username, password=password)

    def poll(self, factory=None) -> None:
        poller = booking_poller(self.db, self.settings, provider_factory=factory)
        assert [r.error for r in poller.sync_now([self.calendar.id])] == [None]
        poller.stop()

    def data(self, href: str) -> str:
        provider = self.provider()
        try:
            return provider.get(href).data
        finally:
            provider.close()


@pytest.fixture
def owner(
    db: Database, settings: Settings, caldav_server: ServerProcess, caldav_calendar: str
) -> Owner:
    return Owner(db, settings, caldav_server, caldav_calendar)


def test_adoption_is_off_until_turned_on_and_dry_run_changes_nothing(owner: Owner) -> None:
    written = put_event(owner.url, existing_event("session-1", owner.start), auth=owner.server.auth)
    owner.poll()
    assert adoption.find_candidates(owner.db, owner.calendar.id) == []
    services.set_adoption(
        owner.db, owner.calendar.id, AdoptionRule.ATTENDEES, owner.event_type.id, None
    )
    (candidate,) = adoption.find_candidates(owner.db, owner.calendar.id)
    assert (candidate.uid, candidate.customer_email, candidate.stakeholders) == (
        "session-1",
        "zoe@example.org",
        ("parent@example.org",),
    )
    assert link_of(owner.data(written.href)) is None


def test_an_adopted_event_gets_the_link_and_keeps_everything_else(owner: Owner) -> None:
    written = put_event(owner.url, existing_event("session-1", owner.start), auth=owner.server.auth)
    put_event(
        owner.url,
        existing_event("private", owner.start + timedelta(days=1), attendees=False),
        auth=owner.server.auth,
    )
    services.set_adoption(
        owner.db, owner.calendar.id, AdoptionRule.ATTENDEES, owner.event_type.id, None
    )
    before = owner.data(written.href)
    owner.poll()  # the poller adopts after storing the delta

    after = owner.data(written.href)
    booking_id, link = link_of(after) or ("", "")
    booking = get_booking(owner.db, booking_id)
    assert booking.source is BookingSource.ADOPTED
    assert (booking.customer_email, booking.stakeholders) == (
        "zoe@example.org",
        ["parent@example.org"],
    )
    assert link.startswith(owner.settings.base_url + "/m/")
    assert description_outside_block(after) == description_outside_block(before) == OWNER_TEXT
    # Every property line we did not own is byte-for-byte what the owner's app wrote.
    ours = ("DESCRIPTION", "URL", "X-CALSYNC-BOOKING", " ")
    kept = [line for line in before.splitlines() if not line.startswith(ours)]
    assert kept == [line for line in after.splitlines() if not line.startswith(ours)]

    # Running adoption again adopts nothing and writes nothing.
    etag = owner.provider().get(written.href).etag
    assert adoption.adopt(owner.db, owner.settings, owner.calendar.id) == []
    owner.poll()
    assert owner.provider().get(written.href).etag == etag
    with owner.db.reading() as session:
        from sqlalchemy import func, select

        from calsync.store.models import Booking

        assert session.scalar(select(func.count()).select_from(Booking)) == 1


class OwnerEditsFirst(CalDAVProvider):
    """The real provider, with the owner's calendar app saving an edit right before our first
    write: the server then really answers 412 to our If-Match."""

    def __init__(self, owner: Owner) -> None:
        username, password = owner.server.auth or (None, None)
        super().__init__(owner.url, username=username, password=password)
        self.owner = owner
        self.raced = False

    def update(self, href: str, data: str, etag: str) -> str:
        if not self.raced:
            self.raced = True
            current = self.get(href)
            edited = current.data.replace(
                "SUMMARY:Coaching with Zoë", "SUMMARY:Coaching with Zoë (room 4)"
            )
            put_event(self.owner.server.url + href, edited, auth=self.owner.server.auth)
        return super().update(href, data, etag)


def test_an_owner_edit_between_our_read_and_write_is_kept(owner: Owner) -> None:
    written = put_event(owner.url, existing_event("session-1", owner.start), auth=owner.server.auth)
    services.set_adoption(
        owner.db, owner.calendar.id, AdoptionRule.ATTENDEES, owner.event_type.id, None
    )
    racing = OwnerEditsFirst(owner)

    def factory(connection: CalendarConnection) -> CalendarProvider:
        return racing

    owner.poll(factory)
    assert racing.raced
    after = owner.data(written.href)
    assert "SUMMARY:Coaching with Zoë (room 4)" in after
    assert link_of(after) is not None


def test_the_poller_adopts_new_events_and_adopt_takes_the_ones_already_there(owner: Owner) -> None:
    old = put_event(owner.url, existing_event("already-there", owner.start), auth=owner.server.auth)
    owner.poll()  # mirrored while adoption is still off
    services.set_adoption(
        owner.db, owner.calendar.id, AdoptionRule.ATTENDEES, owner.event_type.id, None
    )
    owner.poll()  # nothing changed: nothing looked at, nothing adopted
    assert link_of(owner.data(old.href)) is None

    new = put_event(
        owner.url,
        existing_event("added-later", owner.start + timedelta(days=1)),
        auth=owner.server.auth,
    )
    owner.poll()
    assert link_of(owner.data(new.href)) is not None
    assert link_of(owner.data(old.href)) is None

    (adopted,) = adoption.adopt(owner.db, owner.settings, owner.calendar.id)
    assert adopted.sessions[0].uid == "already-there"
    assert link_of(owner.data(old.href)) is not None


def _outbox(db: Database, settings: Settings) -> list[tuple[str, str]]:
    """(recipient, plain-text body) of every queued email."""
    with db.reading() as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    found = []
    for row in rows:
        message = message_from_bytes(
            outbox.unseal(outbox.sealing_box(settings), row.raw), policy=policy.default
        )
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        found.append((str(message["To"]), body.get_content()))
    return found


@pytest.mark.parametrize("email_customer", [True, False])
def test_an_adopted_customer_is_emailed_their_link_when_the_calendar_says_so(
    owner: Owner, email_customer: bool
) -> None:
    """Issue 12 item 7: adoption wrote the link into the event but told the customer nothing."""
    put_event(owner.url, existing_event("session-1", owner.start), auth=owner.server.auth)
    owner.poll()
    services.set_adoption(
        owner.db,
        owner.calendar.id,
        AdoptionRule.ATTENDEES,
        owner.event_type.id,
        None,
        email_customer=email_customer,
    )
    (adopted,) = adoption.adopt(owner.db, owner.settings, owner.calendar.id)
    sent = _outbox(owner.db, owner.settings)
    if not email_customer:
        assert sent == []
        return
    link = links.current_link(owner.settings, get_booking(owner.db, adopted.id))
    assert link is not None
    ((to, body),) = sent  # the customer only: the owner and the parent already have the event
    assert "zoe@example.org" in to
    assert link in body
