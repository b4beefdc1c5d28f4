"""Event types and the availability read path: stored rules round-trip, bad input is named by
field, and free slots come from the mirror of a real CalDAV calendar."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.bookings.event_types import (
    AvailabilityUnknown,
    EventTypeSpec,
    InvalidInput,
    find_slots,
    get_event_type,
    save_event_type,
    spec_of,
)
from calsync.bookings.polling import booking_poller
from calsync.config import Settings
from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
)
from calsync.policy.hours import parse_weekly_hours
from calsync.policy.types import TimeRange
from calsync.store.db import Database
from calsync.sync import connections as services
from tests.cli.test_cli import Cli
from tests.support.servers import ServerProcess, delete_event, put_event

OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


def spec(**changes: object) -> EventTypeSpec:
    values: dict[str, object] = {
        "owner_email": OWNER,
        "slug": "coaching",
        "title": "Coaching",
        "duration": timedelta(minutes=60),
        "timezone": "Europe/Berlin",
        "weekly_hours": parse_weekly_hours(["mon-fri 09:00-12:00,13:00-17:00"]),
    }
    return EventTypeSpec(**(values | changes))  # type: ignore[arg-type]


@pytest.fixture
def owner(db: Database) -> None:
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")


def test_a_full_definition_round_trips(db: Database, owner: None) -> None:
    wanted = spec(
        slot_step=timedelta(minutes=30),
        date_overrides={
            date(2026, 12, 24): (),
            date(2026, 12, 31): (TimeRange(time(10), time(12)),),
        },
        buffer_before=timedelta(minutes=10),
        buffer_after=timedelta(minutes=5),
        minimum_notice=timedelta(hours=12),
        horizon_days=30,
        daily_cap=4,
        price=Decimal("240.00"),
        currency="CHF",
        policy=ChangePolicy(
            cancel=ActionRule(Permission.UNTIL, timedelta(hours=24), ReasonRule.REQUIRED),
            reschedule=ActionRule(Permission.ANYTIME, None, ReasonRule.OPTIONAL),
            max_reschedules=2,
            reschedule_fee=Fee(FeeKind.FIXED, Decimal("5")),
            cancel_refund=Fee(FeeKind.PERCENT, Decimal("50")),
            text="Cancel up to a day ahead.",
        ),
    )
    saved = save_event_type(db, wanted)
    assert spec_of(get_event_type(db, "coaching")) == wanted
    changed = save_event_type(db, spec(title="Deep coaching"), saved.id)
    assert (changed.id, changed.title, changed.daily_cap) == (saved.id, "Deep coaching", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Europe/Berlinn"}, "timezone"),
        (
            {"weekly_hours": {0: (TimeRange(time(9), time(12)), TimeRange(time(11), time(13)))}},
            "weekly_hours",
        ),
        ({"slug": "Not A Slug"}, "slug"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"duration": timedelta(minutes=0)}, "duration"),
        ({"currency": "euro"}, "currency"),
        ({"policy": ChangePolicy(cancel=ActionRule(Permission.UNTIL))}, "policy.cancel.notice"),
        (
            {"policy": ChangePolicy(reschedule=ActionRule(Permission.UNTIL, timedelta(days=30)))},
            "policy.reschedule.notice",
        ),
        ({"conflict_calendar_ids": (999,)}, "conflict_calendar_ids"),
    ],
)
def test_bad_definitions_name_the_field(
    db: Database, owner: None, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        save_event_type(db, spec(**changes))
    assert field in [name for name, _ in caught.value.problems]


def test_reversed_hours_are_refused_where_they_are_written() -> None:
    from calsync.policy.types import RulesError

    with pytest.raises(RulesError) as caught:
        parse_weekly_hours(["mon 17:00-09:00"])
    assert caught.value.field == "weekly_hours"


def test_slugs_are_unique(db: Database, owner: None) -> None:
    save_event_type(db, spec())
    with pytest.raises(InvalidInput, match="slug 'coaching' exists already"):
        save_event_type(db, spec())


class Calendar:
    """An owner's real Radicale calendar, connected and synced through calsync."""

    def __init__(self, db: Database, settings: Settings, server: ServerProcess, url: str) -> None:
        self.db, self.server, self.url = db, server, url
        username, password = server.auth or (None, None)
        (self.connection,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest(OWNER, url, username, password)
        )
        self.poller = booking_poller(db, settings)

    def sync(self) -> None:
        assert [r.error for r in self.poller.sync_now([self.connection.id])] == [None]


def next_monday() -> date:
    today = datetime.now(BERLIN).date()
    return today + timedelta(days=7 - today.weekday())


def vevent(uid: str, start: datetime, end: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Busy\r\n"
        f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_slots_come_from_the_mirror_and_follow_edits(
    db: Database, settings: Settings, owner: None, radicale_server: ServerProcess
) -> None:
    calendar = Calendar(db, settings, radicale_server, radicale_server.new_calendar())
    event_type = save_event_type(db, spec(buffer_after=timedelta(minutes=30)))
    monday = next_monday()
    start = datetime.combine(monday, time(0), BERLIN)
    with pytest.raises(AvailabilityUnknown, match="has not been synced yet"):
        find_slots(db, event_type, start, start + timedelta(days=1))

    calendar.sync()
    free = [
        s.start.astimezone(BERLIN).hour
        for s in find_slots(db, event_type, start, start + timedelta(days=1))
    ]
    assert free == [9, 10, 11, 13, 14, 15, 16]

    busy = put_event(
        calendar.url,
        vevent(
            "dentist",
            datetime.combine(monday, time(14, 30), BERLIN),
            datetime.combine(monday, time(15), BERLIN),
        ),
        auth=radicale_server.auth,
    )
    calendar.sync()
    free = [
        s.start.astimezone(BERLIN).hour
        for s in find_slots(db, event_type, start, start + timedelta(days=1))
    ]
    # 14:00 collides; 13:00 still fits, its 30-minute buffer ends just as the dentist starts.
    assert free == [9, 10, 11, 13, 15, 16]

    delete_event(busy.url, auth=radicale_server.auth)
    calendar.sync()
    free = [
        s.start.astimezone(BERLIN).hour
        for s in find_slots(db, event_type, start, start + timedelta(days=1))
    ]
    assert free == [9, 10, 11, 13, 14, 15, 16]


def test_window_longer_than_the_horizon_is_refused(db: Database, owner: None) -> None:
    event_type = save_event_type(db, spec(horizon_days=14))
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="at most 14 days"):
        find_slots(db, event_type, start, start + timedelta(days=15))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_defines_an_event_type_and_lists_free_slots(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    cli.ok("calendar", "add", "--owner", OWNER, "--caldav", radicale_server.new_calendar())
    cli.ok("sync", "--once")
    added = json.loads(
        cli.ok(
            "event-type",
            "add",
            "--owner",
            OWNER,
            "--slug",
            "intro",
            "--duration",
            "30",
            "--hours",
            "mon-fri 09:00-10:00",
            "--hours",
            "sat 10:00-11:00",
            "--cancel",
            "until",
            "--cancel-notice",
            "1440",
            "--reschedule-fee",
            "10%",
            "--json",
        )
    )
    assert added["weekly_hours"]["sat"] == [["10:00", "11:00"]]
    assert added["policy"]["reschedule_fee"] == {"kind": "percent", "amount": "10"}
    monday = next_monday()
    slots = json.loads(
        cli.ok(
            "availability",
            "--event-type",
            "intro",
            "--from",
            monday.isoformat(),
            "--to",
            (monday + timedelta(days=1)).isoformat(),
            "--tz",
            "America/New_York",
            "--json",
        )
    )
    berlin_nine = datetime.combine(monday, time(9), BERLIN)
    assert [datetime.fromisoformat(s["start"]) for s in slots] == [
        berlin_nine.astimezone(ZoneInfo("America/New_York")),
        (berlin_nine + timedelta(minutes=30)).astimezone(ZoneInfo("America/New_York")),
    ]
    assert all(s["start"].endswith("-05:00") for s in slots)

    message = cli.fails(
        "event-type",
        "add",
        "--owner",
        OWNER,
        "--slug",
        "bad",
        "--duration",
        "30",
        "--hours",
        "mon 09:00-12:00,11:00-13:00",
    )
    assert "weekly_hours" in message
    assert "at most 60 days" in cli.fails(
        "availability", "--event-type", "intro", "--from", "2026-12-01", "--to", "2027-03-01"
    )
    assert "'2026-13-01' is not a date or time" in cli.fails(
        "availability", "--event-type", "intro", "--from", "2026-13-01", "--to", "2027-01-01"
    )
