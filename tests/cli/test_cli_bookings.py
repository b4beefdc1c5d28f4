"""``calsync book`` and ``calsync booking …`` as the owner runs them, against real Radicale."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.config import Settings
from calsync.store.db import Database
from tests.cli.test_cli import Cli
from tests.conftest import SECRET_KEY
from tests.support.servers import ServerProcess
from tests.web.test_api_bookings import app_client

OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_book_show_move_and_cancel_from_the_command_line(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.coach(OWNER, radicale_server.new_calendar())
    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=7 - today.weekday())
    booked = json.loads(
        cli.ok(
            "book",
            "--event-type",
            "coaching",
            "--customer-email",
            "zoe@example.org",
            "--customer-name",
            "Zoë",
            "--customer-timezone",
            "America/New_York",
            "--start",
            f"{monday}T09:00",
            "--start",
            f"{monday}T11:00",
            "--json",
        )
    )
    assert len(booked["sessions"]) == 2
    assert booked["manage_url"].startswith("http://127.0.0.1:8000/m/")
    assert (
        booked["sessions"][0]["start"]
        == datetime.combine(monday, time(9), BERLIN)
        .astimezone(ZoneInfo("America/New_York"))
        .isoformat()
    )

    taken = cli.fails(
        "book",
        "--event-type",
        "coaching",
        "--customer-email",
        "x@example.org",
        "--customer-name",
        "X",
        "--start",
        f"{monday}T09:00",
    )
    assert "is not free" in taken

    cli.ok(
        "booking",
        "reschedule",
        booked["id"],
        "--session",
        "1",
        "--to",
        f"{monday}T09:00-05:00",
        "--reason",
        "Flight moved",
    )
    cli.ok("booking", "cancel", booked["id"], "--session", "2")
    shown = json.loads(cli.ok("booking", "show", booked["id"], "--json"))
    assert [s["status"] for s in shown["sessions"]] == ["rescheduled", "cancelled"]
    assert datetime.fromisoformat(shown["sessions"][0]["start"]) == datetime.fromisoformat(
        f"{monday}T09:00-05:00"
    )
    assert [(c["kind"], c["actor"], c["status"]) for c in shown["changes"]] == [
        ("reschedule", "owner", "applied"),
        ("cancel", "owner", "applied"),
    ]
    assert shown["changes"][0]["reason"] == "Flight moved"
    assert "the booking has no session 3" in cli.fails(
        "booking", "cancel", booked["id"], "--session", "3"
    )

    # One shape for a booking: the CLI prints exactly what the API answers (ids, times in the
    # customer's zone with their offsets, the link, history and changes).
    settings = Settings(database_url=database_url, secret_key=SECRET_KEY)
    db = Database(database_url)
    try:
        with app_client(settings, db) as api:
            answer = api.get(f"/api/bookings/{booked['id']}")
        assert answer.status_code == 200
        shown = json.loads(cli.ok("booking", "show", booked["id"], "--json"))
        assert shown == answer.json()
        moved_to = datetime.fromisoformat(f"{monday}T09:00-05:00")
        assert shown["sessions"][0]["start"] == moved_to.astimezone(NEW_YORK).isoformat()
        assert [c["items"][0]["position"] for c in shown["changes"]] == [1, 2]
    finally:
        db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_request_reschedule_revoke_and_resend_confirmation_from_the_command_line(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.coach(OWNER, radicale_server.new_calendar(), "--reschedule", "never")
    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=7 - today.weekday())
    booked = json.loads(
        cli.ok(
            "book",
            "--event-type",
            "coaching",
            "--customer-email",
            "zoe@example.org",
            "--customer-name",
            "Zoë",
            "--start",
            f"{monday}T09:00",
            "--start",
            f"{monday}T11:00",
            "--json",
        )
    )
    booking_id = booked["id"]

    said = cli.ok(
        "booking",
        "request-reschedule",
        booking_id,
        "--session",
        "2",
        "--message",
        "The room is taken",
        "--days",
        "3",
    )
    assert "Zoë <zoe@example.org> is asked to choose new times for session 2" in said
    assert f"Their link: {booked['manage_url']}?tab=reschedule&request=" in said
    made = json.loads(
        cli.ok("booking", "request-reschedule", booking_id, "--session", "1", "--json")
    )
    assert made["sessions"] == [1] and made["url"].startswith(booked["manage_url"])
    shown = json.loads(cli.ok("booking", "show", booking_id, "--json"))
    asked = [h for h in shown["history"] if h["action"] == "reschedule_requested"]
    assert [(h["actor"], h["reason"], h["details"]["sessions"]) for h in asked] == [
        ("owner", "The room is taken", [2]),
        ("owner", None, [1]),
    ]
    assert asked[1]["details"]["replaces"] == [asked[0]["details"]["request"]]
    assert "reschedule_requested" in cli.ok("booking", "show", booking_id)

    assert f"Request {made['id']} withdrawn" in cli.ok("booking", "revoke-request", booking_id)
    assert "has no open reschedule request" in cli.fails("booking", "revoke-request", booking_id)
    assert "the booking has no session 3" in cli.fails(
        "booking", "request-reschedule", booking_id, "--session", "3"
    )

    assert "Queued the confirmation to zoe@example.org" in cli.ok(
        "booking", "resend-confirmation", booking_id
    )
    outbox = json.loads(cli.ok("outbox", "list", "--json"))
    subjects = [m["subject"] for m in outbox]
    assert subjects.count("Coach asks you to choose a new time: Coaching") == 2
    assert subjects.count("Your 2 sessions are confirmed: Coaching") == 2  # booked, resent
    assert "no booking 'nope'" in cli.fails("booking", "resend-confirmation", "nope")
