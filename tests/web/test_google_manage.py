"""A Google booking calendar under the customer's manage page and the change engine, against
the fake Calendar v3 server through the real client, on both databases: a package moved and
cancelled over HTTP, an owner edit racing our write (412), and rate limits during the apply."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from calsync.bookings import changes
from calsync.bookings.packages import BookingRequest, book, get_booking
from calsync.calendars.google.provider import (
    MARKED_CANCELLED,
    MARKED_CANCELLED_KEY,
    Caller,
    GoogleProvider,
)
from calsync.config import GoogleSettings, Settings
from calsync.notify import outbox
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    CalendarConnection,
    CancelMode,
    Change,
    ChangeStatus,
    OutboxStatus,
    SessionStatus,
    utcnow,
)
from calsync.sync import connections as services
from calsync.sync.providers import open_provider
from calsync.testing.google_fake import ApiError, Event, FakeGoogle
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.e2e.test_google_e2e import connect, event_type, owner, poll, utc
from tests.support.manage_shop import Booked, get_form, post_form
from tests.support.world import at, next_monday
from tests.web.test_manage_page import change_id, confirm_reschedule, send

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

HOUR = timedelta(hours=1)
CUSTOMER = "zoe@example.org"


class RacingGoogle(FakeGoogle):
    """The fake Google server, plus two things for these tests: an action run just before it
    answers one chosen request (how an owner's edit or a burst of errors lands exactly between
    calsync's read and its write), and the status it answered to each request."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: list[tuple[str, str, int]] = []  # (method, path, status)
        self._triggers: list[tuple[str, str, Callable[[], None]]] = []

    def once(self, method: str, event_id: str, action: Callable[[], None]) -> None:
        """Run ``action`` when the next ``method`` request on event ``event_id`` arrives,
        before it is answered."""
        self._triggers.append((method, f"/events/{event_id}", action))

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            for trigger in list(self._triggers):
                if trigger[0] == method and path.endswith(trigger[1]):
                    self._triggers.remove(trigger)
                    trigger[2]()
            try:
                status, answer = super().handle(method, path, query, headers, body)
            except ApiError as exc:
                self.answered.append((method, path, exc.status))
                raise
            self.answered.append((method, path, status))
            return status, answer

    def statuses(self, method: str, event_id: str) -> list[int]:
        """What the fake answered to each ``method`` request on one event, in order."""
        return [s for m, p, s in self.answered if m == method and p.endswith(f"/events/{event_id}")]

    def with_uid(self, uid: str) -> list[Event]:
        """The events (not deleted) carrying ``uid``: more than one would be a duplicate."""
        return [
            s.event
            for s in self.calendars["primary"].events.values()
            if s.event.get("iCalUID") == uid and s.event.get("status") != "cancelled"
        ]


@pytest.fixture
def fake() -> Iterator[RacingGoogle]:
    with RacingGoogle() as server:
        yield server


@pytest.fixture
def gsettings(settings: Settings, fake: FakeGoogle) -> Settings:
    return settings.model_copy(update={"google": GoogleSettings(api_endpoint=fake.endpoint)})


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Google client's backoff sleeps, recorded instead of slept (a monkeypatched sleep:
    the default of ``Caller``'s ``sleep``, which every provider calsync opens uses), so
    retries cost no wall-clock time and a test can count them."""
    slept: list[float] = []
    monkeypatch.setitem(Caller.__init__.__kwdefaults__, "sleep", slept.append)
    return slept


def span(event: Event) -> tuple[datetime, datetime]:
    """An event's start and end on Google, as instants."""
    start, end = (event[k]["dateTime"].replace("Z", "+00:00") for k in ("start", "end"))
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def emails(db: Database, booking_id: str) -> dict[int | None, list[tuple[str, OutboxStatus]]]:
    """The booking's outbox rows by change (None: the booking confirmation)."""
    found: dict[int | None, list[tuple[str, OutboxStatus]]] = {}
    for row in outbox.list_messages(db):
        if row.booking_id == booking_id:
            found.setdefault(row.change_id, []).append((row.role, row.status))
    return {k: sorted(v) for k, v in found.items()}


def retry_limit(db: Database, settings: Settings, calendar_id: int) -> int:
    """How many tries calsync's Google client makes of one request, as the engine opens it."""
    provider = open_provider(settings)(services.get_calendar(db, calendar_id))
    try:
        assert isinstance(provider, GoogleProvider)
        return provider.call.max_tries
    finally:
        provider.close()


def make_due(db: Database, change: int) -> None:
    """Skip the wait a pending change has before the worker retries it."""
    with db.writing() as session:
        session.execute(update(Change).where(Change.id == change).values(next_attempt_at=utcnow()))


def set_cancel_mode(db: Database, calendar_id: int, mode: CancelMode) -> None:
    with db.writing() as session:
        stored = session.get(CalendarConnection, calendar_id)
        assert stored is not None
        stored.cancel_mode = mode


def google_owner(db: Database, settings: Settings, fake: FakeGoogle) -> int:
    """The owner with one Google calendar (conflicts and bookings), polled once; its id."""
    owner(db)
    calendar = connect(db, settings, fake)
    event_type(db, calendar.id)
    poll(db, settings)
    return calendar.id


def all_events(fake: FakeGoogle) -> int:
    """How many events the calendar holds (deleted ones included): nothing is ever added."""
    return len(fake.calendars["primary"].events)


# -- 1. the customer's page ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [CancelMode.MARK, CancelMode.DELETE])
def test_a_package_is_moved_and_cancelled_on_the_page_and_google_shows_exactly_that(
    db: Database, gsettings: Settings, fake: RacingGoogle, mode: CancelMode
) -> None:
    calendar_id = google_owner(db, gsettings, fake)
    set_cancel_mode(db, calendar_id, mode)
    mon = next_monday()
    tue, wed = mon + timedelta(days=1), mon + timedelta(days=2)
    made = book(
        db,
        gsettings,
        BookingRequest(
            "coaching",
            "Zoë Example",
            CUSTOMER,
            (at(mon, 9), at(mon, 11), at(mon, 13)),
            "America/New_York",  # the zone the page helpers pick days in
            stakeholders=("parent@example.org",),
        ),
    )
    first, second, third = made.booking.sessions
    booked = Booked(
        made.booking.id,
        made.manage_url.removeprefix(gsettings.base_url),
        [s.id for s in made.booking.sessions],
        [s.uid for s in made.booking.sessions],
    )
    at_booking = {s.uid: fake.event(s.href) for s in made.booking.sessions}
    assert [e["iCalUID"] for e in at_booking.values()] == booked.uids

    app = create_app(gsettings, db=db, manage_limits=RateLimits.off())
    with TestClient(app, follow_redirects=False) as client:
        # Reschedule sessions 1 and 3 in one go: pick the times, confirm, POST.
        confirm = confirm_reschedule(client, booked, {first.id: at(tue, 10), third.id: at(wed, 15)})
        moved = send(client, post_form(confirm.text))
        moved_change = change_id(moved, booked)
        outcome = client.get(moved.headers["location"]).text
        assert "Done: the calendar of Coach has been updated." in outcome

        # Then cancel session 3 (at its new time) through the cancel tab.
        tab = client.get(booked.path, params={"tab": "cancel"})
        form = get_form(tab.text, "/cancel/review")
        for option in form.options("session"):
            option.checked = option.value == str(third.id)
        confirm = client.get(form.action, params=form.values())
        assert confirm.status_code == 200, confirm.text
        cancelled = send(client, post_form(confirm.text))
        cancel_change = change_id(cancelled, booked)
        outcome = client.get(cancelled.headers["location"]).text
        assert "Done: the calendar of Coach has been updated." in outcome

    # The worker's apply step: the page applied both changes, so it finds nothing left to do
    # and writes nothing a second time.
    writes = len(fake.writes())
    assert changes.apply_pending(db, gsettings) == 0
    assert len(fake.writes()) == writes
    assert [(c.id, c.status) for c in changes.changes_of(db, booked.id)] == [
        (moved_change, ChangeStatus.APPLIED),
        (cancel_change, ChangeStatus.APPLIED),
    ]

    # Session 1 moved: same event, same UID, new time, SEQUENCE 1.
    event = fake.event(first.href)
    assert span(event) == (at(tue, 10), at(tue, 10) + HOUR)
    assert (event["iCalUID"], event["sequence"]) == (first.uid, 1)
    # Session 2 was never touched (not even its etag changed).
    assert fake.event(second.href) == at_booking[second.uid]
    # Session 3, moved then cancelled, as the calendar's cancel mode says.
    event = fake.event(third.href)
    assert event["iCalUID"] == third.uid
    if mode is CancelMode.MARK:
        # Kept where the customer had moved it, free, and marked (status "cancelled" would
        # delete it on Google).
        assert span(event) == (at(wed, 15), at(wed, 15) + HOUR)
        assert (event["status"], event["transparency"]) == ("confirmed", "transparent")
        assert event["summary"].startswith("Cancelled: ")
        assert event["extendedProperties"]["private"][MARKED_CANCELLED_KEY] == MARKED_CANCELLED
        assert event["sequence"] == 2
        assert [len(fake.with_uid(uid)) for uid in booked.uids] == [1, 1, 1]
    else:
        assert event["status"] == "cancelled"
        assert [len(fake.with_uid(uid)) for uid in booked.uids] == [1, 1, 0]
    assert all_events(fake) == 3

    # Three inserts at booking, two patches for the move, one patch or delete for the cancel;
    # each conditional on the etag, and none asking Google to email anyone (calsync does).
    sent = fake.writes()
    last = "PATCH" if mode is CancelMode.MARK else "DELETE"
    assert [r.method for r in sent] == ["POST"] * 3 + ["PATCH"] * 2 + [last]
    assert all(r.query.get("sendUpdates") == "none" for r in sent)
    assert all(r.headers.get("if-match") for r in sent if r.method in ("PATCH", "DELETE"))

    stored = get_booking(db, booked.id)
    assert [(s.status, s.start) for s in stored.sessions] == [
        (SessionStatus.RESCHEDULED, at(tue, 10)),
        (SessionStatus.BOOKED, at(mon, 11)),
        (SessionStatus.CANCELLED, at(wed, 15)),
    ]
    # One email per recipient per change (the moved pair share one), all released.
    everyone = [
        ("customer", OutboxStatus.READY),
        ("owner", OutboxStatus.READY),
        ("stakeholder", OutboxStatus.READY),
    ]
    assert emails(db, booked.id) == {
        None: everyone,
        moved_change: everyone,
        cancel_change: everyone,
    }


# -- 2. the owner edits the event while our change is on its way ---------------------------------

MOMENTS = ["at our write", "while pending"]


def reschedule_meeting_the_owner(
    db: Database,
    settings: Settings,
    fake: RacingGoogle,
    booking_id: str,
    target: datetime,
    owner_acts: Callable[[], None],
    moment: str,
) -> Change:
    """Reschedule the booking's one session to ``target`` with ``owner_acts`` (an edit in
    Google) landing at ``moment``; returns the change as it ended up.

    "at our write": between calsync's read of the event and its conditional write, so the
    etag calsync just read is stale and Google answers 412. "while pending": Google is down
    when the customer confirms (5xx beyond the retries), the owner edits, then the worker
    applies the change with the etag calsync stored at booking long out of date.
    """
    (booked,) = get_booking(db, booking_id).sessions
    assert booked.href is not None and booked.connection_id is not None
    moves = {booked.id: target}
    if moment == "at our write":
        fake.once("PATCH", booked.href, owner_acts)
        return changes.reschedule(db, settings, booking_id, moves, actor=Actor.CUSTOMER).change
    limit = retry_limit(db, settings, booked.connection_id)
    fake.once("GET", booked.href, lambda: fake.inject(503, "backendError", limit))
    pending = changes.reschedule(db, settings, booking_id, moves, actor=Actor.CUSTOMER).change
    assert pending.status is ChangeStatus.PENDING
    owner_acts()
    assert get_booking(db, booking_id).sessions[0].etag != fake.event(booked.href)["etag"]
    make_due(db, pending.id)
    assert changes.apply_pending(db, settings) == 1
    return changes.changes_of(db, booking_id)[-1]


@pytest.mark.parametrize("moment", MOMENTS)
def test_an_owner_edit_of_description_and_location_is_kept_and_our_move_lands(
    db: Database, gsettings: Settings, fake: RacingGoogle, naps: list[float], moment: str
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", CUSTOMER, (at(mon, 9),)))
    (booked,) = made.booking.sessions
    assert booked.href is not None
    booked_etag = fake.event(booked.href)["etag"]
    owner_etag: list[str] = []

    def owner_edits() -> None:
        # What the owner does in Google Calendar: a note above our link block, and a room.
        text = fake.event(booked.href)["description"]
        edited = fake.owner_patch(
            booked.href, {"description": f"Room 4, 2nd floor\n\n{text}", "location": "Room 4"}
        )
        owner_etag.append(edited["etag"])

    change = reschedule_meeting_the_owner(
        db, gsettings, fake, made.booking.id, at(mon, 14), owner_edits, moment
    )
    assert change.status is ChangeStatus.APPLIED

    event = fake.event(booked.href)
    assert span(event) == (at(mon, 14), at(mon, 14) + HOUR)
    assert event["location"] == "Room 4"
    assert event["description"].startswith("Room 4, 2nd floor\n\n")
    assert event["description"].count(made.manage_url) == 1  # our block, once
    assert (event["iCalUID"], event["sequence"]) == (booked.uid, 1)
    assert len(fake.with_uid(booked.uid)) == 1 and all_events(fake) == 1
    # Our write went on top of the owner's version, never blindly over it.
    patches = [r for r in fake.writes() if r.method == "PATCH"]
    if moment == "at our write":
        assert fake.statuses("PATCH", booked.href) == [412, 200]
        assert [r.headers["if-match"] for r in patches] == [booked_etag, *owner_etag]
    else:
        assert fake.statuses("PATCH", booked.href) == [200]
        assert [r.headers["if-match"] for r in patches] == owner_etag
    assert emails(db, made.booking.id)[change.id] == [
        ("customer", OutboxStatus.READY),
        ("owner", OutboxStatus.READY),
    ]
    # calsync knows the version it wrote: the next poll moves nothing back.
    assert get_booking(db, made.booking.id).sessions[0].etag == event["etag"]
    poll(db, gsettings)
    assert get_booking(db, made.booking.id).sessions[0].start == at(mon, 14)
    assert span(fake.event(booked.href)) == (at(mon, 14), at(mon, 14) + HOUR)


@pytest.mark.parametrize("moment", MOMENTS)
def test_an_owner_move_of_the_time_stops_our_move_and_nothing_is_lost_or_doubled(
    db: Database, gsettings: Settings, fake: RacingGoogle, naps: list[float], moment: str
) -> None:
    google_owner(db, gsettings, fake)
    mon = next_monday()
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", CUSTOMER, (at(mon, 9),)))
    (booked,) = made.booking.sessions
    assert booked.href is not None

    def owner_moves() -> None:
        fake.owner_patch(
            booked.href,
            {"start": {"dateTime": utc(at(mon, 16))}, "end": {"dateTime": utc(at(mon, 17))}},
        )

    change = reschedule_meeting_the_owner(
        db, gsettings, fake, made.booking.id, at(mon, 14), owner_moves, moment
    )
    # The owner got there first: we stop, say so, and send no update for a move that did
    # not happen.
    assert change.status is ChangeStatus.CONFLICT
    assert "changed session 1 in their calendar" in (change.message or "")
    event = fake.event(booked.href)
    assert span(event) == (at(mon, 16), at(mon, 17))
    assert event["sequence"] == 0
    # At our write, the one PATCH met the owner's version (412); re-read, we stopped.
    expected = [412] if moment == "at our write" else []
    assert fake.statuses("PATCH", booked.href) == expected
    assert len(fake.with_uid(booked.uid)) == 1 and all_events(fake) == 1
    assert emails(db, made.booking.id)[change.id] == [
        ("customer", OutboxStatus.DROPPED),
        ("owner", OutboxStatus.DROPPED),
    ]
    # The next poll brings the session to where the owner put it.
    poll(db, gsettings)
    assert get_booking(db, made.booking.id).sessions[0].start == at(mon, 16)
    assert span(fake.event(booked.href)) == (at(mon, 16), at(mon, 17))
    assert all_events(fake) == 1


# -- 3. rate limits during the apply -------------------------------------------------------------

RATE_LIMITS = [(429, "rateLimitExceeded"), (403, "rateLimitExceeded")]


def one_session(
    db: Database, settings: Settings, fake: RacingGoogle, mon: date
) -> tuple[str, int, str, int]:
    """A booking of one session (Monday ``mon`` 9:00) on the Google calendar: its id, the
    session's id, its event id, and the retry limit of the client the engine opens for it."""
    calendar_id = google_owner(db, settings, fake)
    made = book(db, settings, BookingRequest("coaching", "Zoë", CUSTOMER, (at(mon, 9),)))
    (booked,) = made.booking.sessions
    assert booked.href is not None
    return made.booking.id, booked.id, booked.href, retry_limit(db, settings, calendar_id)


@pytest.mark.parametrize(("status", "reason"), RATE_LIMITS)
def test_a_rate_limit_burst_within_the_retries_lands_the_move_exactly_once(
    db: Database,
    gsettings: Settings,
    fake: RacingGoogle,
    naps: list[float],
    status: int,
    reason: str,
) -> None:
    mon = next_monday()  # once: a test running across midnight keeps one Monday
    booking_id, session_id, href, limit = one_session(db, gsettings, fake, mon)
    target = at(mon, 14)
    fake.once("PATCH", href, lambda: fake.inject(status, reason, limit - 1))

    change = changes.reschedule(
        db, gsettings, booking_id, {session_id: target}, actor=Actor.CUSTOMER
    ).change

    assert change.status is ChangeStatus.APPLIED
    assert fake.statuses("PATCH", href) == [status] * (limit - 1) + [200]
    assert len(naps) == limit - 1  # it backed off before every retry
    event = fake.event(href)
    assert span(event) == (target, target + HOUR) and event["sequence"] == 1
    assert len(fake.with_uid(event["iCalUID"])) == 1 and all_events(fake) == 1
    assert emails(db, booking_id)[change.id] == [
        ("customer", OutboxStatus.READY),
        ("owner", OutboxStatus.READY),
    ]


@pytest.mark.parametrize(("status", "reason"), RATE_LIMITS)
def test_a_rate_limit_burst_beyond_the_retries_leaves_the_move_pending_then_lands_it_once(
    db: Database,
    gsettings: Settings,
    fake: RacingGoogle,
    naps: list[float],
    status: int,
    reason: str,
) -> None:
    mon = next_monday()  # once: a test running across midnight keeps one Monday
    booking_id, session_id, href, limit = one_session(db, gsettings, fake, mon)
    before = fake.event(href)
    target = at(mon, 14)
    fake.once("PATCH", href, lambda: fake.inject(status, reason, limit))

    change = changes.reschedule(
        db, gsettings, booking_id, {session_id: target}, actor=Actor.CUSTOMER
    ).change

    # Recorded but not in Google yet: pending (not failed), the emails held back.
    assert change.status is ChangeStatus.PENDING and change.message
    assert fake.statuses("PATCH", href) == [status] * limit
    assert fake.event(href) == before
    assert get_booking(db, booking_id).sessions[0].start == target
    held = [("customer", OutboxStatus.HELD), ("owner", OutboxStatus.HELD)]
    assert emails(db, booking_id)[change.id] == held
    assert changes.apply_pending(db, gsettings) == 0  # it waits before trying again

    # The worker's next turn, once the change is due: it lands, once.
    make_due(db, change.id)
    assert changes.apply_pending(db, gsettings) == 1
    (change,) = changes.changes_of(db, booking_id)
    assert change.status is ChangeStatus.APPLIED
    assert fake.statuses("PATCH", href) == [status] * limit + [200]
    event = fake.event(href)
    assert span(event) == (target, target + HOUR) and event["sequence"] == 1
    assert len(fake.with_uid(event["iCalUID"])) == 1 and all_events(fake) == 1
    assert emails(db, booking_id)[change.id] == [
        ("customer", OutboxStatus.READY),
        ("owner", OutboxStatus.READY),
    ]
    writes = len(fake.writes())
    assert changes.apply_pending(db, gsettings) == 0
    assert len(fake.writes()) == writes
