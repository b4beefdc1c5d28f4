"""The owner's console in headless Chromium against a live server: a booking made with the
``calsync`` command (a real subprocess on the same database) appears in the console; the owner
moves one of its sessions there; the event moves on the real Radicale server (same UID,
SEQUENCE + 1) and the update emails reach a real SMTP server (aiosmtpd). Then the owner asks the
customer to choose a new time for the other session and the email with the "Choose new times"
button goes out too. No console error is allowed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from aiosmtpd.controller import Controller

from calsync.access import sign_in as console_links
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import MailBackend, MailSettings, SmtpSecurity
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from tests.cli.test_cli import Cli
from tests.conftest import make_settings
from tests.notify.test_outbox import Inbox
from tests.support.browser import launch_chromium, live_server, serving_settings
from tests.support.console import link_in
from tests.support.servers import ServerProcess, free_port

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, ConsoleMessage

pytestmark = pytest.mark.slow
OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def events(calendar_url: str) -> dict[str, tuple[datetime, int]]:
    """UID → (start, SEQUENCE) on the CalDAV server."""
    provider = CalDAVProvider(calendar_url)
    try:
        delta = provider.changes(None, {})
    finally:
        provider.close()
    found = {}
    for item in delta.upserted:
        (event,) = icalendar.Calendar.from_ical(item.data).walk("VEVENT")
        found[str(event["UID"])] = (event["DTSTART"].dt, int(event.get("SEQUENCE", 0)))
    return found


def test_the_owner_moves_a_session_of_a_cli_booking_in_the_console(
    tmp_path: Path, chromium: Browser, radicale_server: ServerProcess
) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    mail = MailSettings(
        backend=MailBackend.SMTP,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security=SmtpSecurity.NONE,
        from_address="calsync@example.org",
    )
    database_url = f"sqlite:///{tmp_path}/calsync.db"
    settings = serving_settings(make_settings(database_url)).model_copy(update={"mail": mail})

    # The owner's setup and the customer's booking, with the command line.
    cli = Cli(tmp_path, database_url)
    calendar_url = radicale_server.new_calendar()
    cli.coach(OWNER, calendar_url, "--reschedule", "never", name="Coach Carter")
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
            "Zoë Example",
            "--customer-timezone",
            "America/New_York",
            "--start",
            f"{monday}T09:00",
            "--start",
            f"{monday}T11:00",
            "--json",
        )
    )
    uids = [s["uid"] for s in booked["sessions"]]
    before = events(calendar_url)

    db = Database(database_url)
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    def deliver() -> None:
        outbox.deliver_due(
            db, transport_from_settings(settings.mail), "w1", outbox.sealing_box(settings)
        )

    try:
        with live_server(settings, db):
            deliver()  # the booking's confirmations
            inbox.received.clear()
            console_links.invite(db, settings, OWNER)
            deliver()
            link = link_in([m for m in inbox.received if OWNER in str(m["To"])][-1])
            inbox.received.clear()

            context = chromium.new_context(locale="en-GB")
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on("console", console)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(link)
            page.get_by_role("button", name="Sign in").click()

            page.get_by_role("link", name="Bookings").click()
            assert page.locator("h1").inner_text() == "Bookings"
            page.get_by_role("link", name="Zoë Example").click()
            main = page.inner_text("main")
            assert "Coaching for Zoë Example" in main
            assert f"{monday.day} {monday:%b %Y}, 11:00 – 12:00" in main  # Berlin time

            tuesday = monday + timedelta(days=1)
            page.get_by_label("Session", exact=True).select_option("2")
            page.get_by_label("New start (Europe/Berlin)").fill(f"{tuesday}T15:00")
            page.locator("#move-reason").fill("The room is booked")
            page.get_by_role("button", name="Move the session").click()
            assert "The session is moved" in page.inner_text("main")
            assert "The room is booked" in page.inner_text("main")  # in the history

            after = events(calendar_url)
            assert after[uids[0]] == before[uids[0]]
            start, sequence = after[uids[1]]
            assert start == datetime(tuesday.year, tuesday.month, tuesday.day, 15, tzinfo=BERLIN)
            assert sequence == before[uids[1]][1] + 1

            deliver()
            to = {str(m["To"]): m for m in inbox.received}
            assert set(to) == {"Zoë Example <zoe@example.org>", "Coach Carter <coach@example.org>"}
            update = to["Zoë Example <zoe@example.org>"]
            text = update.get_body(("plain",)).get_content()
            assert "The room is booked" in text
            calendar_part = next(
                p for p in update.walk() if p.get_content_type() == "text/calendar"
            )
            assert calendar_part.get_param("method") == "REQUEST"
            inbox.received.clear()

            # Ask the customer to choose a new time for session 1 instead.
            page.locator("#request-1").check()
            page.get_by_label("Your message (optional)").fill("Or pick one that suits you.")
            page.get_by_role("button", name="Email the request").click()
            assert "Choose new times" in page.inner_text("main")
            deliver()
            (asked,) = inbox.received
            assert asked["Subject"] == "Coach Carter asks you to choose a new time: Coaching"
            assert "Choose new times" in asked.get_body(("html",)).get_content()
            context.close()
    finally:
        smtp.stop()
        db.dispose()
    assert problems == []
