"""The change engine's promises under races and outages (issue 17 items 1, 2 and 7; issue 11.3).

- A commit never relies on busy time older than the request, even while another worker holds
  the calendar's lease with a poll in flight (a slow relay keeps it in flight).
- The request-time refresh stores the mirror and nothing else: no adoption, no link writes.
- Two reschedules of one session across a calendar outage end at the second time, with no
  false "the owner changed it" and the customer's emails intact.
- A replay (same idempotency key / same form) answers with the original change whatever the
  state is now, also for copies sent at the same moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from calsync.bookings import changes
from calsync.bookings.event_types import EventTypeSpec, save_event_type
from calsync.bookings.packages import BookingRequest, SlotTaken, book, get_booking
from calsync.bookings.polling import booking_poller
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings
from calsync.policy.change_policy import ChangePolicy
from calsync.policy.hours import parse_weekly_hours
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    AdoptionRule,
    Booking,
    BookingStatus,
    CalendarConnection,
    CalendarRole,
    Change,
    ChangeStatus,
    OutboxMessage,
    OutboxStatus,
)
from calsync.sync import connections as services
from calsync.sync.fresh_busy import BusyTimeNotFresh
from tests.support.manage_shop import OWNER, Booked, Shop, get_form, post_form
from tests.support.servers import ServerProcess, put_event
from tests.support.slowproxy import SlowProxy
from tests.support.world import at, next_monday
from tests.web.test_manage_page import browser, change_id, confirm_reschedule, send

HOUR = timedelta(hours=1)


def owner_event(uid: str, start: Any, end: Any, summary: str = "Dentist") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//owner//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start.astimezone(_utc()):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{end.astimezone(_utc()):%Y%m%dT%H%M%SZ}\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _utc() -> Any:
    from datetime import UTC

    return UTC


def half_hourly(shop: Shop, policy: ChangePolicy | None = None) -> None:
    """Coaching on the half hour, so 10:30 is offered next to 10:00."""
    save_event_type(
        shop.db,
        EventTypeSpec(
            owner_email=OWNER,
            slug="coaching",
            title="Coaching",
            duration=HOUR,
            slot_step=timedelta(minutes=30),
            timezone="Europe/Berlin",
            weekly_hours=parse_weekly_hours(["mon-fri 09:00-17:00"]),
            booking_calendar_id=shop.calendar_id,
            price=Decimal(0),
            policy=policy or ChangePolicy(),
        ),
    )


def server_events(url: str) -> dict[str, tuple[Any, Any]]:
    """UID → (start, end) of every event the CalDAV server holds, read directly."""
    import icalendar

    provider = CalDAVProvider(url)
    try:
        delta = provider.changes(None, {})
    finally:
        provider.close()
    found = {}
    for item in delta.upserted:
        (event,) = icalendar.Calendar.from_ical(item.data).walk("VEVENT")
        found[str(event["UID"])] = (event["DTSTART"].dt, event["DTEND"].dt)
    return found


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- #17.1: a poll held by another worker while a booking commits ------------------------------


class HeldPoll:
    """A worker's poll of the calendar kept in flight (its lease held) by the slow relay."""

    def __init__(self, db: Database, settings: Settings, proxy: SlowProxy, calendar_id: int):
        self.db, self.proxy, self.calendar_id = db, proxy, calendar_id
        self.poller = booking_poller(db, settings, worker_id="other-worker")
        proxy.delay = 600
        self.thread = threading.Thread(target=self.poller.sync_now, args=([calendar_id],))
        self.thread.start()
        wait_for(lambda: proxy.waiting >= 1, 30, "the other worker's poll to be in flight")
        assert services.get_calendar(db, calendar_id).lease_owner == "other-worker"
        proxy.hold_current()  # only that poll stays stuck; new connections pass at once

    def release(self) -> None:
        self.proxy.delay = 0
        self.thread.join(60)
        self.poller.stop()


@pytest.fixture
def proxy(radicale_server: ServerProcess) -> Iterator[SlowProxy]:
    relay = SlowProxy(radicale_server.port)
    yield relay
    relay.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_booking_never_lands_on_an_owner_event_added_while_another_worker_polls(
    postgres_url: str, radicale_server: ServerProcess, proxy: SlowProxy
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(postgres_url)
    db = Database(postgres_url)
    db.migrate()
    try:
        url = radicale_server.new_calendar()
        shop = Shop(db, settings, proxy.url_for(url))
        half_hourly(shop)
        monday = next_monday()
        booking_poller(db, settings).sync_now([shop.calendar_id])
        # A booking to move later, and the reschedule's target day kept free.
        moved = shop.book(at(monday, 14), email="ann@example.org")

        held = HeldPoll(db, settings, proxy, shop.calendar_id)
        try:
            put_event(url, owner_event("dentist-1", at(monday, 10), at(monday, 11)))
            put_event(
                url,
                owner_event(
                    "dentist-2",
                    at(monday + timedelta(days=1), 10),
                    at(monday + timedelta(days=1), 11),
                ),
            )
            # Refused, or (never here: the server answers) asked to try again in a moment. The
            # delta read alongside the other worker's poll holds the owner's new event.
            with pytest.raises((SlotTaken, BusyTimeNotFresh)) as refused:
                book(
                    db,
                    settings,
                    BookingRequest("coaching", "Zoë", "zoe@example.org", (at(monday, 10, 30),)),
                )
            assert refused.type is SlotTaken
            with pytest.raises((SlotTaken, BusyTimeNotFresh)) as refused:
                changes.reschedule(
                    db,
                    settings,
                    moved.id,
                    {moved.session_ids[0]: at(monday + timedelta(days=1), 10, 30)},
                    actor=Actor.CUSTOMER,
                )
            assert issubclass(refused.type, SlotTaken)  # a TimeTaken, not "try again"
            assert services.get_calendar(db, shop.calendar_id).lease_owner == "other-worker"
        finally:
            held.release()
        events = server_events(url)
        assert set(events) == {"dentist-1", "dentist-2", moved.uids[0]}
        assert events[moved.uids[0]][0] == at(monday, 14)
        with db.reading() as session:
            assert session.scalar(select(Booking.id).where(Booking.id != moved.id)) is None
    finally:
        db.dispose()


# -- #11.3: the customer's request makes no adoption and writes no link -------------------------


def test_a_customer_reschedule_adopts_nothing_and_writes_into_no_other_event(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> None:
    shop = Shop(db, settings, radicale_calendar)
    half_hourly(shop)
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    booking_poller(db, settings).sync_now([shop.calendar_id])
    with db.writing() as session:
        event_type_id = session.scalar(select(Booking.event_type_id))
        calendar = session.get(CalendarConnection, shop.calendar_id)
        calendar.adopt = AdoptionRule.ALL
        calendar.adopt_event_type_id = event_type_id
    # An owner event that adoption would turn into a booking (an attendee other than the owner).
    adoptable = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//owner//EN\r\nBEGIN:VEVENT\r\n"
        "UID:client-call\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{at(monday, 13).astimezone(_utc()):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{at(monday, 14).astimezone(_utc()):%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Coaching with Max\r\n"
        f"ORGANIZER:mailto:{OWNER}\r\nATTENDEE;CN=Max:mailto:max@example.org\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    written = put_event(radicale_calendar, adoptable)
    provider = CalDAVProvider(radicale_calendar)
    try:
        before = provider.get(written.href)
    finally:
        provider.close()

    outcome = changes.reschedule(
        db, settings, booked.id, {booked.session_ids[0]: at(monday, 15)}, actor=Actor.CUSTOMER
    )
    assert outcome.change.status is ChangeStatus.APPLIED

    provider = CalDAVProvider(radicale_calendar)
    try:
        after = provider.get(written.href)
    finally:
        provider.close()
    assert (after.etag, after.data) == (before.etag, before.data)
    with db.reading() as session:
        assert list(session.scalars(select(Booking.id))) == [booked.id]
    # The worker's next poll does what the request left for it: the event is adopted then.
    booking_poller(db, settings).sync_now([shop.calendar_id])
    with db.reading() as session:
        assert len(list(session.scalars(select(Booking.id)))) == 2


# -- #17.2: two reschedules of one session across an outage --------------------------------------


def test_a_second_reschedule_during_a_pending_one_ends_at_the_second_time(
    db: Database,
    settings: Settings,
    radicale_server: ServerProcess,
    radicale_calendar: str,
    xandikos_server: ServerProcess,
) -> None:
    # The sessions go to Radicale, which goes down; busy time comes from Xandikos, which stays.
    shop = Shop(db, settings, radicale_calendar)
    with db.writing() as session:
        session.get(CalendarConnection, shop.calendar_id).role = CalendarRole.BOOKINGS
    (conflicts,) = services.add_caldav_calendar(
        db,
        settings,
        services.CalDAVRequest(OWNER, xandikos_server.new_calendar(), role=CalendarRole.CONFLICTS),
    )
    save_event_type(
        db,
        EventTypeSpec(
            owner_email=OWNER,
            slug="coaching",
            title="Coaching",
            duration=HOUR,
            timezone="Europe/Berlin",
            weekly_hours=parse_weekly_hours(["mon-fri 09:00-17:00"]),
            booking_calendar_id=shop.calendar_id,
            conflict_calendar_ids=(conflicts.id,),
        ),
    )
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    (session_id,) = booked.session_ids
    with db.reading() as session:
        owner_notes_before = len(
            list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.change_id.is_(None))))
        )

    radicale_server.stop()
    try:
        first = changes.reschedule(
            db, settings, booked.id, {session_id: at(monday, 11)}, actor=Actor.CUSTOMER
        )
        assert first.change.status is ChangeStatus.PENDING
    finally:
        radicale_server.start()
    second = changes.reschedule(
        db, settings, booked.id, {session_id: at(monday, 15)}, actor=Actor.CUSTOMER
    )
    assert second.change.status is not ChangeStatus.CONFLICT

    # The worker's ticks: apply what is pending (made due now), then poll the calendar.
    with db.writing() as session:
        for change in session.scalars(select(Change)):
            change.next_attempt_at = change.created_at
    for _ in range(2):
        changes.apply_pending(db, settings)
        booking_poller(db, settings).sync_now([shop.calendar_id])

    assert shop.event_times()[booked.uids[0]][0] == at(monday, 15)
    stored = get_booking(db, booked.id)
    assert stored.sessions[0].start == at(monday, 15)
    assert "moved_by_owner" not in [h.action for h in stored.history]
    assert [c.status for c in changes.changes_of(db, booked.id)] == [ChangeStatus.APPLIED] * 2
    with db.reading() as session:
        messages = list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.booking_id == booked.id))
        )
    assert not [m for m in messages if m.status is OutboxStatus.DROPPED]
    assert len([m for m in messages if m.change_id is None]) == owner_notes_before
    assert {m.change_id for m in messages if m.change_id} == {first.change.id, second.change.id}


# -- #17.7: replays answer with the original change ----------------------------------------------


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    return Shop(db, settings, radicale_calendar)


def cancel_form(client: Any, booked: Booked, session_index: int = 0) -> Any:
    tab = client.get(booked.path, params={"tab": "cancel"})
    form = get_form(tab.text, "/cancel/review")
    for option in form.options("session"):
        option.checked = option.value == str(booked.session_ids[session_index])
    confirm = client.get(form.action, params=form.values())
    assert confirm.status_code == 200, confirm.text
    return post_form(confirm.text)


def test_a_replayed_cancel_answers_with_the_original_change(shop: Shop) -> None:
    shop.event_type()
    booked = shop.book(at(next_monday(), 9))
    with browser(shop) as client:
        form = cancel_form(client, booked)
        first = change_id(send(client, form), booked)
        assert get_booking(shop.db, booked.id).status is BookingStatus.CANCELLED
        assert change_id(send(client, form), booked) == first  # was 422 "cancelled"


def test_four_copies_of_a_cancel_at_once_all_answer_with_one_change(shop: Shop) -> None:
    shop.event_type()
    booked = shop.book(at(next_monday(), 9))
    answers: list[httpx.Response] = []
    with browser(shop) as client:
        form = cancel_form(client, booked)
        clients = [browser(shop) for _ in range(4)]
        for other in clients:
            other.__enter__()
            # One sending each first, refused for its missing key, one after the other: the app
            # builds its form models on first use, and pydantic's warning filters are not
            # thread-safe while it does.
            assert send(other, form, key="").status_code == 400
        try:
            start = threading.Barrier(4)

            def post(c: Any) -> None:
                start.wait()
                answers.append(send(c, form))

            threads = [threading.Thread(target=post, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for other in clients:
                other.__exit__(None, None, None)
    assert len({change_id(answer, booked) for answer in answers}) == 1
    assert len(changes.changes_of(shop.db, booked.id)) == 1


def test_four_copies_of_a_cancel_into_the_engine_at_once_give_one_change(shop: Shop) -> None:
    shop.event_type()
    booked = shop.book(at(next_monday(), 9))
    results: list[object] = []
    start = threading.Barrier(4)

    def cancel() -> None:
        start.wait()
        try:
            outcome = changes.cancel(
                shop.db,
                shop.settings,
                booked.id,
                booked.session_ids,
                actor=Actor.CUSTOMER,
                idempotency_key="same-click",
                expected_version=1,
            )
            results.append(outcome.change.id)
        except Exception as exc:  # collected: the test shows what each copy got
            results.append(exc)

    threads = [threading.Thread(target=cancel) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1


def test_a_replayed_reschedule_after_the_allowance_is_used_up(shop: Shop) -> None:
    shop.event_type(policy=ChangePolicy(max_reschedules=1))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    with browser(shop) as client:
        form = post_form(
            confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)}).text
        )
        first = change_id(send(client, form), booked)
        assert change_id(send(client, form), booked) == first  # was 422 "no more reschedules"
    assert len(changes.changes_of(shop.db, booked.id)) == 1


def test_a_replay_with_other_content_is_refused_by_the_engine(shop: Shop) -> None:
    shop.event_type(policy=ChangePolicy(max_reschedules=1))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    (sid,) = booked.session_ids
    changes.reschedule(
        shop.db,
        shop.settings,
        booked.id,
        {sid: at(monday, 15)},
        actor=Actor.CUSTOMER,
        idempotency_key="k",
    )
    again = changes.reschedule(
        shop.db,
        shop.settings,
        booked.id,
        {sid: at(monday, 15)},
        actor=Actor.CUSTOMER,
        idempotency_key="k",
    )
    assert again.replayed
    with pytest.raises(changes.ReplayMismatch):
        changes.reschedule(
            shop.db,
            shop.settings,
            booked.id,
            {sid: at(monday, 16)},
            actor=Actor.CUSTOMER,
            idempotency_key="k",
        )


def test_a_calendar_another_worker_polls_and_that_cannot_be_read_answers_try_again(
    db: Database,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    radicale_server: ServerProcess,
    radicale_calendar: str,
) -> None:
    from datetime import UTC, datetime

    from tests.cli.test_cli import Cli
    from tests.web.test_api_bookings import add_event_type, app_client, booking_body

    shop = Shop(db, settings, radicale_calendar)
    add_event_type(db, shop.calendar_id)
    booking_poller(db, settings).sync_now([shop.calendar_id])
    with db.writing() as session:  # what a worker with a poll in flight leaves in the database
        calendar = session.get(CalendarConnection, shop.calendar_id)
        calendar.lease_owner = "other-worker"
        calendar.lease_until = datetime.now(UTC) + timedelta(minutes=5)
    radicale_server.stop()
    try:
        with app_client(settings, db) as client:
            answer = client.post("/api/bookings", json=booking_body(at(next_monday(), 10)))
        start = f"{next_monday()}T10:00"
        said = Cli(tmp_path, database_url).fails(
            "book", "--event-type", "coaching", "--customer-email", "zoe@example.org",
            "--customer-name", "Zoë", "--start", start,
        )  # fmt: skip
    finally:
        radicale_server.start()
    assert answer.status_code == 409, answer.text
    assert "try again in a moment" in answer.json()["detail"]
    assert said == f"error: calendar {shop.calendar_id} is being polled right now; nothing was "\
        "changed, try again in a moment"  # fmt: skip
    with db.reading() as session:
        assert session.scalar(select(Booking.id)) is None


def test_the_manage_page_asks_to_try_again_in_a_moment_in_the_customers_words(
    shop: Shop, radicale_server: ServerProcess
) -> None:
    from datetime import UTC, datetime

    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    with browser(shop) as client:
        form = post_form(
            confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)}).text
        )
        with shop.db.writing() as session:  # another worker's poll is in flight
            calendar = session.get(CalendarConnection, shop.calendar_id)
            calendar.lease_owner = "other-worker"
            calendar.lease_until = datetime.now(UTC) + timedelta(minutes=5)
        radicale_server.stop()
        try:
            answer = send(client, form)
        finally:
            radicale_server.start()
    assert answer.status_code == 409
    assert "is being updated at this very moment" in answer.text
    assert "Please try again in a moment." in answer.text
    assert get_booking(shop.db, booked.id).sessions[0].start == at(monday, 9)
    assert changes.changes_of(shop.db, booked.id) == []
