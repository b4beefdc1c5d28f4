"""Google calendars end to end, against the fake Calendar v3 server through the real client and
on both databases: connecting, polling, booking a package, rescheduling, cancelling, a mixed
CalDAV + Google owner, and a revoked grant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.bookings import changes
from calsync.bookings.event_types import find_slots, get_event_type, save_event_type
from calsync.bookings.packages import BookingRequest, book, get_booking
from calsync.bookings.polling import booking_poller
from calsync.calendars.errors import AuthFailed
from calsync.calendars.google import account as google_connect
from calsync.calendars.google.ics import BOOKING_KEY
from calsync.config import ConfigError, GoogleSettings, Settings
from calsync.demo.caldav import seed_monday
from calsync.demo.google import seed_google
from calsync.notify import outbox
from calsync.secretbox import SecretBox
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    CalendarConnection,
    CalendarRole,
    CancelMode,
    ChangeStatus,
    ConnectionStatus,
    ProviderKind,
    SessionStatus,
)
from calsync.sync import connections as services
from calsync.sync.mirror import merge_intervals
from calsync.sync.providers import open_provider
from calsync.testing.google_fake import FakeGoogle
from tests.cli.test_cli import Cli
from tests.support.servers import ServerProcess, put_event
from tests.support.world import OWNER, at, coaching, next_monday

ZONE = ZoneInfo("Europe/Berlin")
REFRESH = "refresh-token-1"


def utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        yield server


@pytest.fixture
def gsettings(settings: Settings, fake: FakeGoogle) -> Settings:
    return settings.model_copy(update={"google": GoogleSettings(api_endpoint=fake.endpoint)})


def token_json(fake: FakeGoogle, refresh: str = REFRESH) -> str:
    """What ``Credentials.to_json()`` writes after the owner's consent (with a stale token)."""
    return json.dumps(
        {
            "token": "expired-access-token",
            "refresh_token": refresh,
            "client_id": "client-id.apps.googleusercontent.com",
            "client_secret": "client-secret",
            "token_uri": fake.token_uri,
            "scopes": list(google_connect.SCOPES),
        }
    )


def busy_ics(uid: str, start: datetime, end: datetime) -> str:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//calsync//tests//EN")
    cal.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2030, 1, 1, tzinfo=UTC))
    event.add("dtstart", start.astimezone(UTC))
    event.add("dtend", end.astimezone(UTC))
    event.add("summary", "Busy")
    cal.add_component(event)
    return cal.to_ical().decode("utf-8")


def owner(db: Database) -> None:
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")


def connect(
    db: Database, settings: Settings, fake: FakeGoogle, role: CalendarRole = CalendarRole.BOTH
) -> CalendarConnection:
    return services.add_google_calendar(
        db, settings, OWNER, credentials_json=token_json(fake), role=role
    )


def event_type(db: Database, booking_calendar: int, conflicts: tuple[int, ...] = ()) -> None:
    save_event_type(
        db,
        coaching(
            booking_calendar_id=booking_calendar,
            conflict_calendar_ids=conflicts,
            price=Decimal("300"),
        ),
    )


def poll(db: Database, settings: Settings) -> None:
    poller = booking_poller(db, settings)
    try:
        results = poller.sync_now()
    finally:
        poller.stop()
    assert results and not [r.error for r in results if r.error]


def free_hours(db: Database, day: date) -> list[int]:
    slots = find_slots(db, get_event_type(db, "coaching"), at(day, 0), at(day, 23))
    return [s.start.astimezone(ZONE).hour for s in slots]


def test_connecting_stores_the_grant_encrypted_and_explains_bad_input(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    connection = connect(db, gsettings, fake)
    stored = services.get_calendar(db, connection.id)
    assert stored.provider is ProviderKind.GOOGLE
    # Stored by its real id (the account's address), named as Google names it.
    assert (stored.url, stored.display_name) == (fake.account, fake.account)
    assert stored.secret_encrypted and REFRESH not in stored.secret_encrypted
    grant = json.loads(SecretBox(gsettings.require_secret_key()).decrypt(stored.secret_encrypted))
    assert grant["refresh_token"] == REFRESH and "token" not in grant
    assert grant["token_uri"] == fake.token_uri
    # Google was asked before anything was stored, with the refreshed token and the quota key.
    checked = fake.requests[0]
    assert checked.headers["authorization"].startswith("Bearer access-")
    assert checked.query["quotaUser"] == f"owner-{stored.owner_id}"

    with pytest.raises(services.ServiceError, match=r"no calendar 'nope@example\.org'"):
        services.add_google_calendar(
            db, gsettings, OWNER, credentials_json=token_json(fake), calendar_id="nope@example.org"
        )
    with pytest.raises(services.ServiceError, match="no refresh_token"):
        services.add_google_calendar(db, gsettings, OWNER, credentials_json='{"token": "x"}')
    with pytest.raises(services.ServiceError, match="not JSON"):
        services.add_google_calendar(db, gsettings, OWNER, credentials_json="refresh-token")
    fake.revoked.add("gone")
    with pytest.raises(AuthFailed, match="calsync calendar add --google"):
        services.add_google_calendar(
            db, gsettings, OWNER, credentials_json=token_json(fake, "gone")
        )
    assert len(services.list_calendars(db)) == 1


def test_console_flow_needs_a_configured_client(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"google\.client_id"):
        google_connect.console_flow(settings)
    config = google_connect.client_config(
        settings.model_copy(update={"google": GoogleSettings(client_id="i", client_secret="s")})
    )
    assert config["installed"]["client_id"] == "i"


def test_sync_book_reschedule_and_cancel_a_package(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    mon = next_monday()
    fake.owner_insert(
        {
            "summary": "Dentist",
            "start": {"dateTime": utc(at(mon, 10))},
            "end": {"dateTime": utc(at(mon, 11))},
        }
    )
    owner(db)
    calendar = connect(db, gsettings, fake)
    event_type(db, calendar.id)
    poll(db, gsettings)
    busy = services.busy(db, calendar.id, at(mon, 0), at(mon, 23))
    assert [(i.start, i.end) for i in busy] == [(at(mon, 10), at(mon, 11))]
    assert 10 not in free_hours(db, mon)

    booking = book(
        db,
        gsettings,
        BookingRequest(
            "coaching", "Zoë", "zoe@example.org", (at(mon, 9), at(mon, 11), at(mon, 13))
        ),
    ).booking
    first, second, third = booking.sessions
    for booked in booking.sessions:
        event = fake.event(booked.href)
        assert event["iCalUID"] == booked.uid
        assert event["extendedProperties"]["private"][BOOKING_KEY] == booking.id
        assert event["start"]["dateTime"].startswith(booked.start.astimezone(ZONE).isoformat()[:16])
    assert free_hours(db, mon) == [12, 14, 15, 16]

    tue, wed = mon + timedelta(days=1), mon + timedelta(days=2)
    before_second = fake.event(second.href)["etag"]
    outcome = changes.reschedule(
        db,
        gsettings,
        booking.id,
        {first.id: at(tue, 10), third.id: at(wed, 15)},
        actor=Actor.CUSTOMER,
    )
    assert outcome.change.status is ChangeStatus.APPLIED
    for booked, when in ((first, at(tue, 10)), (third, at(wed, 15))):
        event = fake.event(booked.href)
        assert event["iCalUID"] == booked.uid
        moved = datetime.fromisoformat(event["start"]["dateTime"].replace("Z", "+00:00"))
        assert moved == when
        assert event["sequence"] == 1
    assert fake.event(second.href)["etag"] == before_second
    patches = [r for r in fake.writes() if r.method == "PATCH"]
    assert len(patches) == 2 and all("if-match" in r.headers for r in patches)
    assert all(
        set(r.body)
        <= {
            "start",
            "end",
            "summary",
            "description",
            "status",
            "transparency",
            "sequence",
            "extendedProperties",
        }
        for r in patches
    )

    outcome = changes.cancel(db, gsettings, booking.id, [second.id], actor=Actor.CUSTOMER)
    assert outcome.change.status is ChangeStatus.APPLIED
    marked = fake.event(second.href)
    # Still there on Google (status cancelled would delete it), marked and free.
    assert marked["status"] == "confirmed"
    assert marked["transparency"] == "transparent"
    assert marked["summary"].startswith("Cancelled: ")
    provider = open_provider(gsettings)(services.get_calendar(db, calendar.id))
    try:
        vevent = next(
            iter(icalendar.Calendar.from_ical(provider.get(second.href).data).walk("VEVENT"))
        )
        assert str(vevent["STATUS"]) == "CANCELLED"
        busy_now = provider.busy(at(mon, 0), at(mon, 23))
        assert [(b.start, b.end) for b in busy_now or []] == [(at(mon, 10), at(mon, 11))]
    finally:
        provider.close()
    # Polling it back changes nothing: calsync reads what it wrote.
    poll(db, gsettings)
    assert 11 in free_hours(db, mon)
    assert [s.status for s in get_booking(db, booking.id).sessions] == [
        SessionStatus.RESCHEDULED,
        SessionStatus.CANCELLED,
        SessionStatus.RESCHEDULED,
    ]

    # Delete mode: the event is gone on Google.
    with db.writing() as session:
        stored = session.get(CalendarConnection, calendar.id)
        assert stored is not None
        stored.cancel_mode = CancelMode.DELETE
    changes.cancel(db, gsettings, booking.id, [third.id], actor=Actor.CUSTOMER)
    assert fake.event(third.href)["status"] == "cancelled"

    # calsync sends the invites itself: Google is never asked to notify anyone.
    writes = fake.writes()
    assert len(writes) == 3 + 2 + 1 + 1
    assert all(r.query.get("sendUpdates") == "none" for r in writes)
    assert all(r.query.get("quotaUser") == f"owner-{calendar.owner_id}" for r in fake.requests)


def test_a_mixed_owner_gets_availability_that_honours_both_calendars(
    db: Database, gsettings: Settings, fake: FakeGoogle, radicale_server: ServerProcess
) -> None:
    mon = next_monday()
    owner(db)
    url = radicale_server.new_calendar()
    (caldav,) = services.add_caldav_calendar(
        db, gsettings, services.CalDAVRequest(OWNER, url, role=CalendarRole.CONFLICTS)
    )
    google = connect(db, gsettings, fake)
    put_event(url, busy_ics("caldav-busy", at(mon, 9), at(mon, 10)))
    fake.owner_insert(
        {
            "summary": "Google busy",
            "start": {"dateTime": utc(at(mon, 14))},
            "end": {"dateTime": utc(at(mon, 15))},
        }
    )
    event_type(db, google.id, conflicts=(caldav.id, google.id))
    poll(db, gsettings)
    assert free_hours(db, mon) == [10, 11, 12, 13, 15, 16]

    booking = book(
        db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 12),))
    ).booking
    assert fake.event(booking.sessions[0].href)["iCalUID"] == booking.sessions[0].uid
    assert free_hours(db, mon) == [10, 11, 13, 15, 16]


def test_a_token_naming_a_foreign_token_uri_is_refused(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    token = json.loads(token_json(fake)) | {"token_uri": "https://evil.example/token"}
    with pytest.raises(services.ServiceError, match="sends refresh tokens only to"):
        services.add_google_calendar(db, gsettings, OWNER, credentials_json=json.dumps(token))
    assert fake.requests == []


def test_the_cli_connects_with_a_token_file(
    tmp_path: Path, database_url: str, fake: FakeGoogle
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    env = {"CALSYNC_GOOGLE__API_ENDPOINT": fake.endpoint}
    token = tmp_path / "token.json"
    token.write_text(token_json(fake))
    added = json.loads(
        cli.ok(
            "calendar",
            "add",
            "--owner",
            OWNER,
            "--google-token-file",
            str(token),
            "--json",
            env=env,
        )
    )
    assert [(a["url"], a["name"]) for a in added] == [(fake.account, fake.account)]
    message = cli.fails("calendar", "add", "--owner", OWNER, "--google", env=env)
    assert "google.client_id" in message
    assert "the [google] section" in message  # printed as it is, not taken for markup
    message = cli.fails("calendar", "add", "--owner", OWNER)
    assert "--caldav URL or --google" in message


def test_polls_reuse_the_access_token_until_google_revokes_the_grant(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    calendar = connect(db, gsettings, fake)
    refreshes = fake.token_refreshes  # connecting asks once, with credentials of its own
    for _ in range(3):
        poll(db, gsettings)
    # One access token for all three polls, not one per poll.
    assert fake.token_refreshes == refreshes + 1
    # Google revokes the grant: the kept access token stops working at once too.
    fake.revoked.add(REFRESH)
    poller = booking_poller(db, gsettings)
    try:
        (result,) = poller.sync_now()
    finally:
        poller.stop()
    assert result.error and "calsync calendar add --google" in result.error
    stored = services.get_calendar(db, calendar.id)
    assert stored.status is ConnectionStatus.NEEDS_RECONNECT
    assert "run `calsync calendar add --google` again" in (stored.last_error or "")


def test_a_configuration_change_is_not_taken_for_a_revoked_grant(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    calendar = connect(db, gsettings, fake)
    # The operator points calsync elsewhere: the stored grant's token URI is not allowed now.
    moved = gsettings.model_copy(
        update={"google": GoogleSettings(api_endpoint="http://127.0.0.2:9/calendar/v3/")}
    )
    poller = booking_poller(db, moved)
    try:
        (result,) = poller.sync_now()
    finally:
        poller.stop()
    assert result.error and "token_uri" in result.error
    assert services.get_calendar(db, calendar.id).status is ConnectionStatus.AUTH_FAILED
    assert outbox.list_messages(db) == []  # no owner is asked to reconnect for it


def test_a_booking_survives_google_losing_its_answer(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    calendar = connect(db, gsettings, fake)
    event_type(db, calendar.id)
    poll(db, gsettings)
    mon = next_monday()
    fake.inject(503, "backendError", after=True)  # the insert is saved, its answer lost
    made = book(db, gsettings, BookingRequest("coaching", "Zoë", "zoe@example.org", (at(mon, 9),)))
    (session,) = get_booking(db, made.booking.id).sessions
    assert session.status is SessionStatus.BOOKED
    events = [s.event for s in fake.calendars["primary"].events.values()]
    assert [(e["id"], e["iCalUID"]) for e in events] == [(session.href, session.uid)]
    assert session.etag == events[0]["etag"]


def test_each_owners_requests_name_that_owner_as_quota_user(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    first = connect(db, gsettings, fake)
    services.add_owner(db, name="Second", email="second@example.org", timezone="UTC")
    fake.add_calendar("second@example.org", summary="Second")
    second = services.add_google_calendar(
        db,
        gsettings,
        "second@example.org",
        credentials_json=token_json(fake, "refresh-token-2"),
        calendar_id="second@example.org",
    )
    fake.requests.clear()
    poll(db, gsettings)
    by_calendar = {
        unquote(r.path.split("/")[4]): r.query.get("quotaUser")
        for r in fake.requests
        if "/events" in r.path
    }
    owners = {c.url: c.owner_id for c in services.list_calendars(db)}
    assert first.owner_id != second.owner_id
    assert by_calendar == {url: f"owner-{owner_id}" for url, owner_id in owners.items()}


def test_calsyncs_busy_time_is_googles_free_busy(
    db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    """What calsync reads from the events (its own expansion) and what Google's freeBusy says
    (the fake's, written apart from calsync's) agree, series and exceptions included: the
    live check subtracts one from the other."""
    seed_google(fake, seed_monday())
    mon = next_monday()
    series = fake.owner_insert(
        {
            "summary": "Gym (shown as free)",
            "transparency": "transparent",
            "start": {"dateTime": f"{mon}T07:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": f"{mon}T08:00:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=10"],
        }
    )
    tue = mon + timedelta(days=1)
    fake.owner_insert(  # one morning moved, otherwise as the series (so still free)
        {
            "recurringEventId": series["id"],
            "originalStartTime": {"dateTime": utc(at(tue, 7))},
            "start": {"dateTime": utc(at(tue, 18))},
            "end": {"dateTime": utc(at(tue, 19))},
        }
    )
    owner(db)
    calendar = connect(db, gsettings, fake)
    poll(db, gsettings)
    start = datetime.combine(mon - timedelta(days=7), datetime.min.time(), UTC)
    end = start + timedelta(days=60)
    ours = merge_intervals(services.busy(db, calendar.id, start, end))
    provider = open_provider(gsettings)(services.get_calendar(db, calendar.id))
    try:
        googles = provider.busy(start, end)
    finally:
        provider.close()
    assert len(ours) >= 8  # the seeded week is there
    assert ours == googles
