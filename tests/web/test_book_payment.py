"""The booking page's payment step over HTTP (issue 15 item 2, issue 13 item 3): a priced
package with ``[payments]`` configured is held, paid through localstripe (a real fake Stripe
server, not ours) and only then booked, with the PaymentIntent on the booking and the receipt
in the email; a declined card books nothing; a hold that runs out frees the times and a
payment arriving after that is refunded. On both databases, events on a real Radicale server,
mail through aiosmtpd. The form posts what Stripe.js would (a payment method id); the browser
itself is in ``tests/e2e/test_book_payment_browser.py``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from calsync.bookings import changes
from calsync.bookings.event_types import get_event_type, save_event_type, spec_of
from calsync.bookings.packages import SlotTaken
from calsync.config import PaymentSettings
from calsync.payments import checkout, service
from calsync.payments.gateway import StripeGateway
from calsync.policy.change_policy import ChangePolicy, Fee, FeeKind
from calsync.policy.packages import PackageOffer, PageOffer
from calsync.store.models import (
    Actor,
    Booking,
    Checkout,
    CheckoutState,
    Payment,
    PaymentState,
)
from tests.bookings.test_secrets_at_rest import deliver, readable
from tests.notify.test_outbox import MailServer
from tests.payments.test_webhooks import event, signed
from tests.support.manage_shop import Shop, post_form

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from tests.web.test_book_page import (  # noqa: F401  (mail_server, shop: fixtures)
    bookings,
    browser,
    choose,
    details,
    mail_server,
    send,
    shop,
    three_days,
)

CUSTOMER = {"name": "Zoë Example", "email": "zoe@example.org"}


@pytest.fixture
def paid_shop(shop: Shop, payment_settings: PaymentSettings) -> Shop:  # noqa: F811
    shop.settings = shop.settings.model_copy(update={"payments": payment_settings})
    return shop


@pytest.fixture
def client(paid_shop: Shop) -> Iterator[TestClient]:
    with browser(paid_shop) as test_client:
        yield test_client


def _to_payment_step(client: TestClient, starts: list[datetime]) -> httpx.Response:
    page = choose(client, starts)
    assert "You pay by card on the next step" in page.text
    held = send(client, details(page), **CUSTOMER)
    assert held.status_code == 303, held.text
    assert "/b/coach/coaching/pay/" in held.headers["location"]
    step = client.get(held.headers["location"])
    assert step.status_code == 200, step.text
    return step


def _pay(client: TestClient, step: httpx.Response, method: str) -> httpx.Response:
    return send(client, post_form(step.text), payment_method=method)


def _checkout(paid: Shop) -> Checkout:
    with paid.db.reading() as session:
        return session.scalars(select(Checkout)).one()


def test_a_priced_package_is_held_paid_then_booked_with_the_receipt(
    paid_shop: Shop,
    client: TestClient,
    mail_server: MailServer,  # noqa: F811
    payment_settings: PaymentSettings,
) -> None:
    starts = three_days()
    step = _to_payment_step(client, starts)
    assert "120.00 EUR" in step.text
    policy = step.headers["content-security-policy"]
    assert f"script-src 'self' {payment_settings.api_base}" in policy
    assert bookings(paid_shop.db) == 0 and paid_shop.events() == {}
    # Held: busy for everyone else while the customer pays.
    with pytest.raises(SlotTaken):
        paid_shop.book(starts[1], email="other@example.org")

    done = _pay(client, step, "pm_card_visa")
    assert done.status_code == 200, done.text
    assert "Your 3 sessions are confirmed" in done.text
    assert sorted(e["DTSTART"].dt for e in paid_shop.events().values()) == starts
    with paid_shop.db.reading() as session:
        booking = session.scalars(select(Booking)).one()
        (charge,) = session.scalars(select(Payment))
    assert booking.payment_intent and booking.payment_intent.startswith("pi_")
    assert charge.stripe_id == booking.payment_intent and charge.amount == 12000
    intent = StripeGateway.from_settings(payment_settings).retrieve_intent(booking.payment_intent)
    assert intent.amount == 12000 and intent.metadata["calsync_checkout_id"]

    # The return URL (or the webhook) afterwards books nothing twice.
    again = client.get(step.text.split('data-return="')[1].split('"')[0].replace("&amp;", "&"))
    assert "Your 3 sessions are confirmed" in again.text
    checkout.settle(paid_shop.db, paid_shop.settings, checkout_gateway(paid_shop), intent.id)
    assert bookings(paid_shop.db) == 1 and len(paid_shop.events()) == 3

    assert deliver(paid_shop.db, paid_shop.settings) == 2  # the customer and the owner
    (mail,) = [m for m in mail_server.inbox.received if "zoe@" in str(m["To"])]
    body = " ".join(readable(mail.as_bytes()).split())
    assert f"Paid 120.00 EUR, Stripe payment {booking.payment_intent}" in body


def checkout_gateway(paid: Shop) -> StripeGateway:
    assert paid.settings.payments is not None
    return StripeGateway.from_settings(paid.settings.payments)


def test_a_declined_card_books_nothing_and_another_card_pays(
    paid_shop: Shop, client: TestClient
) -> None:
    step = _to_payment_step(client, three_days())
    declined = _pay(client, step, "pm_card_chargeCustomerFail")
    assert declined.status_code == 402, declined.text
    assert "declined" in declined.text
    assert bookings(paid_shop.db) == 0 and paid_shop.events() == {}
    done = _pay(client, declined, "pm_card_visa")
    assert "Your 3 sessions are confirmed" in done.text
    assert bookings(paid_shop.db) == 1 and len(paid_shop.events()) == 3


def test_an_expired_hold_frees_the_times_and_a_late_payment_is_refunded(
    paid_shop: Shop, client: TestClient
) -> None:
    starts = three_days()
    _to_payment_step(client, starts)
    held = _checkout(paid_shop)
    assert held.stripe_id
    gateway = checkout_gateway(paid_shop)
    later = held.expires_at + timedelta(seconds=1)
    # The intent is paid at the last moment, as the worker releases the hold.
    gateway.confirm_intent(held.stripe_id, "pm_card_visa")
    assert checkout.expire(paid_shop.db, paid_shop.settings, None, now=later) == 1
    # The times are free again: someone else books one.
    paid_shop.book(starts[0], email="other@example.org")
    # The payment's webhook lands after that: refunded, never booked.
    step, result = checkout.settle(paid_shop.db, paid_shop.settings, gateway, held.stripe_id)
    assert result is None and step.state is checkout.StepState.REFUNDED
    assert step.message == checkout.LATE
    late = _checkout(paid_shop)
    assert late.state is CheckoutState.REFUNDED and late.refund_id
    with paid_shop.db.reading() as session:
        customers = list(session.scalars(select(Booking.customer_email)))
    assert customers == ["other@example.org"]
    # The customer's page says so.
    page = client.get(pay_url_of(paid_shop, late))
    assert page.status_code == 409 and "refunded in full" in page.text


def pay_url_of(paid: Shop, found: Checkout) -> str:
    tag = checkout.access_tag(paid.settings, found.id)
    return f"/b/coach/coaching/pay/{found.id}?t={tag}"


def test_the_payment_step_needs_its_tag(paid_shop: Shop, client: TestClient) -> None:
    _to_payment_step(client, three_days())
    found = _checkout(paid_shop)
    wrong = client.get(f"/b/coach/coaching/pay/{found.id}?t=0123")
    assert wrong.status_code == 404


def test_the_webhook_books_a_paid_package_once(paid_shop: Shop, client: TestClient) -> None:
    """The customer closed the tab after paying: Stripe's signed webhook books the package,
    and a replay of it changes nothing."""
    _to_payment_step(client, three_days())
    held = _checkout(paid_shop)
    assert held.stripe_id and paid_shop.settings.payments
    checkout_gateway(paid_shop).confirm_intent(held.stripe_id, "pm_card_visa")
    secret = paid_shop.settings.payments.webhook_secret()
    body, signature = signed(event("payment_intent.succeeded", held.stripe_id), secret)
    for _ in range(2):
        answer = client.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": signature}
        )
        assert answer.status_code == 200, answer.text
    assert bookings(paid_shop.db) == 1 and len(paid_shop.events()) == 3
    assert _checkout(paid_shop).state is CheckoutState.BOOKED
    # The customer's page, opened again, shows the booking.
    page = client.get(pay_url_of(paid_shop, held))
    assert "Your 3 sessions are confirmed" in page.text


def test_held_times_send_another_customer_back_with_the_taken_one_marked(
    paid_shop: Shop, client: TestClient
) -> None:
    starts = three_days()
    other = choose(client, [starts[0]], size=1)  # chosen just before the hold is taken
    _to_payment_step(client, starts)
    with pytest.raises(AssertionError):
        choose(client, [starts[0]], size=1)  # no longer offered
    taken = send(client, details(other), name="Other", email="other@example.org")
    assert taken.status_code == 409, taken.text
    assert "taken" in taken.text
    with paid_shop.db.reading() as session:
        assert len(session.scalars(select(Checkout)).all()) == 1


def test_a_free_package_is_booked_at_once_with_payments_configured(
    paid_shop: Shop, client: TestClient
) -> None:
    current = get_event_type(paid_shop.db, "coaching")
    free = PageOffer(public=True, packages=(PackageOffer(1, Decimal(0)),), max_stakeholders=1)
    save_event_type(paid_shop.db, dataclasses.replace(spec_of(current), page=free), current.id)
    page = choose(client, [three_days()[0]])
    assert "You pay by card" not in page.text
    done = send(client, details(page), **CUSTOMER)
    assert done.status_code == 200 and "Your session is confirmed" in done.text
    with paid_shop.db.reading() as session:
        assert session.scalars(select(Checkout)).all() == []
        assert session.scalars(select(Booking.payment_intent)).all() == [None]


def test_a_package_paid_on_the_page_is_refunded_per_the_policy_when_cancelled(
    paid_shop: Shop, client: TestClient
) -> None:
    current = get_event_type(paid_shop.db, "coaching")
    policy = ChangePolicy(cancel_refund=Fee(FeeKind.PERCENT, Decimal("100")))
    save_event_type(paid_shop.db, dataclasses.replace(spec_of(current), policy=policy), current.id)
    step = _to_payment_step(client, three_days())
    assert "Your 3 sessions are confirmed" in _pay(client, step, "pm_card_visa").text
    with paid_shop.db.reading() as session:
        booking = session.scalars(select(Booking)).one()
        first = min(booking.sessions, key=lambda s: s.start).id
        intent = booking.payment_intent
    changes.cancel(paid_shop.db, paid_shop.settings, booking.id, [first], actor=Actor.CUSTOMER)
    (refund,) = service.pay_refunds(paid_shop.db, checkout_gateway(paid_shop))
    # One of three sessions of a 120.00 EUR package, refunded in full: 40.00 EUR.
    assert (refund.state, refund.amount, refund.payment_intent) == (
        PaymentState.SUCCEEDED,
        4000,
        intent,
    )


def test_a_paid_checkout_left_by_a_stopped_process_is_booked_by_the_worker(
    paid_shop: Shop, client: TestClient
) -> None:
    _to_payment_step(client, three_days())
    held = _checkout(paid_shop)
    assert held.stripe_id
    gateway = checkout_gateway(paid_shop)
    gateway.confirm_intent(held.stripe_id, "pm_card_visa")
    with paid_shop.db.writing() as session:
        found = session.get(Checkout, held.id)
        assert found is not None
        found.state = CheckoutState.PAID  # marked paid; then the process stopped
    later = held.expires_at + checkout.STUCK_AFTER
    assert checkout.expire(paid_shop.db, paid_shop.settings, gateway, now=later) == 0
    assert _checkout(paid_shop).state is CheckoutState.BOOKED
    assert bookings(paid_shop.db) == 1 and len(paid_shop.events()) == 3


def test_an_embedded_page_keeps_stripe_allowed_on_its_payment_step(
    paid_shop: Shop, payment_settings: PaymentSettings
) -> None:
    web = paid_shop.settings.web.model_copy(update={"frame_ancestors": ["https://coach.example"]})
    paid_shop.settings = paid_shop.settings.model_copy(update={"web": web})
    with browser(paid_shop) as embedded:
        step = _to_payment_step(embedded, three_days())
    policy = step.headers["content-security-policy"]
    assert f"script-src 'self' {payment_settings.api_base}" in policy
    assert "frame-ancestors https://coach.example" in policy


def test_a_checkout_s_stripe_key_is_kept_so_a_retry_makes_no_second_intent(
    paid_shop: Shop, client: TestClient
) -> None:
    _to_payment_step(client, three_days())
    held = _checkout(paid_shop)
    assert held.stripe_id
    # The create's answer was lost (calsync never stored the intent), twice: each retry must
    # carry the same stored key, so Stripe answers with the first intent, not a second one.
    # localstripe ignores idempotency keys, so the keys sent are recorded (nothing else).
    sent: list[str] = []

    class Recording(StripeGateway):
        def create_intent(self, amount, currency, metadata, idempotency_key):  # type: ignore[no-untyped-def]
            sent.append(idempotency_key)
            return super().create_intent(amount, currency, metadata, idempotency_key)

    assert paid_shop.settings.payments is not None
    gateway = Recording.from_settings(paid_shop.settings.payments)
    for _ in range(2):
        with paid_shop.db.writing() as session:
            session.get(Checkout, held.id).stripe_id = None  # type: ignore[union-attr]
        checkout.checkout_step(paid_shop.db, paid_shop.settings, gateway, held.id)
    first, again = sent
    assert first == again and f"checkout-{held.id}-charge-1-" in first
    # Random bytes chosen when the row was made: ids repeat after a database reset, keys not.
    assert first == checkout.charge_key(paid_shop.settings, _checkout(paid_shop))
    assert checkout.refund_key(paid_shop.settings, held) != first


def test_an_intent_that_is_not_the_checkout_s_is_refunded_not_booked(
    paid_shop: Shop, client: TestClient
) -> None:
    _to_payment_step(client, three_days())
    held = _checkout(paid_shop)
    gateway = checkout_gateway(paid_shop)
    # What a key Stripe still remembered from before a database reset would answer with: an
    # old intent, for another checkout and amount.
    other = gateway.create_intent(999, "EUR", {"calsync_checkout_id": "77"}, f"test-{held.id}")
    gateway.confirm_intent(other.id, "pm_card_visa")
    with paid_shop.db.writing() as session:
        session.get(Checkout, held.id).stripe_id = other.id  # type: ignore[union-attr]
    step, result = checkout.settle(paid_shop.db, paid_shop.settings, gateway, other.id)
    assert result is None and step.state is checkout.StepState.REFUNDED
    assert bookings(paid_shop.db) == 0 and paid_shop.events() == {}
    refunded = _checkout(paid_shop)
    assert refunded.state is CheckoutState.REFUNDED and refunded.refund_id
    assert [r.amount for r in gateway.refunds_of(other.id)] == [999]
