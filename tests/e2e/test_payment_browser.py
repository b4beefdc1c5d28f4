"""The payment step in headless Chromium: a customer pays a rescheduling fee with a test card
in localstripe's mock of Stripe.js, under the page's CSP; the events move on the real Radicale
server and the emails carry the receipt. localstripe also delivers its real, signed
``payment_intent.succeeded`` webhook to the live server meanwhile (so the webhook and the
return to the page race, and the change must still apply once).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from calsync.config import PaymentSettings
from calsync.notify.outbox import sealing_box, unseal
from calsync.payments import service
from calsync.payments.gateway import StripeGateway
from calsync.policy.change_policy import ChangePolicy, Fee, FeeKind
from calsync.store.db import Database
from calsync.store.models import HistoryAction, OutboxMessage, PaymentState, utcnow
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium, live_server, serving_settings
from tests.support.manage_shop import Booked, Shop
from tests.support.servers import ServerProcess
from tests.support.stripe import register_webhook
from tests.support.world import at, next_monday

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

pytestmark = pytest.mark.slow
FEE = ChangePolicy(reschedule_fee=Fee(FeeKind.FIXED, Decimal("12.50")))
PAYS = "4242424242424242"
DECLINED = "4000000000000341"  # declined when charged (localstripe and Stripe's test cards)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@dataclass
class Scene:
    shop: Shop
    server: LiveServer
    chromium: Browser
    gateway: StripeGateway
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    def open(self, booked: Booked) -> Page:
        context = self.chromium.new_context(timezone_id="America/New_York", locale="en-US")
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.goto(self.server.url + booked.path)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        expected = any(f"status of {code} " in message.text for code in (402, 409, 422))
        if message.type in ("error", "warning") and not expected:
            self.problems.append(message.text)


@pytest.fixture
def scene(
    tmp_path: Path,
    chromium: Browser,
    radicale_server: ServerProcess,
    radicale_calendar: str,
    stripe_server: ServerProcess,
    payment_settings: PaymentSettings,
) -> Iterator[Scene]:
    settings = serving_settings(make_settings(f"sqlite:///{tmp_path}/calsync.db"))
    settings = settings.model_copy(update={"payments": payment_settings})
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
    register_webhook(
        stripe_server,
        f"calsync-{tmp_path.name}",
        settings.base_url + "/webhooks/stripe",
        payment_settings.webhook_secret(),
    )
    try:
        with live_server(settings, db) as server:
            scene = Scene(shop, server, chromium, StripeGateway.from_settings(payment_settings))
            try:
                yield scene
            finally:
                for context in scene.contexts:
                    context.close()
            assert scene.problems == []
    finally:
        db.dispose()


def pick(page: Page, session_id: int, start: datetime) -> None:
    value = start.astimezone(UTC).isoformat()
    radio = page.locator(f'input[name="start-{session_id}"][value="{value}"]')
    while radio.count() == 0:
        page.get_by_role("button", name="Later days").click()
    page.locator(f'label[for="{radio.get_attribute("id")}"]').click()


def reschedule_two(scene: Scene, booked: Booked, new: tuple[datetime, datetime]) -> Page:
    page = scene.open(booked)
    page.get_by_role("link", name="Reschedule").click()
    page.get_by_label("Session 1 of 3").check()
    page.get_by_label("Session 3 of 3").check()
    page.get_by_role("button", name="See available times").click()
    pick(page, booked.session_ids[0], new[0])
    pick(page, booked.session_ids[2], new[1])
    page.get_by_role("button", name="Review the new times").click()
    assert "25.00 EUR" in page.locator("p.fee").inner_text()
    assert "next step" in page.locator("#fee-note").inner_text()
    page.get_by_role("button", name="Confirm new times").click()
    expect(page.get_by_role("heading", name="Pay the rescheduling fee")).to_be_visible()
    return page


def enter_card(page: Page, number: str) -> None:
    # localstripe's mock card Element: plain inputs named by their placeholders.
    card = page.locator("#card")
    card.get_by_placeholder("number").fill(number)
    card.get_by_placeholder("exp_month").fill("12")
    card.get_by_placeholder("exp_year").fill("34")
    card.get_by_placeholder("cvc").fill("123")
    card.get_by_placeholder("postal_code").fill("10001")


def receipts(db: Database, settings: object) -> list[str]:
    box = sealing_box(settings)  # type: ignore[arg-type]
    with db.reading() as session:
        raws = [unseal(box, m.raw) for m in session.scalars(select(OutboxMessage))]
    bodies = []
    for raw in raws:
        body = email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",))
        assert body is not None
        bodies.append(body.get_content())
    return [b for b in bodies if "Reschedule fee" in b]


def test_a_fee_paid_by_card_moves_two_of_three_sessions(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    booked = shop.book(at(monday, 9), at(monday, 11), at(wednesday, 10))
    before = shop.event_times()
    new = (at(wednesday, 14), at(wednesday, 15))
    page = reschedule_two(scene, booked, new)
    assert shop.event_times() == before  # nothing moves before the fee is paid

    enter_card(page, PAYS)
    page.get_by_role("button", name="Pay 25.00 EUR").click()
    expect(page.get_by_role("heading", name="Your sessions have been rescheduled")).to_be_visible()
    expect(page.locator("p.receipt")).to_contain_text("Paid 25.00 EUR by card (Stripe payment pi_")
    after = shop.event_times()
    for uid, start in ((booked.uids[0], new[0]), (booked.uids[2], new[1])):
        assert after[uid][:2] == (start, before[uid][1] + 1)
    assert after[booked.uids[1]] == before[booked.uids[1]]
    (charge,) = service.payments_of(shop.db, booked.id)
    assert (charge.state, charge.amount, charge.currency) == (PaymentState.SUCCEEDED, 2500, "EUR")
    mails = receipts(shop.db, shop.settings)
    assert mails and all(f"Stripe payment {charge.stripe_id}" in m for m in mails)
    # localstripe's signed webhook arrives about a second after the payment: it changes nothing.
    page.wait_for_timeout(2500)
    history = shop.state(booked.id)[2]
    assert history.count(HistoryAction.PAID) == 1
    assert history.count(HistoryAction.RESCHEDULED) == 2
    assert shop.event_times() == after


def test_a_declined_card_changes_nothing_and_another_card_pays(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    booked = shop.book(at(monday, 9), at(monday, 11), at(wednesday, 10))
    before, state = shop.event_times(), shop.state(booked.id)
    page = reschedule_two(scene, booked, (at(wednesday, 14), at(wednesday, 15)))
    enter_card(page, DECLINED)
    page.get_by_role("button", name="Pay 25.00 EUR").click()
    expect(page.locator("#pay-problem")).to_contain_text("declined")
    assert shop.event_times() == before
    assert shop.state(booked.id) == state
    enter_card(page, PAYS)
    page.get_by_role("button", name="Pay 25.00 EUR").click()
    expect(page.get_by_role("heading", name="Your sessions have been rescheduled")).to_be_visible()


def test_an_expired_hold_offers_the_times_again(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    booked = shop.book(at(monday, 9), at(monday, 11), at(wednesday, 10))
    other = shop.book(at(monday, 15), email="other@example.org")
    held = at(wednesday, 14)
    reschedule_two(scene, booked, (held, at(wednesday, 15)))

    def offered_to_other() -> bool:
        """Whether the other customer is offered the held time (paging up to its day)."""
        page = scene.open(other)
        page.get_by_role("link", name="Reschedule").click()
        page.get_by_role("button", name="See available times").click()
        value = held.astimezone(UTC).isoformat()
        radio = page.locator(f'input[name="start-{other.session_ids[0]}"][value="{value}"]')
        shown = page.locator("#times").inner_text()
        for _ in range(6):
            if radio.count() or held.strftime("%a, %b %-d") in shown:
                break
            page.get_by_role("button", name="Later days").click()
            shown = page.locator("#times").inner_text()
        return radio.count() == 1 and radio.is_enabled()

    assert not offered_to_other()
    later = utcnow() + timedelta(minutes=16)
    assert service.expire_holds(shop.db, shop.settings, scene.gateway, now=later) == 1
    assert offered_to_other()


def test_a_card_that_asks_for_3d_secure_pays_after_the_check(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    booked = shop.book(at(monday, 9), at(monday, 11), at(wednesday, 10))
    before = shop.event_times()
    page = reschedule_two(scene, booked, (at(wednesday, 14), at(wednesday, 15)))
    enter_card(page, "4000002500003155")
    page.get_by_role("button", name="Pay 25.00 EUR").click()
    # Stripe.js (here localstripe's mock) shows the bank's check; nothing moved meanwhile.
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_role("heading", name="Your sessions have been rescheduled")).to_be_visible()
    after = shop.event_times()
    assert after[booked.uids[0]][0] == at(wednesday, 14)
    assert after[booked.uids[1]] == before[booked.uids[1]]


def test_cancelling_a_paid_session_shows_the_refund(scene: Scene) -> None:
    shop = scene.shop
    refund = ChangePolicy(cancel_refund=Fee(FeeKind.PERCENT, Decimal("100")))
    shop.event_type(policy=refund, price=Decimal("300"))
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11), at(monday, 13))
    paid = scene.gateway.create_intent(30000, "EUR", {}, f"browser-{booked.id}")
    scene.gateway.confirm_intent(paid.id, "pm_card_visa")
    with shop.db.writing() as session:
        from calsync.store.models import Booking

        stored = session.get(Booking, booked.id)
        assert stored is not None
        stored.payment_intent = paid.id
    page = scene.open(booked)
    page.get_by_role("link", name="Cancel").click()
    page.get_by_label("Session 2 of 3").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#fee-note")).to_contain_text("Refunded to the card you paid with")
    page.get_by_role("button", name="Cancel this session").click()
    expect(page.get_by_role("heading", name="Cancelled")).to_be_visible()
    expect(page.locator("p.receipt")).to_contain_text("Refund of 100.00 EUR sent to your card")
