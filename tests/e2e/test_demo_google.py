"""``calsync demo --google-fake``: what a person sees when the demo runs against the fake
Google Calendar server, and that the booking really went through Google's API."""

from __future__ import annotations

import io
import re
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from calsync.bookings.packages import get_booking
from calsync.demo.caldav import demo_settings, seed_monday
from calsync.demo.google import demo_fake, run_google_demo
from calsync.store.db import Database
from calsync.web.app import create_app
from tests.cli.test_cli import Cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient


def busy_rows(output: str) -> set[tuple[str, str, str]]:
    """The (day, from, to) rows of the printed busy table."""
    table = output.split("Busy time in the next", 1)[1].split("free times in", 1)[0]
    rows = set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 3:
            rows.add((cells[0], cells[1], cells[2]))
    return rows


def test_google_demo_once_books_into_google_and_prints_a_working_link(tmp_path: Path) -> None:
    data_dir = tmp_path / "google"
    printed = io.StringIO()
    with demo_fake() as fake:
        run_google_demo(data_dir, once=True, console=Console(file=printed, width=200), fake=fake)
        endpoint = fake.endpoint
    # The fake is stopped now; its events stay in memory for the checks below.
    output = printed.getvalue()
    assert f"Fake Google Calendar API on {endpoint}" in output
    assert "full sync: 5 event(s) new or changed, 0 removed" in output

    # The seeded week, read back from Google: the stand-up series without its skipped Friday,
    # the team meeting's moved instance (not its original time), the all-day conference in
    # the calendar's zone, the lunch; the focus time is free.
    mon = seed_monday()
    day = {
        n: f"{mon + timedelta(days=i):%a %d %b}"
        for i, n in enumerate(["mon", "tue", "wed", "thu", "fri"])
    }
    rows = busy_rows(output)
    assert {
        (day["mon"], "09:00", "09:15"),
        (day["mon"], "12:30", "13:30"),
        (day["tue"], "09:00", "09:15"),
        (day["tue"], "16:00", "17:00"),
        (day["wed"], "09:00", "09:15"),
        (day["thu"], "00:00", "00:00 (Fri)"),
    } <= rows
    assert (day["tue"], "14:00", "15:00") not in rows
    assert not [r for r in rows if r[0] == day["fri"]]
    assert not [r for r in rows if r[0] == day["wed"] and r[1] == "13:00"]

    # The three sessions are events in the fake, with the session UIDs as iCalUIDs, at the
    # booked times, and the table of the fake's events shows them.
    booking_id = re.search(r"Booked 3 sessions for Grace Hopper \(booking (\w+)\)", output)
    assert booking_id, output
    settings = demo_settings(data_dir, 8000)
    db = Database(settings.database_url)
    try:
        booking = get_booking(db, booking_id.group(1))
    finally:
        db.dispose()
    assert len(booking.sessions) == 3
    for session in booking.sessions:
        event = fake.event(session.href)
        assert event["iCalUID"] == session.uid
        assert event["status"] == "confirmed"
        assert "calsyncBooking" in event["extendedProperties"]["private"]
        assert session.uid in output
    assert output.count("booked by calsync") == 3

    # The printed manage link answers from the app.
    link = re.search(r"Her manage link: (\S+)", output)
    assert link and link.group(1).startswith("http://127.0.0.1:8000/m/")
    with TestClient(create_app(settings)) as client:
        page = client.get(link.group(1).removeprefix(settings.base_url))
        assert page.status_code == 200
        assert "Coaching session" in page.text

        # The printed booking page takes bookings, with free times from the Google calendar.
        booking_page = re.search(r"The booking page: (\S+)", output)
        assert booking_page and booking_page.group(1) == f"{settings.base_url}/b/ada/coaching"
        path = booking_page.group(1).removeprefix(settings.base_url)
        assert "3 sessions" in client.get(path).text
        times = client.get(f"{path}/times", params={"package": "3", "tz": "America/New_York"})
    assert times.status_code == 200
    assert 'type="radio" name="pick"' in times.text

    # The printed console link signs Ada in, once.
    console_link = re.search(
        r"Ada's console \(signs her in once, within 15 minutes\): (\S+)", output
    )
    assert console_link and "/console/link/" in console_link.group(1), output
    path = console_link.group(1).removeprefix(settings.base_url)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        opened = client.get(path)
        csrf = re.search(r'name="csrf" value="([^"]+)"', opened.text)
        assert opened.status_code == 200 and csrf
        signed_in = client.post(path, data={"csrf": csrf.group(1)})
        assert signed_in.status_code == 303
        assert "Ada Lovelace" in client.get("/console/calendars").text


@pytest.mark.slow
def test_google_demo_from_the_cli_starts_afresh_in_its_own_folder(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "sqlite:///unused.db")
    demo = tmp_path / "demo"
    first = cli.ok("demo", "--google-fake", "--once", "--data-dir", str(demo))
    assert "Fake Google Calendar API on http://127.0.0.1:" in first
    assert "Her manage link: http://127.0.0.1:8000/m/" in first
    again = cli.ok("demo", "--google-fake", "--once", "--data-dir", str(demo))
    # The fake forgot everything, so calsync starts over too: a full sync, a new booking, and
    # only this run's three emails.
    assert "full sync: 5 event(s) new or changed, 0 removed" in again
    links = [re.search(r"Her manage link: (\S+)", text) for text in (first, again)]
    assert links[0] and links[1] and links[0].group(1) != links[1].group(1)
    assert len(list((demo / "google" / "mail").glob("*.eml"))) == 3
    # The CalDAV demo's folder is left alone.
    assert not (demo / "calsync.db").exists()
