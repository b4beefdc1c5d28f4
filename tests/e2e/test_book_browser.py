"""The booking page in headless Chromium against a live server, the way a customer uses it:
a package of three chosen by clicks, in a zone 12 hours from the owner, booked, and the link
from the confirmation email opened. The page's own script runs under its strict CSP; no console
error is allowed. SQLite is enough here (the HTTP-level tests run both databases)."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.bookings.event_types import EventTypeSpec, save_event_type
from calsync.config import MailBackend, MailSettings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.notify.when import format_span
from calsync.policy.hours import parse_weekly_hours
from calsync.policy.packages import PackageOffer, PageOffer
from calsync.store.db import Database
from calsync.sync.poller import Poller
from tests.conftest import make_settings
from tests.support.browser import launch_chromium, live_server, serving_settings
from tests.support.manage_shop import OWNER, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.slow
AUCKLAND = ZoneInfo("Pacific/Auckland")
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def pick(page: Page, start: datetime) -> None:
    value = start.astimezone(UTC).isoformat()
    radio = page.locator(f'input[type="radio"][name="pick"][value="{value}"]')
    while radio.count() == 0:
        page.get_by_role("link", name="Later days").click()
    page.locator(f'label[for="{radio.get_attribute("id")}"]').click()
    assert radio.is_checked()


def test_a_package_of_three_is_booked_in_a_browser_and_the_emailed_link_manages_it(
    tmp_path: Path, chromium: Browser, radicale_server: ServerProcess, radicale_calendar: str
) -> None:
    mail = MailSettings(backend=MailBackend.DIRECTORY, directory=tmp_path / "mail")
    settings = serving_settings(make_settings(f"sqlite:///{tmp_path}/calsync.db"))
    settings = settings.model_copy(update={"mail": mail})
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
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
            page=PageOffer(
                public=True,
                packages=(PackageOffer(1, Decimal(50)), PackageOffer(3, Decimal(120))),
                one_per_day=True,
            ),
        ),
    )
    Poller(db, settings).sync_now([shop.calendar_id])
    monday = next_monday()
    starts = [at(monday, 9), at(monday + timedelta(days=1), 10), at(monday + timedelta(days=3), 14)]
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    try:
        with live_server(settings, db) as server:
            context = chromium.new_context(timezone_id="Pacific/Auckland", locale="en-US")
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.on("console", console)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{server.url}/b/coach")
            page.get_by_role("link", name="Coaching").click()
            page.get_by_label("3 sessions: 120.00 EUR").check()
            page.locator("#tz").select_option("Pacific/Auckland")
            page.get_by_role("button", name="Choose the times").click()
            for start in starts:
                pick(page, start)
                page.locator("button.primary").click()
                assert (
                    format_span(start, start + HOUR, AUCKLAND)
                    in page.locator("#chosen").inner_text()
                )
            page.get_by_label("Your name").fill("Zoë Example")
            page.get_by_label("Your email address").fill("zoe@example.org")
            page.get_by_role("button", name="Book 3 sessions").click()
            assert page.locator("h2").inner_text() == "Your 3 sessions are confirmed"
            link = page.locator("#manage-link").get_attribute("href")
            assert link and link.startswith(f"{server.url}/m/")

            assert sorted(e["DTSTART"].dt for e in shop.events().values()) == starts
            transport = transport_from_settings(settings.mail)
            assert outbox.deliver_due(db, transport, "w1", outbox.sealing_box(settings)) == 2
            sent = [
                email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted((tmp_path / "mail").glob("*.eml"))
            ]
            (to_zoe,) = [m for m in sent if "zoe@" in str(m["To"])]
            assert str(to_zoe["Subject"]) == "Your 3 sessions are confirmed: Coaching"
            text = to_zoe.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            assert link in text

            page.goto(link)
            sessions = page.locator("li.session")
            assert sessions.count() == 3
            for start in starts:
                assert (
                    format_span(start, start + HOUR, AUCKLAND) in page.locator("main").inner_text()
                )
            context.close()
    finally:
        db.dispose()
    assert problems == []
