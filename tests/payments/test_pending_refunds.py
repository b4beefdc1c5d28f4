"""Refunds Stripe answers "pending": recorded as pending (never as paid), then moved to paid or
failed when Stripe says so, through its webhook or the worker's re-read, exactly once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from calsync.bookings.packages import get_booking
from calsync.config import PaymentSettings, Settings
from calsync.payments import service
from calsync.payments.gateway import Refund, StripeGateway
from calsync.store.db import Database
from calsync.store.models import HistoryAction, PaymentState
from calsync.web.app import create_app
from tests.payments.test_paid_changes import _queued_full_refund
from tests.payments.test_webhooks import _secret, signed
from tests.support.servers import ServerProcess


@pytest.fixture
def paid_settings(settings: Settings, payment_settings: PaymentSettings) -> Settings:
    return settings.model_copy(update={"payments": payment_settings})


class SlowRefunds(StripeGateway):
    """A fault localstripe cannot produce: its refunds always succeed at once, while Stripe
    may answer a refund "pending" (a bank transfer, some cards) and settle it days later,
    paid or failed. The real refund is made; only the status Stripe reports is ours."""

    later = "pending"

    def refund(self, *args: object, **kwargs: object) -> Refund:
        made = super().refund(*args, **kwargs)  # type: ignore[arg-type]
        return Refund(made.id, "pending", made.amount, made.metadata)

    def refunds_of(self, intent_id: str) -> list[Refund]:
        made = super().refunds_of(intent_id)
        return [Refund(r.id, self.later, r.amount, r.metadata) for r in made]

    def retrieve_refund(self, refund_id: str) -> Refund:
        made = super().retrieve_refund(refund_id)
        return Refund(made.id, self.later, made.amount, made.metadata)


def _gateway(settings: Settings) -> SlowRefunds:
    assert settings.payments is not None
    return SlowRefunds(
        settings.payments.secret_key(), api_base=settings.payments.api_base, timeout=10
    )


def _history(db: Database, booking_id: str) -> list[HistoryAction]:
    return [h.action for h in get_booking(db, booking_id).history]


def test_a_pending_refund_is_recorded_pending_then_paid_once_stripe_pays_it(
    db: Database,
    paid_settings: Settings,
    radicale_server: ServerProcess,
) -> None:
    gateway = _gateway(paid_settings)
    booking, _, refund_id = _queued_full_refund(db, paid_settings, gateway, radicale_server)
    (sent,) = service.pay_refunds(db, gateway)
    assert (sent.id, sent.state) == (refund_id, PaymentState.PENDING)
    assert sent.stripe_id and sent.stripe_id.startswith("re_")
    assert HistoryAction.REFUNDED not in _history(db, booking.id)
    assert service.check_pending_refunds(db, gateway) == 0  # still pending at Stripe
    gateway.later = "succeeded"
    assert service.check_pending_refunds(db, gateway) == 1
    assert service.check_pending_refunds(db, gateway) == 0
    (row,) = [p for p in service.payments_of(db, booking.id) if p.id == refund_id]
    assert row.state is PaymentState.SUCCEEDED
    assert _history(db, booking.id).count(HistoryAction.REFUNDED) == 1


def test_a_pending_refund_that_fails_later_is_shown_failed_never_lost(
    db: Database,
    paid_settings: Settings,
    radicale_server: ServerProcess,
) -> None:
    gateway = _gateway(paid_settings)
    booking, _, refund_id = _queued_full_refund(db, paid_settings, gateway, radicale_server)
    service.pay_refunds(db, gateway)
    gateway.later = "failed"
    assert service.check_pending_refunds(db, gateway) == 1
    service.check_pending_refunds(db, gateway)
    (row,) = [p for p in service.payments_of(db, booking.id) if p.id == refund_id]
    assert row.state is PaymentState.FAILED and row.message
    assert _history(db, booking.id).count(HistoryAction.REFUND_FAILED) == 1
    assert HistoryAction.REFUNDED not in _history(db, booking.id)


def test_refund_webhooks_re_read_the_refund_and_record_it_once(
    db: Database,
    paid_settings: Settings,
    radicale_server: ServerProcess,
) -> None:
    gateway = _gateway(paid_settings)
    booking, _, refund_id = _queued_full_refund(db, paid_settings, gateway, radicale_server)
    (sent,) = service.pay_refunds(db, gateway)
    assert sent.state is PaymentState.PENDING and sent.stripe_id
    # localstripe has paid the refund: the app's own gateway re-reads it as succeeded.
    client = TestClient(create_app(paid_settings, db=db))
    with client:
        for number, kind in enumerate(("charge.refund.updated", "refund.updated") * 2):
            payload = {
                "id": f"evt_refund_{number}",
                "object": "event",
                "type": kind,
                "data": {"object": {"id": sent.stripe_id, "object": "refund"}},
            }
            body, header = signed(payload, _secret(paid_settings))
            answer = client.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
            )
            assert answer.status_code == 200
    (row,) = [p for p in service.payments_of(db, booking.id) if p.id == refund_id]
    assert row.state is PaymentState.SUCCEEDED
    assert _history(db, booking.id).count(HistoryAction.REFUNDED) == 1
