"""A booking that fails halfway leaves nothing in the owner's calendar, even when the calendar
went down between its events (found by the load test with faults: a package's first session
was written, the server stopped before the second, and the clean-up could not reach it either,
so the owner kept an appointment for a booking that does not exist). Radicale is really stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from calsync.bookings.event_types import save_event_type
from calsync.bookings.leftovers import remove_leftovers
from calsync.bookings.packages import BookingRequest, CalendarWriteFailed, book
from calsync.bookings.polling import booking_poller
from calsync.calendars.base import CalendarItem
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings
from calsync.notify import outbox
from calsync.store.db import Database
from calsync.store.models import (
    BookedSession,
    Booking,
    BookingStatus,
    CalendarConnection,
    CalendarRole,
    HistoryAction,
    OutboxStatus,
)
from calsync.sync import connections as services
from calsync.sync.providers import open_provider
from tests.support.servers import ServerProcess
from tests.support.world import OWNER, at, coaching, next_monday


def server_goes_down_after_one_event(
    server: ServerProcess, factory: Callable[[CalendarConnection], Any]
) -> Callable[[CalendarConnection], Any]:
    """The real provider; the real server is stopped right after the first event is written.
    This only decides when the fault happens."""

    def opened(connection: CalendarConnection) -> Any:
        provider = factory(connection)
        create = provider.create

        def create_then_stop(uid: str, text: str) -> CalendarItem:
            item = create(uid, text)
            server.stop()
            return item

        provider.create = create_then_stop
        return provider

    return opened


def on_server(url: str) -> list[str]:
    provider = CalDAVProvider(url)
    try:
        return [item.href for item in provider.changes(None, {}).upserted]
    finally:
        provider.close()


def test_the_events_of_a_booking_that_failed_while_the_calendar_was_down_are_removed_later(
    db: Database, settings: Settings, radicale_server: ServerProcess
) -> None:
    url = radicale_server.new_calendar()
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, url, role=CalendarRole.BOTH)
    )
    save_event_type(db, coaching(booking_calendar_id=calendar.id))
    poller = booking_poller(db, settings)
    poller.sync_now()
    monday = next_monday()
    request = BookingRequest(
        "coaching", "Zoë", "zoe@example.org", (at(monday, 9), at(monday, 11)), "UTC"
    )
    factory = server_goes_down_after_one_event(radicale_server, open_provider(settings))
    try:
        with pytest.raises(CalendarWriteFailed):
            book(db, settings, request, provider_factory=factory)
        assert remove_leftovers(db, settings) == 0, "the calendar is still down"
    finally:
        radicale_server.start()
    assert len(on_server(url)) == 1, "the first session's event was left behind"
    poller.sync_now()  # the mirror now holds it too

    assert remove_leftovers(db, settings) == 1
    assert on_server(url) == []
    assert remove_leftovers(db, settings) == 0, "once is enough"
    poller.sync_now()  # its removal is not taken for an owner's cancellation
    with db.reading() as session:
        (booking,) = session.scalars(select(Booking)).all()
        assert booking.status is BookingStatus.FAILED
    assert {m.status for m in outbox.list_messages(db)} == {OutboxStatus.DROPPED}


def test_an_event_left_without_an_etag_is_left_alone(
    db: Database, settings: Settings, caldav_server: ServerProcess
) -> None:
    """Without the ETag calsync cannot tell whether the owner changed the event since, so it is
    not deleted (an If-Match of "" is no condition to some servers), and not tried again."""
    url = caldav_server.new_calendar()
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, url, role=CalendarRole.BOTH)
    )
    save_event_type(db, coaching(booking_calendar_id=calendar.id))
    booking_poller(db, settings).sync_now()
    monday = next_monday()
    request = BookingRequest(
        "coaching", "Zoë", "zoe@example.org", (at(monday, 9), at(monday, 11)), "UTC"
    )
    factory = server_goes_down_after_one_event(caldav_server, open_provider(settings))
    try:
        with pytest.raises(CalendarWriteFailed):
            book(db, settings, request, provider_factory=factory)
    finally:
        caldav_server.start()
    with db.writing() as session:
        (left,) = session.scalars(select(BookedSession).where(BookedSession.href.is_not(None)))
        left.etag = None  # as when the server's answer to the write carried no ETag
    assert len(on_server(url)) == 1

    # Both real servers refuse If-Match "" (412), but a server may take it as no condition at
    # all; so the real provider is watched for what it is asked to send, which is nothing.
    deletes: list[tuple[str, str]] = []

    def watched(connection: CalendarConnection) -> Any:
        provider = open_provider(settings)(connection)
        delete = provider.delete

        def recorded(href: str, etag: str) -> None:
            deletes.append((href, etag))
            delete(href, etag)

        provider.delete = recorded
        return provider

    assert remove_leftovers(db, settings, watched) == 0
    assert deletes == [], "no DELETE without the ETag we wrote"
    assert len(on_server(url)) == 1, "the event, perhaps changed by the owner, is kept"
    with db.reading() as session:
        assert (
            session.scalars(select(BookedSession.href).where(BookedSession.href.is_not(None))).all()
            == []
        )


def test_a_failed_booking_recorded_twice_has_one_failed_line(
    db: Database, settings: Settings, radicale_server: ServerProcess, monkeypatch: Any
) -> None:
    """``Database.persist`` runs its work again when the database's answer was lost, which may
    be after the first run committed. A fault a real database does not produce on cue: the
    work is run (and committed) once more right after the first commit."""
    url = radicale_server.new_calendar()
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, url, role=CalendarRole.BOTH)
    )
    save_event_type(db, coaching(booking_calendar_id=calendar.id))
    booking_poller(db, settings).sync_now()
    monday = next_monday()
    request = BookingRequest(
        "coaching", "Zoë", "zoe@example.org", (at(monday, 9), at(monday, 11)), "UTC"
    )
    persist = db.persist

    def twice(work: Callable[[Any], Any], **kwargs: Any) -> Any:
        persist(work, **kwargs)
        return persist(work, **kwargs)

    monkeypatch.setattr(db, "persist", twice)
    factory = server_goes_down_after_one_event(radicale_server, open_provider(settings))
    try:
        with pytest.raises(CalendarWriteFailed):
            book(db, settings, request, provider_factory=factory)
    finally:
        radicale_server.start()
    with db.reading() as session:
        (booking,) = session.scalars(select(Booking)).all()
        assert booking.status is BookingStatus.FAILED
        failed = [h for h in booking.history if h.action is HistoryAction.FAILED]
    assert len(failed) == 1
