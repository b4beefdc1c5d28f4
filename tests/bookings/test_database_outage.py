"""A booking outlives a database that goes away at the worst moment: after its events were
written to the owner's calendar, before calsync recorded where (found while building the load
test with faults, tests/e2e/test_load_faults.py).

Before, the request failed with a database error and left the booking half made: its events in
the calendar, no record of them, and the confirmation emails held for good. The PostgreSQL
server here is a cluster of the test's own, really stopped and started again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import BookingRequest, book, get_booking
from calsync.calendars.base import CalendarItem
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.notify import outbox
from calsync.store.db import Database
from calsync.store.models import CalendarConnection, CalendarRole, OutboxStatus
from calsync.sync import connections as services
from calsync.sync.providers import open_provider
from tests.conftest import make_settings
from tests.support.own_postgres import OwnPostgres
from tests.support.world import OWNER, at, coaching, next_monday

pytestmark = pytest.mark.postgres


def stops_the_database_after(
    writes: int,
    pg: OwnPostgres,
    factory: Callable[[CalendarConnection], Any],
    restarts: list[threading.Timer],
) -> Callable[[CalendarConnection], Any]:
    """The real provider; once it has created ``writes`` events the real database is stopped,
    and started again two seconds later. This only decides when the fault happens."""
    done = 0

    def opened(connection: CalendarConnection) -> Any:
        provider = factory(connection)
        create = provider.create

        def create_then_stop(uid: str, text: str) -> CalendarItem:
            nonlocal done
            item = create(uid, text)
            done += 1
            if done == writes:
                pg.stop()
                restarts.append(threading.Timer(2, pg.start))
                restarts[-1].start()
            return item

        provider.create = create_then_stop
        return provider

    return opened


def test_a_booking_whose_database_stops_after_its_events_were_written_completes(
    own_postgres: OwnPostgres, radicale_calendar: str
) -> None:
    settings = make_settings(own_postgres.url)
    db = Database(own_postgres.url)
    db.migrate()
    restarts: list[threading.Timer] = []
    try:
        services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
        (calendar,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest(OWNER, radicale_calendar, role=CalendarRole.BOTH)
        )
        save_event_type(db, coaching(booking_calendar_id=calendar.id))
        monday = next_monday()
        request = BookingRequest(
            "coaching", "Zoë", "zoe@example.org", (at(monday, 9), at(monday, 11)), "UTC"
        )
        factory = stops_the_database_after(2, own_postgres, open_provider(settings), restarts)

        result = book(db, settings, request, provider_factory=factory)

        booking = get_booking(db, result.booking.id)
        assert all(s.href and s.etag for s in booking.sessions), "where the events are is known"
        provider = CalDAVProvider(radicale_calendar)
        try:
            on_server = {item.href: item.etag for item in provider.changes(None, {}).upserted}
        finally:
            provider.close()
        assert on_server == {s.href: s.etag for s in booking.sessions}
        statuses = {m.status for m in outbox.list_messages(db) if m.booking_id == booking.id}
        assert statuses == {OutboxStatus.READY}, "the confirmations may go"
    finally:
        for restart in restarts:
            restart.join()
        db.dispose()
