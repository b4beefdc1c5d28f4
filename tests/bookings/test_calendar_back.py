"""A move recorded while the owner's calendar was down is carried out as soon as a poll finds
the calendar back, not after its retry backoff (30 s, then 1, 2, 4 … minutes: after a ten-minute
outage a customer's move could wait a quarter of an hour more). Found by the load test with
faults; Radicale is really stopped and started."""

from __future__ import annotations

import icalendar

from calsync.bookings import changes
from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import BookingRequest, book
from calsync.bookings.polling import booking_poller
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import Actor, CalendarRole, ChangeStatus, SyncOutcome
from calsync.sync import connections as services
from tests.support.servers import ServerProcess
from tests.support.world import OWNER, at, coaching, next_monday


def test_a_move_waiting_for_its_calendar_goes_when_a_poll_finds_the_calendar_back(
    db: Database, settings: Settings, radicale_server: ServerProcess
) -> None:
    url = radicale_server.new_calendar()
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, url, role=CalendarRole.BOOKINGS)
    )
    save_event_type(db, coaching(booking_calendar_id=calendar.id))
    monday = next_monday()
    booked = book(
        db, settings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(monday, 9),), "UTC")
    )
    (session,) = booked.booking.sessions
    poller = booking_poller(db, settings)

    radicale_server.stop()
    try:
        moved = changes.reschedule(
            db, settings, booked.booking.id, {session.id: at(monday, 14)}, actor=Actor.OWNER
        )
        assert moved.change.status is ChangeStatus.PENDING
        (failed,) = poller.sync_now([calendar.id])
        assert failed.outcome is SyncOutcome.FAILED
        assert changes.apply_pending(db, settings) == 0, "not before its backoff while down"
    finally:
        radicale_server.start()

    (polled,) = poller.sync_now([calendar.id])
    assert polled.outcome is SyncOutcome.OK
    assert changes.apply_pending(db, settings) == 1, "due once its calendar answers again"
    (change,) = changes.changes_of(db, booked.booking.id)
    assert change.status is ChangeStatus.APPLIED
    provider = CalDAVProvider(url)
    try:
        (item,) = provider.changes(None, {}).upserted
    finally:
        provider.close()
    (event,) = icalendar.Calendar.from_ical(item.data).walk("VEVENT")
    assert event["DTSTART"].dt == at(monday, 14)
