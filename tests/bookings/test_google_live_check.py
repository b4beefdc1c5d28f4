"""The live check at commit time: Google's free/busy answer on top of the fresh poll, so time
that became busy in Google after calsync's poll cannot be booked twice. Against the fake
through the real client, on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from calsync.bookings import changes
from calsync.bookings.event_types import AvailabilityUnknown, save_event_type
from calsync.bookings.packages import BookingRequest, SlotTaken, book, get_booking
from calsync.calendars.ical.busy import AllDayMode
from calsync.config import GoogleSettings, Settings
from calsync.store.db import Database
from calsync.store.models import Actor, CalendarConnection
from calsync.sync import connections as services
from calsync.testing.google_fake import FakeGoogle
from tests.e2e.test_google_e2e import connect, owner, poll, utc
from tests.support.world import at, coaching, next_monday


class OwnerInTheGap(FakeGoogle):
    """The fake, with an action run just before it answers the next freeBusy query: what the
    owner does in Google between calsync's poll and its commit."""

    def __init__(self) -> None:
        super().__init__()
        self.before_freebusy: Callable[[], None] | None = None

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            if path.endswith("/freeBusy") and self.before_freebusy is not None:
                action, self.before_freebusy = self.before_freebusy, None
                action()
            return super().handle(method, path, query, headers, body)

    def freebusy_queries(self) -> int:
        return len([r for r in self.requests if r.path.endswith("/freeBusy")])


@pytest.fixture
def fake() -> Iterator[OwnerInTheGap]:
    with OwnerInTheGap() as server:
        yield server


@pytest.fixture
def gsettings(settings: Settings, fake: FakeGoogle) -> Settings:
    return settings.model_copy(update={"google": GoogleSettings(api_endpoint=fake.endpoint)})


def google_owner(db: Database, settings: Settings, fake: FakeGoogle) -> CalendarConnection:
    owner(db)
    calendar = connect(db, settings, fake)
    # Half-hourly starts, so a session can move onto part of its own time.
    save_event_type(db, coaching(booking_calendar_id=calendar.id, slot_step=timedelta(minutes=30)))
    poll(db, settings)
    return calendar


def owner_adds(fake: FakeGoogle, start: Any, end: Any) -> Callable[[], None]:
    return lambda: fake.owner_insert(
        {"summary": "Dentist", "start": {"dateTime": utc(start)}, "end": {"dateTime": utc(end)}}
    )


def test_time_the_owner_took_after_our_poll_is_not_booked(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    fake.before_freebusy = owner_adds(fake, at(mon, 10, 30), at(mon, 11, 30))
    request = BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9), at(mon, 11)))
    with pytest.raises(SlotTaken) as taken:
        book(db, gsettings, request)
    assert taken.value.start == at(mon, 11)
    # Nothing was written to Google: the only events are the owner's.
    assert [e.event["summary"] for e in fake.calendars["primary"].events.values()] == ["Dentist"]
    # The next poll brings the owner's event into the mirror, and other times still book.
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    assert len(made.booking.sessions) == 1


def test_our_own_events_and_what_the_mirror_knows_do_not_block(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    (session,) = made.booking.sessions
    # Half an hour later overlaps the session's own event, which Google reports busy.
    outcome = changes.reschedule(
        db, gsettings, made.booking.id, {session.id: at(mon, 9, 30)}, actor=Actor.CUSTOMER
    )
    assert outcome.change.status.value == "applied"
    assert get_booking(db, made.booking.id).sessions[0].start == at(mon, 9, 30)
    assert fake.freebusy_queries() == 2  # one at booking, one at the reschedule


def test_a_customer_reschedule_onto_time_taken_after_the_poll_is_refused(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    (session,) = made.booking.sessions
    fake.before_freebusy = owner_adds(fake, at(mon, 14), at(mon, 15))
    with pytest.raises(SlotTaken):
        changes.reschedule(
            db, gsettings, made.booking.id, {session.id: at(mon, 14)}, actor=Actor.CUSTOMER
        )
    assert get_booking(db, made.booking.id).sessions[0].start == at(mon, 9)


def test_unknown_free_busy_books_nothing(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    fake.before_freebusy = lambda: fake.inject(403, "forbidden")
    with pytest.raises(AvailabilityUnknown, match="could not be checked"):
        book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    assert fake.calendars["primary"].events == {}


def test_all_day_events_counted_free_are_not_brought_back_by_google(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    calendar = google_owner(db, gsettings, fake)
    with db.writing() as session:
        session.get(CalendarConnection, calendar.id).all_day = AllDayMode.FREE
    mon = next_monday()
    day = {"date": mon.isoformat()}
    fake.owner_insert(
        {"summary": "Offsite", "start": day, "end": {"date": str(mon + timedelta(1))}}
    )
    poll(db, gsettings)
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    assert made.booking.sessions[0].start == at(mon, 9)
    assert fake.freebusy_queries() == 0
    assert services.get_calendar(db, calendar.id).all_day is AllDayMode.FREE


def test_a_calendar_google_has_no_free_busy_for_books_nothing(
    db: Database, gsettings: Settings, fake: OwnerInTheGap
) -> None:
    calendar = google_owner(db, gsettings, fake)
    fake.freebusy_errors[services.get_calendar(db, calendar.id).url] = "backendError"
    mon = next_monday()
    with pytest.raises(AvailabilityUnknown, match="backendError"):
        book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    assert fake.calendars["primary"].events == {}
