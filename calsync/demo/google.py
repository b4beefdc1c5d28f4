"""``calsync demo --google-fake``: the demo with the owner's calendar in (fake) Google Calendar.

Instead of Radicale, the fake Google Calendar v3 server from ``calsync.testing`` runs on
loopback. The owner's ``primary`` calendar there is seeded with the same week as the CalDAV
demo, converted the way Google keeps such events (a series with ``recurrence`` lines, its
moved instance as an exception event), and calsync connects it through its normal Google path:
an OAuth token JSON whose ``token_uri`` is the fake's ``/token`` endpoint, and
``google.api_endpoint`` pointing at the fake. Everything after connecting is the CalDAV demo's
(``demo.run_connected``).

The fake keeps its events in memory only, so every run starts afresh: the calsync database and
the mail folder of the previous run are removed first (their data would point at events that
no longer exist).
"""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from rich.console import Console
from rich.table import Table

from calsync.calendars.google import account as google_connect
from calsync.calendars.google.ics import BOOKING_KEY, ics_to_event
from calsync.config import GoogleSettings
from calsync.demo.caldav import (
    OWNER_EMAIL,
    OWNER_ZONE,
    ConnectedCalendar,
    add_demo_owner,
    demo_settings,
    example_event,
    run_connected,
    say,
    seed_monday,
    seed_week,
)
from calsync.store.db import Database
from calsync.store.models import CalendarRole
from calsync.sync import connections as services
from calsync.testing.google_fake import FakeGoogle
from calsync.web.signin import flow as google_signin

Event = dict[str, Any]
CALENDAR_ID = "primary"
# A bearer token the demo's fake accepts as it is: for the person's curl lines and for
# listing the fake's events in the output.
DEMO_BEARER = "demo"


def demo_fake() -> FakeGoogle:
    """A fake (not started) holding the owner's Google account, whose primary calendar is in
    her zone: calsync reads the zone from the calendar list, and all-day events are days there.
    """
    fake = FakeGoogle(calendars=())
    fake.account = OWNER_EMAIL
    fake.static_tokens.add(DEMO_BEARER)
    # At Google the primary calendar is named after the account's address.
    fake.add_calendar(CALENDAR_ID, summary=OWNER_EMAIL, time_zone=OWNER_ZONE)
    # More calendars to choose from on the sign-in page.
    fake.add_calendar("family@group.calendar.google.com", summary="Family", time_zone=OWNER_ZONE)
    fake.add_calendar(
        "holidays@group.v.calendar.google.com", summary="Holidays", access_role="reader"
    )
    return fake


def seed_google(fake: FakeGoogle, monday: date) -> int:
    """Put the demo week into the fake's primary calendar, as Google would hold it.

    Each seed item's first VEVENT becomes one event (``recurrence`` keeps its RRULE and
    EXDATE lines); an instance with a RECURRENCE-ID becomes an exception event, as Google
    stores a moved instance: ``recurringEventId`` and ``originalStartTime``, and an id made of
    the series' id and the original start. Returns the number of events inserted.
    """
    inserted = 0
    for text in seed_week(monday).values():
        master, *moved = icalendar.Calendar.from_ical(text).walk("VEVENT")
        series = fake.owner_insert(_google_body(master), CALENDAR_ID)
        inserted += 1
        for instance in moved:
            original: datetime = instance.decoded("RECURRENCE-ID")
            del instance["RECURRENCE-ID"]
            body = _google_body(instance) | {
                "id": f"{series['id']}_{original.astimezone(UTC):%Y%m%dT%H%M%SZ}",
                "recurringEventId": series["id"],
                "originalStartTime": {"dateTime": original.isoformat(), "timeZone": OWNER_ZONE},
            }
            fake.owner_insert(body, CALENDAR_ID)
            inserted += 1
    return inserted


def _google_body(vevent: icalendar.Component) -> Event:
    """Google's JSON for one VEVENT, made by the Google provider's own converter."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//calsync//demo//EN")
    cal.add("version", "2.0")
    cal.add_component(vevent)
    body = ics_to_event(cal.to_ical().decode("utf-8"))
    # extendedProperties is calsync's bookkeeping on events it writes; the owner's own events
    # in Google have none.
    body.pop("extendedProperties", None)
    return body


CLIENT_ID = "calsync-demo.apps.googleusercontent.com"
CLIENT_SECRET = "demo-client-secret"


def google_settings(fake: FakeGoogle) -> GoogleSettings:
    """The demo's OAuth client, with every Google address pointing at the fake."""
    return GoogleSettings(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        api_endpoint=fake.endpoint,
        auth_uri=fake.auth_uri,
        token_uri=fake.token_uri,
    )


def grant_json(fake: FakeGoogle) -> str:
    """The owner's OAuth grant as ``Credentials.to_json()`` writes it after consent.

    Its ``token_uri`` is the fake's ``/token``, which hands out an access token for any refresh
    token it has not been told is revoked; calsync accepts that URI because it is on the host of
    ``google.api_endpoint``.
    """
    return json.dumps(
        {
            "refresh_token": "demo-refresh-token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token_uri": fake.token_uri,
            "scopes": list(google_connect.SCOPES),
        }
    )


def fake_events(fake: FakeGoogle) -> list[Event]:
    """The events in the fake's primary calendar, read over HTTP as a client would (the same
    request as the printed curl line)."""
    events: list[Event] = []
    page: str | None = None
    while True:
        url = _events_url(fake) + (f"?pageToken={page}" if page else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {DEMO_BEARER}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            listing = json.load(answer)
        events += listing.get("items", [])
        page = listing.get("nextPageToken")
        if not page:
            return events


def _events_url(fake: FakeGoogle) -> str:
    return f"{fake.endpoint}calendars/{CALENDAR_ID}/events"


def _curl(fake: FakeGoogle, extra: str = "") -> str:
    return f"curl -H 'Authorization: Bearer {DEMO_BEARER}' {extra}'{_events_url(fake)}'"


def _events_table(fake: FakeGoogle) -> Table:
    zone = ZoneInfo(OWNER_ZONE)
    table = Table(
        "event",
        "starts",
        "kind",
        "iCalUID",
        title=f"Events in the fake Google calendar ({OWNER_ZONE})",
    )
    for event in fake_events(fake):
        start = event.get("start", {})
        if "dateTime" in start:
            when = f"{datetime.fromisoformat(start['dateTime']).astimezone(zone):%a %d %b %H:%M}"
        else:
            when = f"{date.fromisoformat(start['date']):%a %d %b} (all day)"
        table.add_row(event.get("summary", ""), when, _kind(event), event.get("iCalUID", ""))
    return table


def _kind(event: Event) -> str:
    """What makes the event interesting for calsync, in a few words."""
    if BOOKING_KEY in event.get("extendedProperties", {}).get("private", {}):
        return "booked by calsync"
    if "recurringEventId" in event:
        return "moved instance of a series"
    kinds = ["series"] if "recurrence" in event else []
    if event.get("transparency") == "transparent":
        kinds.append("shown as free")
    if "date" in event.get("start", {}):
        kinds.append("all day")
    return ", ".join(kinds)


def _google_hints(console: Console, fake: FakeGoogle, data_dir: Path, sign_in: str) -> None:
    example = data_dir / "example-event.json"
    uid = f"example-{uuid.uuid4().hex[:8]}"
    (vevent,) = icalendar.Calendar.from_ical(example_event(uid)).walk("VEVENT")
    body = _google_body(vevent)
    example.write_text(json.dumps(body, indent=2) + "\n")
    console.print("To add an event tomorrow 10:00-11:00 to the fake Google calendar:\n")
    headers = "-H 'Content-Type: application/json' "
    say(console, f"  {_curl(fake, f'{headers}-d @{example} ')}")
    say(console, f"\nTo see the events as Google's API lists them:\n\n  {_curl(fake)}")
    say(
        console,
        "\nTo connect more of Ada's calendars the way an owner would, through Google's sign-in "
        "(the fake agrees at once) and calsync's calendar choice, open within 15 minutes:"
        f"\n\n  {sign_in}",
    )


def _forget_previous_run(data_dir: Path) -> None:
    """Remove the calsync database and mail of an earlier run: the fake forgot its events."""
    for path in data_dir.glob("calsync.db*"):  # with SQLite's -wal/-shm/-journal files
        path.unlink()
    shutil.rmtree(data_dir / "mail", ignore_errors=True)


def run_google_demo(
    data_dir: Path,
    *,
    once: bool,
    console: Console,
    port: int = 8000,
    fake: FakeGoogle | None = None,
) -> None:
    """The demo against a fake Google Calendar server; ``data_dir`` is emptied of the previous
    run's database and mail first.

    ``fake``: a running fake to use (a test looks into it afterwards), set up like
    ``demo_fake()``; by default the demo starts its own on a free loopback port and stops it at
    the end.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_previous_run(data_dir)
    server = fake or demo_fake().start()
    try:
        settings = demo_settings(data_dir, port).model_copy(
            update={"google": google_settings(server)}
        )
        db = Database(settings.database_url)
        try:
            db.migrate()
            say(
                console,
                f"Fake Google Calendar API on {server.endpoint} (calendar {CALENDAR_ID!r}). It "
                "keeps events in memory only, so each run starts afresh, with a new calsync "
                f"database in {data_dir}/.",
            )
            seeded = seed_google(server, seed_monday())
            add_demo_owner(db)
            connection = services.add_google_calendar(
                db,
                settings,
                OWNER_EMAIL,
                credentials_json=grant_json(server),
                calendar_id=CALENDAR_ID,
                role=CalendarRole.BOTH,
            )
            console.print(
                f"Seeded it with a week of events ({seeded} Google events) and connected "
                f"{connection.display_name!r} (id {connection.id}, zone {connection.timezone})."
            )
            calendar = ConnectedCalendar(
                connection.id,
                show_booked=lambda c: c.print(_events_table(server)),
                show_how_to_change=lambda c: _google_hints(
                    c, server, data_dir, google_signin.sign_in_url(settings, connection.owner_id)
                ),
                on_exit="the fake Google calendar forgets its events, and the next run "
                "starts afresh.",
            )
            run_connected(db, settings, calendar, once=once, console=console, port=port)
        finally:
            db.dispose()
    finally:
        if fake is None:
            server.stop()
