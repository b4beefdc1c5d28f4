"""The change engine against real calendars on both databases: moving and cancelling sessions,
races, replays, owner edits at the same moment, and a calendar server that goes away."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.bookings import changes
from calsync.bookings.changes import ChangeRefused, ReplayMismatch, StaleBooking
from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import BookingRequest, SlotTaken, book, get_booking
from calsync.bookings.plan import ChangeField, RefusalKind
from calsync.bookings.polling import booking_poller
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.ical.event_edit import description_outside_block
from calsync.config import Settings
from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
)
from calsync.store.db import Database
from calsync.store.models import Actor, CalendarRole, CancelMode, ChangeStatus, SessionStatus
from calsync.sync import connections as services
from tests.support.servers import ServerProcess, put_event
from tests.support.world import OWNER, at, coaching, next_monday

ZONE = ZoneInfo("Europe/Berlin")


class Setup:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        server: ServerProcess,
        url: str,
        *,
        policy: ChangePolicy | None = None,
        conflicts: tuple[int, ...] = (),
        role: CalendarRole = CalendarRole.BOTH,
    ) -> None:
        self.db, self.settings, self.server, self.url = db, settings, server, url
        if not services.list_owners(db):
            services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
        username, password = server.auth or (None, None)
        (self.calendar,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest(OWNER, url, username, password, role=role)
        )
        self.event_type = save_event_type(
            db,
            coaching(
                booking_calendar_id=self.calendar.id,
                conflict_calendar_ids=conflicts,
                price=Decimal("300"),
                policy=policy or ChangePolicy(),
            ),
        )
        self.monday = next_monday()

    def book(self, *starts: datetime, email: str = "zoe@example.org"):
        return book(
            self.db,
            self.settings,
            BookingRequest("coaching", "Zoë", email, tuple(starts), "Asia/Tokyo"),
        ).booking

    def provider(self) -> CalDAVProvider:
        username, password = self.server.auth or (None, None)
        return CalDAVProvider(self.url, username=username, password=password)

    def event(self, href: str) -> icalendar.Event:
        provider = self.provider()
        try:
            data = provider.get(href).data
        finally:
            provider.close()
        return next(iter(icalendar.Calendar.from_ical(data).walk("VEVENT")))


@pytest.fixture
def setup(db: Database, settings: Settings, radicale_server: ServerProcess) -> Setup:
    return Setup(db, settings, radicale_server, radicale_server.new_calendar())


def test_rescheduling_two_of_three_moves_exactly_those_events(setup: Setup) -> None:
    mon = setup.monday
    booking = setup.book(at(mon, 9), at(mon, 11), at(mon, 13))
    first, second, third = booking.sessions
    before = {s.uid: setup.event(s.href) for s in booking.sessions}

    outcome = changes.reschedule(
        setup.db,
        setup.settings,
        booking.id,
        {first.id: at(mon + timedelta(days=1), 10), third.id: at(mon + timedelta(days=2), 15)},
        actor=Actor.CUSTOMER,
    )
    assert outcome.change.status is ChangeStatus.APPLIED
    assert outcome.fee is None
    for booked, expected in (
        (first, at(mon + timedelta(days=1), 10)),
        (third, at(mon + timedelta(days=2), 15)),
    ):
        event = setup.event(booked.href)
        assert str(event["UID"]) == booked.uid
        assert event["DTSTART"].dt == expected
        assert event["DTEND"].dt == expected + timedelta(hours=1)
        # Still written in the event type's zone, as it was booked (not in UTC).
        assert event["DTSTART"].params.get("TZID") == "Europe/Berlin"
        assert int(event["SEQUENCE"]) == int(before[booked.uid].get("SEQUENCE", 0)) + 1
    untouched = setup.event(second.href)
    assert untouched.to_ical() == before[second.uid].to_ical()
    stored = get_booking(setup.db, booking.id)
    assert [s.status for s in stored.sessions] == [
        SessionStatus.RESCHEDULED,
        SessionStatus.BOOKED,
        SessionStatus.RESCHEDULED,
    ]
    assert [s.reschedule_count for s in stored.sessions] == [1, 0, 1]


def test_the_owners_description_edit_and_our_move_both_survive(setup: Setup) -> None:
    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    provider = setup.provider()
    item = provider.get(booked.href)
    provider.update(
        booked.href,
        item.data.replace("DESCRIPTION:", "DESCRIPTION:Room 4\\, 2nd floor\\n\\n", 1),
        item.etag,
    )
    provider.close()
    changes.reschedule(
        setup.db,
        setup.settings,
        booking.id,
        {booked.id: at(setup.monday, 14)},
        actor=Actor.CUSTOMER,
    )
    provider = setup.provider()
    data = provider.get(booked.href).data
    provider.close()
    assert description_outside_block(data).startswith("Room 4, 2nd floor")
    assert setup.event(booked.href)["DTSTART"].dt == at(setup.monday, 14)


def test_the_owner_moving_the_event_first_wins_and_nothing_is_overwritten(setup: Setup) -> None:
    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    version_seen_by_customer = booking.version
    provider = setup.provider()
    item = provider.get(booked.href)
    calendar = icalendar.Calendar.from_ical(item.data)
    event = next(iter(calendar.walk("VEVENT")))
    event["DTSTART"].dt, event["DTEND"].dt = at(setup.monday, 16), at(setup.monday, 17)
    provider.update(booked.href, calendar.to_ical().decode(), item.etag)
    provider.close()

    # The request's poll stores the mirror only (the worker follows the owner's move up), so
    # the change is recorded and then stops at the event the owner moved: a conflict.
    outcome = changes.reschedule(
        setup.db,
        setup.settings,
        booking.id,
        {booked.id: at(setup.monday, 11)},
        actor=Actor.CUSTOMER,
        expected_version=version_seen_by_customer,
    )
    assert outcome.change.status is ChangeStatus.CONFLICT
    assert setup.event(booked.href)["DTSTART"].dt == at(setup.monday, 16)
    booking_poller(setup.db, setup.settings).sync_now([setup.calendar.id])  # the worker's next tick
    assert setup.event(booked.href)["DTSTART"].dt == at(setup.monday, 16)
    assert get_booking(setup.db, booking.id).sessions[0].start == at(setup.monday, 16)
    with pytest.raises(StaleBooking):
        changes.reschedule(  # a page still showing the booking as it was
            setup.db,
            setup.settings,
            booking.id,
            {booked.id: at(setup.monday, 12)},
            actor=Actor.CUSTOMER,
            expected_version=version_seen_by_customer + 1,
        )


def test_the_same_request_twice_changes_the_calendar_once(setup: Setup) -> None:
    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    target = {booked.id: at(setup.monday, 15)}
    first = changes.reschedule(
        setup.db, setup.settings, booking.id, target, actor=Actor.CUSTOMER, idempotency_key="k1"
    )
    etag = setup.provider().get(booked.href).etag
    again = changes.reschedule(
        setup.db, setup.settings, booking.id, target, actor=Actor.CUSTOMER, idempotency_key="k1"
    )
    assert again.replayed and again.change.id == first.change.id
    assert setup.provider().get(booked.href).etag == etag
    assert int(setup.event(booked.href)["SEQUENCE"]) == 1
    with pytest.raises(ReplayMismatch):
        changes.reschedule(
            setup.db,
            setup.settings,
            booking.id,
            {booked.id: at(setup.monday, 16)},
            actor=Actor.CUSTOMER,
            idempotency_key="k1",
        )


def test_two_customers_racing_for_one_free_slot_one_wins(setup: Setup) -> None:
    mon = setup.monday
    a = setup.book(at(mon, 9), email="a@example.org")
    b = setup.book(at(mon, 10), email="b@example.org")
    wanted = at(mon + timedelta(days=1), 14)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def move(booking_id: str, session_id: int) -> None:
        barrier.wait()
        try:
            outcomes.append(
                changes.reschedule(
                    setup.db, setup.settings, booking_id, {session_id: wanted}, actor=Actor.CUSTOMER
                )
            )
        except SlotTaken as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=move, args=(a.id, a.sessions[0].id)),
        threading.Thread(target=move, args=(b.id, b.sessions[0].id)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(isinstance(o, SlotTaken) for o in outcomes) == [False, True]
    starts = [get_booking(setup.db, x.id).sessions[0].start for x in (a, b)]
    assert starts.count(wanted) == 1


def test_cancel_marks_the_event_cancelled_and_free_or_deletes_it(setup: Setup) -> None:
    booking = setup.book(at(setup.monday, 9), at(setup.monday, 11))
    first, second = booking.sessions
    outcome = changes.cancel(setup.db, setup.settings, booking.id, [first.id], actor=Actor.CUSTOMER)
    assert outcome.change.status is ChangeStatus.APPLIED
    event = setup.event(first.href)
    assert (str(event["STATUS"]), str(event["TRANSP"])) == ("CANCELLED", "TRANSPARENT")
    assert str(event["SUMMARY"]).startswith("Cancelled: ")
    assert int(event["SEQUENCE"]) == 1

    with setup.db.writing() as session:
        from calsync.store.models import CalendarConnection

        session.get(CalendarConnection, setup.calendar.id).cancel_mode = CancelMode.DELETE
    changes.cancel(setup.db, setup.settings, booking.id, [second.id], actor=Actor.CUSTOMER)
    provider = setup.provider()
    assert second.href not in {i.href for i in provider.changes(None, {}).upserted}
    provider.close()
    assert get_booking(setup.db, booking.id).status.value == "cancelled"


def test_bad_requests_are_refused_and_change_nothing(
    db: Database, settings: Settings, radicale_server: ServerProcess
) -> None:
    setup = Setup(
        db,
        settings,
        radicale_server,
        radicale_server.new_calendar(),
        policy=ChangePolicy(
            cancel=ActionRule(Permission.ANYTIME, None, ReasonRule.REQUIRED),
            reschedule=ActionRule(Permission.UNTIL, timedelta(hours=24)),
            reschedule_fee=Fee(FeeKind.PERCENT, Decimal("10")),
        ),
    )
    mine = setup.book(at(setup.monday, 9), at(setup.monday, 11))
    other = setup.book(at(setup.monday, 13), email="other@example.org")
    session = mine.sessions[0]

    with pytest.raises(ChangeRefused) as foreign:
        changes.reschedule(
            db,
            settings,
            mine.id,
            {other.sessions[0].id: at(setup.monday, 15)},
            actor=Actor.CUSTOMER,
        )
    assert foreign.value.refusal.kind is RefusalKind.NOT_IN_BOOKING
    with pytest.raises(SlotTaken):  # 20:00 is outside working hours
        changes.reschedule(
            db, settings, mine.id, {session.id: at(setup.monday, 20)}, actor=Actor.CUSTOMER
        )
    with pytest.raises(ChangeRefused) as past:
        changes.reschedule(
            db,
            settings,
            mine.id,
            {session.id: at(setup.monday - timedelta(days=14), 10)},
            actor=Actor.CUSTOMER,
        )
    assert past.value.refusal.kind is RefusalKind.PAST
    with pytest.raises(SlotTaken):  # someone else's session is there
        changes.reschedule(
            db, settings, mine.id, {session.id: at(setup.monday, 13)}, actor=Actor.CUSTOMER
        )
    with pytest.raises(ChangeRefused) as missing:
        changes.cancel(db, settings, mine.id, [session.id], actor=Actor.CUSTOMER, reason="  ")
    assert missing.value.field is ChangeField.REASON
    assert missing.value.refusal.kind is RefusalKind.REASON_REQUIRED
    with pytest.raises(ChangeRefused) as same:
        changes.reschedule(
            db,
            settings,
            mine.id,
            {session.id: at(setup.monday, 15), mine.sessions[1].id: at(setup.monday, 15)},
            actor=Actor.CUSTOMER,
        )
    assert same.value.refusal.kind is RefusalKind.SAME_TIME
    assert get_booking(db, mine.id).version == mine.version
    assert setup.event(session.href)["DTSTART"].dt == at(setup.monday, 9)

    # Two sessions moved: the fee is 10% of the per-session value (300 / 2) for each.
    outcome = changes.reschedule(
        db,
        settings,
        mine.id,
        {session.id: at(setup.monday, 15), mine.sessions[1].id: at(setup.monday, 16)},
        actor=Actor.CUSTOMER,
    )
    assert outcome.fee == Decimal("30.00")
    # Inside the 24-hour notice the customer may not reschedule; the owner may.
    soon = datetime.combine(setup.monday, time(15), ZONE) - timedelta(hours=2)
    with pytest.raises(ChangeRefused) as late:
        changes.reschedule(
            db,
            settings,
            mine.id,
            {session.id: at(setup.monday + timedelta(days=1), 9)},
            actor=Actor.CUSTOMER,
            now=soon,
        )
    assert late.value.refusal.kind is RefusalKind.NOT_ALLOWED
    assert "up to 1 day before" in (late.value.refusal.policy_reason or "")
    owner_move = changes.reschedule(
        db,
        settings,
        mine.id,
        {session.id: at(setup.monday + timedelta(days=1), 9)},
        actor=Actor.OWNER,
        now=soon,
    )
    assert owner_move.change.status is ChangeStatus.APPLIED


def test_a_calendar_outage_leaves_the_change_pending_then_applies_it_once(
    db: Database, settings: Settings, radicale_server: ServerProcess, xandikos_server: ServerProcess
) -> None:
    conflicts = Setup.__new__(Setup)  # a conflicts-only calendar on another server
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    (conflict_calendar,) = services.add_caldav_calendar(
        db,
        settings,
        services.CalDAVRequest(OWNER, xandikos_server.new_calendar(), role=CalendarRole.CONFLICTS),
    )
    setup = Setup(
        db,
        settings,
        radicale_server,
        radicale_server.new_calendar(),
        conflicts=(conflict_calendar.id,),
        role=CalendarRole.BOOKINGS,
    )
    del conflicts
    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    radicale_server.stop()
    try:
        outcome = changes.reschedule(
            db, settings, booking.id, {booked.id: at(setup.monday, 15)}, actor=Actor.CUSTOMER
        )
        assert outcome.change.status is ChangeStatus.PENDING
        assert outcome.change.message
        assert changes.apply_pending(db, settings) == 0  # not due yet: it waits before retrying
    finally:
        radicale_server.start()
    with db.writing() as session:
        from calsync.store.models import Change

        session.get(Change, outcome.change.id).next_attempt_at = outcome.change.created_at
    assert changes.apply_pending(db, settings) == 1
    assert changes.apply_pending(db, settings) == 0
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED
    event = setup.event(booked.href)
    assert event["DTSTART"].dt == at(setup.monday, 15)
    assert int(event["SEQUENCE"]) == 1
    booking_poller(db, settings).sync_now()
    assert get_booking(db, booking.id).sessions[0].start == at(setup.monday, 15)


def test_a_poll_that_read_the_calendar_before_our_move_does_not_undo_it(setup: Setup) -> None:
    from calsync.bookings.owner_changes import apply_owner_changes
    from calsync.sync.mirror import ExpandedItem

    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    provider = setup.provider()
    stale = provider.get(booked.href)  # what a concurrent poll read a moment before our move
    provider.close()
    changes.reschedule(
        setup.db,
        setup.settings,
        booking.id,
        {booked.id: at(setup.monday, 14)},
        actor=Actor.CUSTOMER,
    )
    with setup.db.writing() as session:
        moved = apply_owner_changes(
            session,
            setup.settings,
            setup.calendar.id,
            [ExpandedItem(stale.href, stale.etag, booked.uid, stale.data, [])],
            [],
        )
    assert moved == 0
    assert get_booking(setup.db, booking.id).sessions[0].start == at(setup.monday, 14)


class OwnerMovesFirst(CalDAVProvider):
    """The real provider, with the owner's calendar app moving the event right before our
    first read of it: our change then meets the owner's version on the real server."""

    def __init__(self, setup: Setup, new_start: datetime) -> None:
        username, password = setup.server.auth or (None, None)
        super().__init__(setup.url, username=username, password=password)
        self.setup, self.new_start, self.moved = setup, new_start, False

    def get(self, href: str):
        if not self.moved:
            self.moved = True
            item = super().get(href)
            calendar = icalendar.Calendar.from_ical(item.data)
            event = next(iter(calendar.walk("VEVENT")))
            event["DTSTART"].dt = self.new_start
            event["DTEND"].dt = self.new_start + timedelta(hours=1)
            put_event(
                self.setup.server.url + href,
                calendar.to_ical().decode(),
                auth=self.setup.server.auth,
            )
        return super().get(href)


def test_an_owner_move_landing_just_before_our_write_stops_the_reschedule(setup: Setup) -> None:
    booking = setup.book(at(setup.monday, 9))
    (booked,) = booking.sessions
    racing = OwnerMovesFirst(setup, at(setup.monday, 16))
    outcome = changes.reschedule(
        setup.db,
        setup.settings,
        booking.id,
        {booked.id: at(setup.monday, 11)},
        actor=Actor.CUSTOMER,
        provider_factory=lambda connection: racing,
    )
    assert outcome.change.status is ChangeStatus.CONFLICT
    assert "changed session 1 in their calendar" in (outcome.change.message or "")
    assert setup.event(booked.href)["DTSTART"].dt == at(setup.monday, 16)
    # The next poll brings the session to where the owner put it.
    booking_poller(setup.db, setup.settings).sync_now([setup.calendar.id])
    assert get_booking(setup.db, booking.id).sessions[0].start == at(setup.monday, 16)
