"""Bookings in a real CalDAV calendar (Radicale and Xandikos) on both databases: packages,
the personal link, races for one slot, relinking, and what the owner does to booked events."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.bookings import links
from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import (
    BookingRequest,
    SlotTaken,
    book,
    get_booking,
    relink,
    revoke_link,
)
from calsync.bookings.polling import booking_poller
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.ical.event_edit import description_outside_block, link_of
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import BookingStatus, CalendarRole, SessionStatus
from calsync.sync import connections as services
from tests.support.servers import ServerProcess, delete_event, put_event
from tests.support.world import OWNER, at, coaching, next_monday

ZONE = ZoneInfo("Europe/Berlin")


class Setup:
    def __init__(self, db: Database, settings: Settings, server: ServerProcess, url: str) -> None:
        self.db, self.settings, self.server, self.url = db, settings, server, url
        services.add_owner(db, name="Coach Carter", email=OWNER, timezone="Europe/Berlin")
        username, password = server.auth or (None, None)
        (self.calendar,) = services.add_caldav_calendar(
            db,
            settings,
            services.CalDAVRequest(OWNER, url, username, password, role=CalendarRole.BOTH),
        )
        self.event_type = save_event_type(
            db,
            coaching(
                booking_calendar_id=self.calendar.id,
            ),
        )
        self.monday = next_monday()

    def book(self, *starts: datetime, email: str = "zoe@example.org") -> object:
        return book(
            self.db,
            self.settings,
            BookingRequest("coaching", "Zoë Example", email, tuple(starts), "America/New_York"),
        )

    def provider(self) -> CalDAVProvider:
        username, password = self.server.auth or (None, None)
        return CalDAVProvider(self.url, username=username, password=password)

    def events(self) -> dict[str, icalendar.Event]:
        provider = self.provider()
        delta = provider.changes(None, {})
        provider.close()
        found = {}
        for item in delta.upserted:
            (event,) = icalendar.Calendar.from_ical(item.data).walk("VEVENT")
            found[str(event["UID"])] = event
        return found

    def poll(self) -> None:
        poller = booking_poller(self.db, self.settings)
        results = poller.sync_now([self.calendar.id])
        poller.stop()
        assert [r.error for r in results] == [None]


@pytest.fixture
def setup(
    db: Database, settings: Settings, caldav_server: ServerProcess, caldav_calendar: str
) -> Setup:
    return Setup(db, settings, caldav_server, caldav_calendar)


def token_of(url: str) -> str:
    return url.rsplit("/m/", 1)[1]


def test_a_package_becomes_one_event_per_session_with_the_link(setup: Setup) -> None:
    starts = [at(setup.monday, 9), at(setup.monday, 11), at(setup.monday + timedelta(days=2), 14)]
    result = setup.book(*starts)
    booking = result.booking
    assert [s.start for s in booking.sessions] == starts
    assert len({s.uid for s in booking.sessions}) == 3

    events = setup.events()
    assert set(events) == {s.uid for s in booking.sessions}
    for booked in booking.sessions:
        event = events[booked.uid]
        assert event["DTSTART"].dt == booked.start
        assert str(event["URL"]) == result.manage_url
        assert str(event["X-CALSYNC-BOOKING"]) == booking.id
        assert result.manage_url in str(event["DESCRIPTION"])
        attendee = (
            event["ATTENDEE"][0] if isinstance(event["ATTENDEE"], list) else event["ATTENDEE"]
        )
        assert str(attendee).lower() == "mailto:zoe@example.org"
        assert attendee.params["SCHEDULE-AGENT"] == "CLIENT"
        assert booked.href and booked.etag

    with setup.db.reading() as session:
        opened = links.booking_for_token(session, token_of(result.manage_url))
    assert opened is not None and opened.id == booking.id
    # The booked times are no longer offered.
    from calsync.bookings.event_types import find_slots

    free = find_slots(setup.db, setup.event_type, at(setup.monday, 0), at(setup.monday, 23))
    assert [s.start.astimezone(ZONE).hour for s in free] == [10, 12, 13, 14, 15, 16]


def test_a_time_that_is_not_free_is_refused_and_nothing_is_written(setup: Setup) -> None:
    put_event(
        setup.url,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:dentist\r\n"
        "DTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{at(setup.monday, 10).astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}\r\n"
        "DURATION:PT1H\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        auth=setup.server.auth,
    )
    # The dentist was added a moment ago; the booking's own fresh poll sees it.
    with pytest.raises(SlotTaken, match="is not free"):
        setup.book(at(setup.monday, 9), at(setup.monday, 10))
    assert set(setup.events()) == {"dentist"}


def test_two_customers_racing_for_one_slot_get_exactly_one_booking(setup: Setup) -> None:
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def attempt(email: str) -> None:
        barrier.wait()
        try:
            outcomes.append(setup.book(at(setup.monday, 15), email=email))
        except SlotTaken as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(f"c{n}@example.org",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["BookingResult", "SlotTaken"]
    taken = next(o for o in outcomes if isinstance(o, SlotTaken))
    assert "taken by another booking" in str(taken)
    assert len(setup.events()) == 1


def test_relink_replaces_the_link_and_keeps_the_owners_text(setup: Setup) -> None:
    result = setup.book(at(setup.monday, 9))
    (booked,) = result.booking.sessions
    # The owner adds notes to the event in their calendar app.
    provider = setup.provider()
    item = provider.get(booked.href)
    edited = item.data.replace("DESCRIPTION:", "DESCRIPTION:Bring the contract\\; room 4\\n\\n", 1)
    provider.update(item.href, edited, item.etag)
    owner_text = description_outside_block(provider.get(booked.href).data)

    new_url = relink(setup.db, setup.settings, result.booking.id)
    data = provider.get(booked.href).data
    provider.close()
    assert link_of(data) == (result.booking.id, new_url)
    assert description_outside_block(data) == owner_text
    assert "Bring the contract; room 4" in owner_text
    with setup.db.reading() as session:
        assert links.booking_for_token(session, token_of(result.manage_url)) is None
        assert links.booking_for_token(session, token_of(new_url)) is not None


def test_forged_truncated_revoked_and_expired_tokens_open_nothing(setup: Setup) -> None:
    result = setup.book(at(setup.monday, 9))
    token = token_of(result.manage_url)
    with setup.db.reading() as session:
        assert links.booking_for_token(session, token) is not None
        for bad in ("x" * len(token), token[:-1], token[:10], "", token + "A"):
            assert links.booking_for_token(session, bad) is None
        far_future = at(setup.monday, 9) + timedelta(
            days=setup.settings.bookings.link_grace_days + 1
        )
        assert links.booking_for_token(session, token, now=far_future) is None
    revoke_link(setup.db, result.booking.id)
    with setup.db.reading() as session:
        assert links.booking_for_token(session, token) is None


def test_owner_moves_and_deletes_are_followed_and_an_outage_cancels_nothing(setup: Setup) -> None:
    result = setup.book(at(setup.monday, 9), at(setup.monday, 11))
    first, second = result.booking.sessions
    provider = setup.provider()
    item = provider.get(first.href)
    moved = icalendar.Calendar.from_ical(item.data)
    event = next(iter(moved.walk("VEVENT")))
    event["DTSTART"].dt = at(setup.monday, 13)
    event["DTEND"].dt = at(setup.monday, 14)
    provider.update(first.href, moved.to_ical().decode(), item.etag)
    provider.close()

    setup.server.stop()
    poller = booking_poller(setup.db, setup.settings)
    (failed,) = poller.sync_now([setup.calendar.id])
    poller.stop()
    setup.server.start()
    assert failed.error
    assert [s.status for s in get_booking(setup.db, result.booking.id).sessions] == [
        SessionStatus.BOOKED,
        SessionStatus.BOOKED,
    ]

    setup.poll()
    booking = get_booking(setup.db, result.booking.id)
    assert booking.sessions[0].start == at(setup.monday, 13)
    assert [h.action for h in booking.history][-1] == "moved_by_owner"

    delete_event(
        setup.url.rstrip("/") + "/" + second.href.rsplit("/", 1)[1], auth=setup.server.auth
    )
    setup.poll()
    booking = get_booking(setup.db, result.booking.id)
    assert [s.status for s in booking.sessions] == [SessionStatus.BOOKED, SessionStatus.CANCELLED]
    assert booking.status is BookingStatus.ACTIVE
    assert [h.action for h in booking.history][-1] == "deleted_by_owner"
