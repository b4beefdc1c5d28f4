"""What the owner does from the command line without hurting the customer (issue 12): moves
checked against busy time and hours unless forced, never charged or counted as the customer's;
one zone for times without an offset; calendars not removed from under bookings; calendar
settings changed in place; bookings listed.

Real ``calsync`` processes on both databases, calendars on a real Radicale server.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.cli.test_cli import Cli
from tests.support.servers import ServerProcess, put_event

OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def next_monday() -> datetime:
    today = datetime.now(BERLIN).date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), time(0), BERLIN)


def busy_event(uid: str, start: datetime, minutes: int = 60) -> str:
    end = start + timedelta(minutes=minutes)
    utc = ZoneInfo("UTC")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Dentist\r\n"
        f"DTSTART:{start.astimezone(utc):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{end.astimezone(utc):%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def setup_shop(cli: Cli, calendar_url: str, *extra: str) -> None:
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    cli.ok("calendar", "add", "--owner", OWNER, "--caldav", calendar_url, "--role", "both")
    cli.ok(
        "event-type",
        "add",
        "--owner",
        OWNER,
        "--slug",
        "coaching",
        "--duration",
        "60",
        "--booking-calendar",
        "1",
        *extra,
    )


def book(cli: Cli, *starts: str, email: str = "zoe@example.org") -> dict:
    args = ["book", "--event-type", "coaching", "--customer-email", email]
    args += ["--customer-name", "Zoë", "--customer-timezone", "America/New_York"]
    for start in starts:
        args += ["--start", start]
    return json.loads(cli.ok(*args, "--json"))


def test_owner_moves_are_checked_never_charged_and_read_in_the_event_types_zone(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    url = radicale_server.new_calendar()
    setup_shop(cli, url, "--price", "100", "--reschedule-fee", "10%", "--max-reschedules", "1")
    monday = next_monday()
    day = f"{monday:%Y-%m-%d}"
    put_event(url, busy_event("dentist", monday.replace(hour=14)))
    cli.ok("sync", "--once")
    booked = book(cli, f"{day}T09:00")
    booking = booked["id"]

    def move(to: str, *extra: str) -> list[str]:
        return ["booking", "reschedule", booking, "--session", "1", "--to", to, *extra]

    busy = cli.fails(*move(f"{day}T14:00"))
    assert "is busy in the owner's calendar" in busy
    assert "--force" in busy and f"calsync availability --event-type coaching --from {day}" in busy
    assert "outside the working hours" in cli.fails(*move(f"{day}T20:00"))
    assert "off the slot grid" in cli.fails(*move(f"{day}T10:30"))
    unchanged = json.loads(cli.ok("booking", "show", booking, "--json"))
    assert unchanged["changes"] == []

    # No offset: read in the event type's zone (Berlin), not the customer's (New York).
    moved = cli.ok(*move(f"{day}T11:00"))
    assert f"session 1 now starts {monday:%a} {day} 11:00 Europe/Berlin" in moved
    assert f"{monday:%a} {day} 05:00 America/New_York for the customer" in moved
    forced = cli.ok(*move(f"{day}T14:00", "--force"))
    assert "--force: the busy-time, working-hours, notice and slot-grid checks were skipped" in (
        " ".join(forced.split())
    )

    shown = json.loads(cli.ok("booking", "show", booking, "--json"))
    (session,) = shown["sessions"]
    assert datetime.fromisoformat(session["start"]) == monday.replace(hour=14)
    # Two owner moves: no fee, the customer's allowance (1) untouched, history says owner.
    assert session["reschedule_count"] == 0
    assert [(c["actor"], c["fee"], c["status"]) for c in shown["changes"]] == [
        ("owner", None, "applied"),
        ("owner", None, "applied"),
    ]
    assert [h["actor"] for h in shown["history"] if h["action"] == "rescheduled"] == [
        "owner",
        "owner",
    ]


def test_book_explains_why_a_time_is_not_offered(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    url = radicale_server.new_calendar()
    setup_shop(cli, url, "--notice", "120")
    monday = next_monday()
    day = f"{monday:%Y-%m-%d}"
    put_event(url, busy_event("dentist", monday.replace(hour=14)))
    cli.ok("sync", "--once")

    def refusal(start: str) -> str:
        args = ["book", "--event-type", "coaching", "--customer-email", "x@example.org"]
        return cli.fails(*args, "--customer-name", "X", "--start", start)

    assert "is busy in the owner's calendar" in refusal(f"{day}T14:00")
    assert "outside the working hours" in refusal(f"{day}T07:00")
    off_grid = refusal(f"{day}T09:20")
    assert "off the slot grid: sessions start every 1 hour from 09:00" in off_grid
    assert f"`calsync availability --event-type coaching --from {day}" in off_grid
    far = monday + timedelta(days=70)
    assert "beyond the horizon" in refusal(f"{far:%Y-%m-%d}T10:00")
    now = datetime.now(BERLIN).replace(second=0, microsecond=0) + timedelta(minutes=30)
    assert "inside the notice: sessions need 2 hours notice" in refusal(now.isoformat())


def event_on_server(radicale: ServerProcess, href: str) -> str:
    base = radicale.new_calendar().split("/alice/")[0]
    with urllib.request.urlopen(base + href) as answer:
        return answer.read().decode()


def test_a_calendar_with_bookings_is_not_removed_from_under_them(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    setup_shop(cli, radicale_server.new_calendar())
    day = f"{next_monday():%Y-%m-%d}"
    booked = book(cli, f"{day}T09:00")

    refused = cli.fails("calendar", "remove", "1")
    assert "calendar 1 is still in use" in refused
    assert booked["id"] in refused and "booking calendar of event type(s) coaching" in refused
    assert "calsync calendar remove 1 --force" in refused
    assert json.loads(cli.ok("calendar", "list", "--json"))[0]["id"] == 1
    assert (
        json.loads(cli.ok("event-type", "show", "coaching", "--json"))["booking_calendar_id"] == 1
    )

    # A role that takes no bookings would strand the event type too.
    assert "needs role bookings or both" in cli.fails("calendar", "set", "1", "--role", "conflicts")

    removed = " ".join(cli.ok("calendar", "remove", "1", "--force").split())
    assert "Removed calendar 1." in removed
    assert "their events stay on the server untouched" in removed

    # The event is still on the server, so a cancel must not claim it was applied there.
    cancelled = " ".join(cli.ok("booking", "cancel", booked["id"], "--session", "1").split())
    assert "conflict" in cancelled and "its calendar was disconnected" in cancelled
    shown = json.loads(cli.ok("booking", "show", booked["id"], "--json"))
    assert shown["changes"][0]["status"] == "conflict"
    href = booked["sessions"][0]["href"]
    assert "STATUS:CANCELLED" not in event_on_server(radicale_server, href)


def test_calendar_set_and_adding_a_connected_url_again(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    url = radicale_server.new_calendar()
    cli.ok("calendar", "add", "--owner", OWNER, "--caldav", url)
    again = cli.fails("calendar", "add", "--owner", OWNER, "--caldav", url, "--role", "both")
    assert "connected already: calendar 1 (role conflicts)" in again
    assert "calsync calendar set 1 --role both" in again
    assert len(json.loads(cli.ok("calendar", "list", "--json"))) == 1

    changed = json.loads(
        cli.ok(
            "calendar",
            "set",
            "1",
            "--role",
            "both",
            "--cancel-mode",
            "delete",
            "--name",
            "Work",
            "--json",
        )
    )
    assert changed == {"id": 1, "name": "Work", "role": "both", "cancel_mode": "delete"}
    assert "say what to change" in cli.fails("calendar", "set", "1")
    # Now the calendar takes bookings, an event type books into it by default.
    added = cli.ok("event-type", "add", "--owner", OWNER, "--slug", "intro", "--duration", "30")
    assert "no booking calendar" not in added
    assert json.loads(cli.ok("event-type", "show", "intro", "--json"))["booking_calendar_id"] == 1


def test_event_type_edit_changes_what_is_given_and_names_options_in_errors(
    tmp_path: Path, database_url: str
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    added = " ".join(
        cli.ok(
            "event-type", "add", "--owner", OWNER, "--slug", "coaching", "--duration", "60"
        ).split()
    )
    assert "coaching has no booking calendar: it shows free times but cannot be booked" in added
    assert "calsync event-type edit coaching --booking-calendar ID" in added
    cli.ok(
        "event-type",
        "edit",
        "coaching",
        "--title",
        "Deep work",
        "--hours",
        "tue 10:00-12:00",
        "--cancel",
        "until",
        "--cancel-notice",
        "1440",
    )
    shown = json.loads(cli.ok("event-type", "show", "coaching", "--json"))
    assert shown["title"] == "Deep work" and shown["duration_minutes"] == 60
    assert shown["weekly_hours"] == {"tue": [["10:00", "12:00"]]}
    assert shown["policy"]["cancel"]["permission"] == "until"
    assert shown["policy"]["cancel"]["notice_minutes"] == 1440
    missing = cli.fails("event-type", "edit", "coaching", "--reschedule", "until")
    assert "--reschedule-notice (policy.reschedule.notice)" in missing
    assert "no event type" in cli.fails("event-type", "edit", "nope", "--title", "X")


def test_booking_list_filters_and_relink_emails_the_new_link(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    setup_shop(cli, radicale_server.new_calendar())
    day = f"{next_monday():%Y-%m-%d}"
    zoe = book(cli, f"{day}T09:00")
    sam = book(cli, f"{day}T11:00", email="sam@example.org")

    def listed(*filters: str) -> list[str]:
        return [b["id"] for b in json.loads(cli.ok("booking", "list", *filters, "--json"))]

    assert listed() == [zoe["id"], sam["id"]]
    assert listed("--customer", "SAM@") == [sam["id"]]
    assert listed("--owner", OWNER, "--event-type", "coaching", "--upcoming") == [
        zoe["id"],
        sam["id"],
    ]
    assert listed("--past") == []
    assert "no event type" in cli.fails("booking", "list", "--event-type", "nope")
    table = cli.ok("booking", "list", "--customer", "zoe")
    assert zoe["id"] in table and sam["id"] not in table

    before = {m["id"] for m in json.loads(cli.ok("outbox", "list", "--json"))}
    relinked = " ".join(cli.ok("booking", "relink", zoe["id"], "--email").split())
    assert "Queued an email with the new link to zoe@example.org" in relinked
    new_mail = [m for m in json.loads(cli.ok("outbox", "list", "--json")) if m["id"] not in before]
    assert len(new_mail) == 1 and "zoe@example.org" in new_mail[0]["recipient"]
    assert new_mail[0]["booking_id"] == zoe["id"] and new_mail[0]["role"] == "customer"
