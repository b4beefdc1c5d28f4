"""End to end: a real CalDAV server, calsync's mirror and its busy time.

The expected busy time is computed independently in the test from the same iCalendar text
with recurring-ical-events, so the mirror is checked against a second reading, not against
itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events
from sqlalchemy import func, select, update

from calsync.bookings.polling import booking_poller
from calsync.calendars.base import Interval
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import CalendarConnection, ConnectionStatus, MirroredEvent
from calsync.sync import connections as services
from calsync.sync.mirror import merge_intervals
from calsync.sync.poller import Poller
from tests.support.servers import ServerProcess, delete_event, put_event

ZONE = "Europe/Berlin"
OWNER = "owner@example.org"


def vcal(*vevents: str) -> str:
    body = "\r\n".join(v.strip().replace("\n", "\r\n") for v in vevents)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}\r\nEND:VCALENDAR\r\n"


def local(day: date, hhmm: str) -> str:
    return f"{day:%Y%m%d}T{hhmm.replace(':', '')}00"


def expected_busy(objects: dict[str, str], start: datetime, end: datetime) -> list[Interval]:
    """Busy time read independently: every occurrence that is opaque and not cancelled."""
    spans = []
    for text in objects.values():
        calendar = icalendar.Calendar.from_ical(text)
        for occurrence in recurring_ical_events.of(calendar).between(start, end):
            if str(occurrence.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                continue
            if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
                continue
            s, e = occurrence["DTSTART"].dt, occurrence["DTEND"].dt
            spans.append(Interval(s.astimezone(UTC), e.astimezone(UTC)))
    return merge_intervals(spans)


class Scenario:
    """An owner, one connected calendar on a real server, and the objects we put there."""

    def __init__(self, db: Database, settings: Settings, server: ServerProcess, url: str):
        self.db, self.settings, self.server, self.url = db, settings, server, url
        self.objects: dict[str, str] = {}
        self.hrefs: dict[str, str] = {}
        services.add_owner(db, name="Owner", email=OWNER, timezone=ZONE)
        username, password = server.auth or (None, None)
        (self.connection,) = services.add_caldav_calendar(
            db,
            settings,
            services.CalDAVRequest(OWNER, url, username, password, timezone=ZONE),
        )
        self.poller = booking_poller(db, settings)
        today = datetime.now(UTC).date()
        self.monday = today + timedelta(days=7 - today.weekday())
        self.window = (
            datetime.combine(self.monday, datetime.min.time(), UTC) - timedelta(days=3),
            datetime.combine(self.monday, datetime.min.time(), UTC) + timedelta(days=35),
        )

    def put(self, uid: str, *vevents: str) -> None:
        text = vcal(*(v.replace("@UID@", uid) for v in vevents))
        written = put_event(self.url, text, auth=self.server.auth)
        self.objects[uid], self.hrefs[uid] = text, written.url

    def delete(self, uid: str) -> None:
        delete_event(self.hrefs.pop(uid), auth=self.server.auth)
        del self.objects[uid]

    def sync(self) -> list:
        results = self.poller.sync_now([self.connection.id])
        assert [r.error for r in results] == [None]
        return results

    def mirrored_busy(self) -> list[Interval]:
        return services.busy(self.db, self.connection.id, *self.window)

    def assert_busy_matches(self) -> None:
        assert self.mirrored_busy() == expected_busy(self.objects, *self.window)

    def mirrored_count(self) -> int:
        with self.db.reading() as session:
            return session.scalar(
                select(func.count()).where(MirroredEvent.connection_id == self.connection.id)
            )


@pytest.fixture
def scenario(
    db: Database, settings: Settings, caldav_server: ServerProcess, caldav_calendar: str
) -> Scenario:
    return Scenario(db, settings, caldav_server, caldav_calendar)


def weekly(day: date, start: str, end: str, extra: str = "") -> str:
    return f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Weekly
DTSTART;TZID={ZONE}:{local(day, start)}
DTEND;TZID={ZONE}:{local(day, end)}
RRULE:FREQ=WEEKLY;COUNT=6
{extra}
END:VEVENT""".replace("\n\nEND", "\nEND")


def single(day: date, start: str, end: str, extra: str = "") -> str:
    return f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Single
DTSTART;TZID={ZONE}:{local(day, start)}
DTEND;TZID={ZONE}:{local(day, end)}
{extra}
END:VEVENT""".replace("\n\nEND", "\nEND")


def override(day: date, original: str, start: str, end: str, extra: str = "") -> str:
    return f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID={ZONE}:{local(day, original)}
SUMMARY:Moved occurrence
DTSTART;TZID={ZONE}:{local(day, start)}
DTEND;TZID={ZONE}:{local(day, end)}
{extra}
END:VEVENT""".replace("\n\nEND", "\nEND")


def test_first_sync_then_edits_are_picked_up_incrementally(scenario: Scenario) -> None:
    mon = scenario.monday
    tue, wed = mon + timedelta(days=1), mon + timedelta(days=2)
    scenario.put("lunch", single(mon, "12:30", "13:30"))
    scenario.put("focus", single(tue, "13:00", "15:00", "TRANSP:TRANSPARENT"))
    scenario.put("called-off", single(tue, "08:00", "09:00", "STATUS:CANCELLED"))
    scenario.put(
        "team",
        weekly(wed, "10:00", "11:00", f"EXDATE;TZID={ZONE}:{local(wed + timedelta(7), '10:00')}"),
        override(wed + timedelta(14), "10:00", "16:00", "17:30"),
    )
    (first,) = scenario.sync()
    assert first.full and first.upserted == 4
    assert scenario.mirrored_busy(), "the seeded week should have busy time"
    scenario.assert_busy_matches()

    # The owner moves the lunch, cancels one more occurrence, adds and deletes events.
    scenario.put("lunch", single(mon, "13:00", "14:00"))
    scenario.put(
        "team",
        weekly(
            wed,
            "10:00",
            "11:00",
            f"EXDATE;TZID={ZONE}:{local(wed + timedelta(7), '10:00')},"
            f"{local(wed + timedelta(21), '10:00')}",
        ),
        override(wed + timedelta(14), "10:00", "07:00", "08:00"),
    )
    scenario.put("dentist", single(tue, "17:00", "18:00"))
    scenario.delete("focus")
    (second,) = scenario.sync()
    assert not second.full
    assert (second.upserted, second.removed) == (3, 1)
    scenario.assert_busy_matches()
    assert scenario.mirrored_count() == 4

    # Nothing changed: an empty incremental poll.
    (third,) = scenario.sync()
    assert (third.full, third.upserted, third.removed) == (False, 0, 0)


def test_expired_sync_token_resyncs_without_duplicates_or_losses(scenario: Scenario) -> None:
    mon = scenario.monday
    scenario.put("a", single(mon, "09:00", "10:00"))
    scenario.put("b", weekly(mon, "15:00", "16:00"))
    scenario.sync()
    # While calsync was away: one change, one deletion, one addition; and the server forgot
    # our sync position (we give it a token it never issued).
    scenario.put("a", single(mon, "10:00", "11:00"))
    scenario.delete("b")
    scenario.put("c", single(mon + timedelta(days=3), "11:00", "12:00"))
    bogus = (
        "http://radicale.org/ns/sync/" + "0" * 64
        if "radicale" in repr(scenario.server)
        else "999999"
    )
    with scenario.db.writing() as session:
        session.execute(
            update(CalendarConnection)
            .where(CalendarConnection.id == scenario.connection.id)
            .values(cursor=bogus)
        )
    (result,) = scenario.sync()
    assert result.full
    assert result.removed == 1
    assert scenario.mirrored_count() == 2
    scenario.assert_busy_matches()


def test_semantically_broken_events_are_reported_and_the_rest_syncs(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    mon = scenario.monday
    scenario.put("good", single(mon, "09:00", "10:00"))
    # Servers accept these; calsync must neither crash nor lose the other events.
    scenario.put(
        "martian",
        """BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Unknown zone
DTSTART;TZID=Mars/Olympus_Mons:"""
        + local(mon, "14:00")
        + """
DTEND;TZID=Mars/Olympus_Mons:"""
        + local(mon, "15:00")
        + """
END:VEVENT""",
    )
    scenario.put(
        "backwards",
        f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Ends before it starts
DTSTART:{local(mon, "18:00")}Z
DTEND:{local(mon, "17:00")}Z
END:VEVENT""",
    )
    with caplog.at_level(logging.WARNING):
        (result,) = scenario.sync()
    assert result.error is None
    busy = scenario.mirrored_busy()
    berlin_9 = datetime.fromisoformat(f"{mon}T09:00+01:00")
    berlin_14 = datetime.fromisoformat(f"{mon}T14:00+01:00")
    # The good event is there, and the unknown zone is read in the calendar's zone (not lost).
    assert Interval(berlin_9, berlin_9 + timedelta(hours=1)) in busy
    assert Interval(berlin_14, berlin_14 + timedelta(hours=1)) in busy
    assert "Mars/Olympus_Mons" in caplog.text
    calendars = services.list_calendars(scenario.db)
    assert calendars[0].status is ConnectionStatus.OK


def last_error(scenario: Scenario) -> str | None:
    (calendar,) = services.list_calendars(scenario.db)
    return calendar.last_error


# Issue 17, item 3: the INTERVAL=0 event made the poll grow without limit (12 GB in ten
# minutes). The timeout only guards against that hang; it is not a speed claim.
@pytest.mark.timeout(180)
def test_an_event_repeating_every_zero_days_is_reported_and_the_rest_stays_busy(
    scenario: Scenario,
) -> None:
    mon = scenario.monday
    scenario.put("good", single(mon, "09:00", "10:00"))
    scenario.put("weekly", weekly(mon, "14:00", "15:00"))
    # Both servers store this rule as it is; it is not added to scenario.objects because
    # calsync cannot know when it happens, so it blocks nothing.
    zero = vcal(single(mon, "11:00", "12:00", "RRULE:FREQ=DAILY;INTERVAL=0").replace("@UID@", "z"))
    written = put_event(scenario.url, zero, auth=scenario.server.auth)

    (result,) = scenario.sync()
    assert result.problems == 1
    assert last_error(scenario) == "1 event(s) could not be read and were skipped"
    scenario.assert_busy_matches()

    # Issue 17, item 9: a poll that brings no change still reports the unreadable event ...
    (result,) = scenario.sync()
    assert result.upserted == 0
    assert result.problems == 1
    assert last_error(scenario) == "1 event(s) could not be read and were skipped"

    # ... until the owner fixes it.
    fixed = zero.replace("INTERVAL=0", "COUNT=2")
    put_event(written.url, fixed, auth=scenario.server.auth)
    scenario.objects["z"] = fixed
    (result,) = scenario.sync()
    assert result.problems == 0
    assert last_error(scenario) is None
    scenario.assert_busy_matches()


def test_removing_an_unreadable_event_clears_the_report(scenario: Scenario) -> None:
    mon = scenario.monday
    scenario.put("good", single(mon, "09:00", "10:00"))
    scenario.put("bad", single(mon, "11:00", "12:00", "RRULE:FREQ=WEEKLY;INTERVAL=-1"))
    scenario.sync()
    assert last_error(scenario) == "1 event(s) could not be read and were skipped"
    scenario.objects.pop("bad")
    delete_event(scenario.hrefs.pop("bad"), auth=scenario.server.auth)
    scenario.sync()
    assert last_error(scenario) is None
    scenario.assert_busy_matches()


class ExhaustedProvider:
    """Fault injection: a provider whose poll runs out of memory. A real server cannot make
    the worker run out of memory on demand, and this checks what the poller records."""

    def __init__(self, connection: CalendarConnection) -> None:
        self.connection = connection

    def changes(self, cursor: str | None, known: dict[str, str]) -> object:
        raise MemoryError

    def close(self) -> None:
        pass


@pytest.mark.parametrize("path", ["tick", "sync_now"])
def test_a_poll_failing_unexpectedly_marks_the_calendar_failing_and_releases_it(
    db: Database, settings: Settings, scenario: Scenario, path: str
) -> None:
    poller = Poller(db, settings, provider_factory=ExhaustedProvider)  # type: ignore[arg-type]
    (result,) = poller.tick() if path == "tick" else poller.sync_now([scenario.connection.id])
    assert result.error is not None and "MemoryError" in result.error
    (calendar,) = services.list_calendars(db)
    assert calendar.status is ConnectionStatus.FAILING
    assert calendar.last_error is not None and "MemoryError" in calendar.last_error
    with db.reading() as session:
        row = session.get(CalendarConnection, scenario.connection.id)
        assert row is not None
        assert row.lease_owner is None and row.failures == 1
        assert row.next_poll_at > datetime.now(UTC) + timedelta(seconds=30)
    # The next poll that works clears the state.
    scenario.sync()
    assert services.list_calendars(db)[0].status is ConnectionStatus.OK
