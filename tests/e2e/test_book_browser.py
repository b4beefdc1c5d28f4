"""The booking page in headless Chromium against a live server, the way a customer uses it:
a package of three chosen by clicks, in a zone 10+ hours from the owner (the page's script
detects it), booked, and the link from the confirmation email opened. Once with the owner's
calendar on a real Radicale server, once in Google Calendar (the local fake of its API, through
Google's real client). The page's own script runs under its strict CSP; no console error is
allowed. SQLite is enough here (the HTTP-level tests run both databases)."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from calsync.bookings.event_types import save_event_type
from calsync.bookings.polling import booking_poller
from calsync.config import GoogleSettings, MailBackend, MailSettings, Settings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.notify.when import format_span
from calsync.policy.packages import PackageOffer, PageOffer
from calsync.store.db import Database
from calsync.store.models import BookedSession, CalendarRole
from calsync.sync import connections as services
from calsync.sync.poller import Poller
from calsync.testing.google_fake import FakeGoogle
from tests.conftest import make_settings
from tests.e2e.test_google_e2e import token_json
from tests.support.browser import launch_chromium, live_server, serving_settings
from tests.support.manage_shop import OWNER, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, coaching, next_monday

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.slow
HOUR = timedelta(hours=1)
PAGE_OFFER = PageOffer(
    public=True,
    packages=(PackageOffer(1, Decimal(50)), PackageOffer(3, Decimal(120))),
    one_per_day=True,
)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def browser_settings(tmp_path: Path) -> Settings:
    mail = MailSettings(backend=MailBackend.DIRECTORY, directory=tmp_path / "mail")
    settings = serving_settings(make_settings(f"sqlite:///{tmp_path}/calsync.db"))
    return settings.model_copy(update={"mail": mail})


def pick(page: Page, start: datetime) -> None:
    value = start.astimezone(UTC).isoformat()
    radio = page.locator(f'input[type="radio"][name="pick"][value="{value}"]')
    while radio.count() == 0:
        page.get_by_role("link", name="Later days").click()
    page.locator(f'label[for="{radio.get_attribute("id")}"]').click()
    assert radio.is_checked()


def package_starts() -> list[datetime]:
    monday = next_monday()
    return [at(monday, 9), at(monday + timedelta(days=1), 10), at(monday + timedelta(days=3), 14)]


class Customer:
    """One browser context in ``zone``, collecting console errors."""

    def __init__(self, browser: Browser, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self.problems: list[str] = []
        self.context = browser.new_context(timezone_id=zone, locale="en-US")
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(message.text)

    def span(self, start: datetime) -> str:
        return format_span(start, start + HOUR, self.zone)

    def book(self, server_url: str, starts: list[datetime]) -> str:
        """Book a package of ``starts`` by clicks, without choosing a zone; the manage link."""
        page = self.page
        page.goto(f"{server_url}/b/coach")
        page.get_by_role("link", name="Coaching").click()
        page.get_by_label("3 sessions: 120.00 EUR").check()
        # The page's script chose this device's zone in the menu.
        assert page.locator("#tz").input_value() == self.zone.key
        page.get_by_role("button", name="Choose the times").click()
        for start in starts:
            pick(page, start)
            page.locator("button.primary").click()
            assert self.span(start) in page.locator("#chosen").inner_text()
        page.get_by_label("Your name").fill("Zoë Example")
        page.get_by_label("Your email address").fill("zoe@example.org")
        page.get_by_role("button", name="Book 3 sessions").click()
        assert page.locator("h2").inner_text() == "Your 3 sessions are confirmed"
        for start in starts:
            assert self.span(start) in page.locator("#booked").inner_text()
        link = page.locator("#manage-link").get_attribute("href")
        assert link and link.startswith(f"{server_url}/m/")
        return link

    def manages_exactly(self, link: str, starts: list[datetime]) -> None:
        self.page.goto(link)
        assert self.page.locator("li.session").count() == len(starts)
        text = self.page.locator("main").inner_text()
        for start in starts:
            assert self.span(start) in text

    def close(self, *, answered: tuple[int, ...] = ()) -> None:
        """``answered``: error statuses the test expects pages to be answered with (Chromium
        logs each as a console error)."""
        self.context.close()
        expected = [f"status of {status} " for status in answered]
        assert [p for p in self.problems if not any(e in p for e in expected)] == []


def mail_to_zoe(db: Database, settings: Settings, expected: int) -> EmailMessage:
    transport = transport_from_settings(settings.mail)
    assert outbox.deliver_due(db, transport, "w1", outbox.sealing_box(settings)) == expected
    assert settings.mail.directory is not None
    sent = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted(settings.mail.directory.glob("*.eml"))
    ]
    (to_zoe,) = [m for m in sent if "zoe@" in str(m["To"])]
    assert isinstance(to_zoe, EmailMessage)
    assert str(to_zoe["Subject"]) == "Your 3 sessions are confirmed: Coaching"
    return to_zoe


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def test_a_package_of_three_is_booked_in_a_browser_and_the_emailed_link_manages_it(
    tmp_path: Path, chromium: Browser, radicale_server: ServerProcess, radicale_calendar: str
) -> None:
    settings = browser_settings(tmp_path)
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
    save_event_type(db, coaching(booking_calendar_id=shop.calendar_id, page=PAGE_OFFER))
    Poller(db, settings).sync_now([shop.calendar_id])
    starts = package_starts()
    try:
        with live_server(settings, db) as server:
            # 12 hours ahead of the owner in Berlin.
            customer = Customer(chromium, "Pacific/Auckland")
            link = customer.book(server.url, starts)
            assert sorted(e["DTSTART"].dt for e in shop.events().values()) == starts
            assert link in plain_text(mail_to_zoe(db, settings, expected=2))
            customer.manages_exactly(link, starts)
            customer.close()
    finally:
        db.dispose()


def test_the_same_with_the_owners_calendar_in_google(tmp_path: Path, chromium: Browser) -> None:
    with FakeGoogle() as fake:
        settings = browser_settings(tmp_path)
        settings = settings.model_copy(
            update={"google": GoogleSettings(api_endpoint=fake.endpoint)}
        )
        db = Database(settings.database_url)
        db.migrate()
        services.add_owner(db, name="Coach Carter", email=OWNER, timezone="Europe/Berlin")
        calendar = services.add_google_calendar(
            db, settings, OWNER, credentials_json=token_json(fake), role=CalendarRole.BOTH
        )
        save_event_type(db, coaching(booking_calendar_id=calendar.id, page=PAGE_OFFER))
        poller = booking_poller(db, settings)
        try:
            poller.sync_now()
        finally:
            poller.stop()
        starts = package_starts()
        try:
            with live_server(settings, db) as server:
                # 11 hours behind Berlin in winter, 12 in summer.
                customer = Customer(chromium, "Pacific/Honolulu")
                link = customer.book(server.url, starts)
                # Three events in Google, at the chosen instants, each with the link.
                with db.reading() as session:
                    hrefs = list(session.scalars(select(BookedSession.href)))
                events = [fake.event(href) for href in hrefs if href]
                assert len(events) == len(fake.writes()) == 3
                assert all(e["status"] == "confirmed" for e in events)
                instants = sorted(
                    datetime.fromisoformat(e["start"]["dateTime"].replace("Z", "+00:00"))
                    for e in events
                )
                assert instants == starts
                assert all(link in e["description"] for e in events)
                assert link in plain_text(mail_to_zoe(db, settings, expected=2))
                customer.manages_exactly(link, starts)
                customer.close()
        finally:
            db.dispose()
