"""The manage page's payment step over HTTP (no JavaScript): what the confirm step says about
the fee with and without payments, Stripe unreachable at confirm, and the pay page's CSP."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from calsync.bookings import changes
from calsync.config import PaymentSettings, Settings
from calsync.payments.errors import PaymentsUnavailable
from calsync.payments.gateway import Intent, StripeGateway
from calsync.policy.change_policy import ChangePolicy, Fee, FeeKind
from calsync.store.db import Database
from calsync.store.models import ChangeStatus
from calsync.web.app import create_app
from calsync.web.manage import payment as manage_payment
from calsync.web.manage.rate_limit import RateLimits
from calsync.web.manage.wording import (
    FEE_TO_OWNER,
    PAYMENT_UNCONFIRMED,
    PAYMENTS_AWAY_HELD,
    PAYMENTS_UNREACHABLE,
)
from tests.support.manage_shop import Shop, post_form
from tests.support.servers import ServerProcess, free_port
from tests.support.world import at, next_monday
from tests.web.test_manage_page import confirm_reschedule, send

FEE = ChangePolicy(reschedule_fee=Fee(FeeKind.FIXED, Decimal("12.50")))


def _client(shop: Shop) -> TestClient:
    app = create_app(shop.settings, db=shop.db, manage_limits=RateLimits.off())
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Iterator[Shop]:
    yield Shop(db, settings, radicale_calendar)


def test_without_payments_the_fee_is_due_to_the_owner_directly(shop: Shop) -> None:
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    with _client(shop) as client:
        page = confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)})
        assert "12.50 EUR" in page.text
        assert FEE_TO_OWNER in page.text
        done = send(client, post_form(page.text))
    assert done.status_code == 303 and "/changes/" in done.headers["location"]


def test_stripe_unreachable_at_confirm_says_so_and_holds_nothing(
    shop: Shop, payment_settings: PaymentSettings
) -> None:
    dead = payment_settings.model_copy(update={"api_base": f"http://127.0.0.1:{free_port()}"})
    shop.settings = shop.settings.model_copy(update={"payments": dead})
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    wanted = at(monday + timedelta(days=1), 15)
    with _client(shop) as client:
        page = confirm_reschedule(client, booked, {booked.session_ids[0]: wanted})
        assert "next step" in page.text
        done = send(client, post_form(page.text))
        assert done.status_code == 303 and "/pay/" in done.headers["location"]
        step = client.get(done.headers["location"])
    assert step.status_code == 503
    assert PAYMENTS_UNREACHABLE in step.text.replace("\n", " ")
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.status is ChangeStatus.UNPAID
    # The time is free again at once for someone else.
    assert shop.book(wanted, email="other@example.org")


def test_only_the_payment_step_may_load_stripe_js(
    shop: Shop, payment_settings: PaymentSettings
) -> None:
    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    with _client(shop) as client:
        page = confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)})
        assert payment_settings.api_base
        assert payment_settings.api_base not in page.headers["content-security-policy"]
        done = send(client, post_form(page.text))
        step = client.get(done.headers["location"])
    assert step.status_code == 200
    policy = step.headers["content-security-policy"]
    assert f"script-src 'self' {payment_settings.api_base}" in policy
    assert payment_settings.js_url in step.text
    assert "12.50 EUR" in step.text


def _pay_page(shop: Shop, client: TestClient):
    shop.event_type(policy=FEE, price=Decimal("300"))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    page = confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)})
    done = send(client, post_form(page.text))
    assert done.status_code == 303 and "/pay/" in done.headers["location"]
    step = client.get(done.headers["location"])
    assert step.status_code == 200
    return booked, post_form(step.text)


def test_a_double_clicked_pay_button_shows_the_paid_change_not_an_error(
    shop: Shop, payment_settings: PaymentSettings
) -> None:
    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    with _client(shop) as client:
        booked, form = _pay_page(shop, client)
        first = send(client, form, payment_method="pm_card_visa")
        second = send(client, form, payment_method="pm_card_visa")
    assert first.status_code == 303 and "/changes/" in first.headers["location"]
    assert second.status_code == 303, second.text
    assert second.headers["location"] == first.headers["location"]
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.status is ChangeStatus.APPLIED


def test_a_confirm_whose_answer_is_lost_is_re_read_and_applied(
    shop: Shop, payment_settings: PaymentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault localstripe cannot produce: Stripe charges the card but its answer never
    # arrives (a timeout). The real confirm runs; only the answer is dropped.
    class LostAnswer(StripeGateway):
        def confirm_intent(self, intent_id: str, payment_method: str) -> Intent:
            super().confirm_intent(intent_id, payment_method)
            raise PaymentsUnavailable("Request timed out")

    monkeypatch.setattr(manage_payment, "_gateway", lambda s: LostAnswer.from_settings(s.payments))
    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    with _client(shop) as client:
        booked, form = _pay_page(shop, client)
        done = send(client, form, payment_method="pm_card_visa")
    assert done.status_code == 303 and "/changes/" in done.headers["location"]
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.status is ChangeStatus.APPLIED


def test_a_confirm_stripe_never_answers_keeps_the_hold_and_says_so(
    shop: Shop, payment_settings: PaymentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault localstripe cannot produce: the confirm times out and so does the re-read.
    class Away(StripeGateway):
        confirmed = False

        def confirm_intent(self, intent_id: str, payment_method: str) -> Intent:
            self.confirmed = True
            raise PaymentsUnavailable("Request timed out")

        def retrieve_intent(self, intent_id: str) -> Intent:
            if self.confirmed:
                raise PaymentsUnavailable("Request timed out")
            return super().retrieve_intent(intent_id)

    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    with _client(shop) as client:
        booked, form = _pay_page(shop, client)
        monkeypatch.setattr(manage_payment, "_gateway", lambda s: Away.from_settings(s.payments))
        done = send(client, form, payment_method="pm_card_visa")
    assert done.status_code == 503
    text = html.unescape(done.text).replace("\n", " ")
    assert PAYMENT_UNCONFIRMED in text
    assert PAYMENTS_UNREACHABLE not in text
    (change,) = changes.changes_of(shop.db, booked.id)
    # Not released: the payment may have gone through; the worker re-reads it.
    assert change.status is ChangeStatus.AWAITING_PAYMENT


def test_stripe_unreachable_once_the_intent_exists_keeps_the_hold_and_says_so(
    shop: Shop, payment_settings: PaymentSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    dead = payment_settings.model_copy(update={"api_base": f"http://127.0.0.1:{free_port()}"})
    with _client(shop) as client:
        booked, form = _pay_page(shop, client)  # the intent is made: the times are held
        # Stripe goes away (nothing listens on this port) before the page is read again.
        monkeypatch.setattr(manage_payment, "_gateway", lambda s: StripeGateway.from_settings(dead))
        answers = [client.get(form.action), send(client, form, payment_method="pm_card_visa")]
    for answer in answers:
        assert answer.status_code == 503
        text = html.unescape(answer.text).replace("\n", " ")
        assert PAYMENTS_AWAY_HELD in text
        assert PAYMENTS_UNREACHABLE not in text
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.status is ChangeStatus.AWAITING_PAYMENT
