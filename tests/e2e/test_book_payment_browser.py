"""The booking page's payment step in headless Chromium: a customer chooses a package of
three, pays for it with a test card in localstripe's mock of Stripe.js under the step's CSP,
and only then is it booked: the events appear on the real Radicale server and the customer's
email carries the receipt. localstripe's signed webhook reaches the live server meanwhile, so
the webhook and the page race to book; the package must be booked once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from calsync.bookings.event_types import save_event_type
from calsync.config import PaymentSettings
from calsync.store.db import Database
from calsync.store.models import Booking
from calsync.sync.poller import Poller
from tests.e2e.test_book_browser import (
    PAGE_OFFER,
    Customer,
    browser_settings,
    mail_to_zoe,
    package_starts,
    pick,
    plain_text,
)
from tests.e2e.test_payment_browser import PAYS, enter_card
from tests.support.browser import launch_chromium, live_server
from tests.support.manage_shop import Shop
from tests.support.servers import ServerProcess
from tests.support.stripe import register_webhook
from tests.support.world import coaching

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def test_a_package_of_three_is_paid_by_card_then_booked(
    tmp_path: Path,
    chromium: Browser,
    radicale_server: ServerProcess,
    radicale_calendar: str,
    stripe_server: ServerProcess,
    payment_settings: PaymentSettings,
) -> None:
    settings = browser_settings(tmp_path).model_copy(update={"payments": payment_settings})
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
    save_event_type(db, coaching(booking_calendar_id=shop.calendar_id, page=PAGE_OFFER))
    Poller(db, settings).sync_now([shop.calendar_id])
    register_webhook(
        stripe_server,
        f"calsync-{tmp_path.name}",
        settings.base_url + "/webhooks/stripe",
        payment_settings.webhook_secret(),
    )
    starts = package_starts()
    try:
        with live_server(settings, db) as server:
            customer = Customer(chromium, "Pacific/Auckland")
            page = customer.page
            page.goto(f"{server.url}/b/coach")
            page.get_by_role("link", name="Coaching").click()
            page.get_by_label("3 sessions: 120.00 EUR").check()
            page.get_by_role("button", name="Choose the times").click()
            for start in starts:
                pick(page, start)
                page.locator("button.primary").click()
            page.get_by_label("Your name").fill("Zoë Example")
            page.get_by_label("Your email address").fill("zoe@example.org")
            page.get_by_role("button", name="Book 3 sessions").click()

            expect(page.locator("#amount")).to_have_text("120.00 EUR")
            for start in starts:
                assert customer.span(start) in page.locator("#held").inner_text()
            assert shop.events() == {}  # held, not booked, until it is paid
            enter_card(page, PAYS)
            page.get_by_role("button", name="Pay 120.00 EUR").click()
            expect(page.locator("h2")).to_have_text("Your 3 sessions are confirmed")
            link = page.locator("#manage-link").get_attribute("href")
            assert link

            assert sorted(e["DTSTART"].dt for e in shop.events().values()) == starts
            page.wait_for_timeout(2500)  # localstripe's webhook lands: nothing twice
            with db.reading() as session:
                (intent,) = session.scalars(select(Booking.payment_intent))
                assert session.scalar(select(func.count()).select_from(Booking)) == 1
            assert intent and intent.startswith("pi_")
            assert len(shop.events()) == 3
            body = " ".join(plain_text(mail_to_zoe(db, settings, expected=2)).split())
            assert f"Paid 120.00 EUR, Stripe payment {intent}" in body
            assert link in body
            customer.close()
    finally:
        db.dispose()
