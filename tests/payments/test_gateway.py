"""The Stripe gateway against localstripe: intents, declines, refunds, idempotency, outages."""

from __future__ import annotations

import pytest

from calsync.config import PaymentSettings
from calsync.payments.errors import PaymentDeclined, PaymentRefused, PaymentsUnavailable
from calsync.payments.gateway import IntentStatus, StripeGateway
from tests.support.servers import free_port


@pytest.fixture
def gateway(payment_settings: PaymentSettings) -> StripeGateway:
    return StripeGateway.from_settings(payment_settings)


def test_an_intent_is_paid_with_a_test_card(gateway: StripeGateway) -> None:
    intent = gateway.create_intent(1250, "EUR", {"calsync_change_id": "7"}, "t-change-7-charge")
    assert intent.status is IntentStatus.REQUIRES_PAYMENT_METHOD
    assert (intent.amount, intent.currency, intent.change_id) == (1250, "eur", 7)
    assert intent.client_secret and intent.client_secret.startswith(intent.id)
    paid = gateway.confirm_intent(intent.id, "pm_card_visa")
    assert paid.status is IntentStatus.SUCCEEDED
    assert gateway.retrieve_intent(intent.id).status is IntentStatus.SUCCEEDED


def test_a_declined_card_charges_nothing(gateway: StripeGateway) -> None:
    intent = gateway.create_intent(500, "EUR", {}, "t-declined")
    with pytest.raises(PaymentDeclined):
        gateway.confirm_intent(intent.id, "pm_card_chargeCustomerFail")
    again = gateway.retrieve_intent(intent.id)
    assert again.status is IntentStatus.REQUIRES_PAYMENT_METHOD
    assert again.error


def test_refunds_part_of_a_payment_and_refuses_refunding_an_unpaid_one(
    gateway: StripeGateway,
) -> None:
    intent = gateway.create_intent(3000, "EUR", {}, "t-refund")
    gateway.confirm_intent(intent.id, "pm_card_visa")
    refund = gateway.refund(intent.id, 1000, "t-refund-1")
    assert (refund.status, refund.amount) == ("succeeded", 1000)
    unpaid = gateway.create_intent(3000, "EUR", {}, "t-unpaid")
    with pytest.raises(PaymentRefused):
        gateway.refund(unpaid.id, 1000, "t-refund-2")


def test_stripe_unreachable_is_a_typed_error_without_the_key() -> None:
    key = "sk_test_secret_never_shown"
    dead = StripeGateway(key, api_base=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PaymentsUnavailable) as caught:
        dead.create_intent(100, "EUR", {}, "t-dead")
    assert key not in caught.value.message
