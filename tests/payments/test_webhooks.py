"""``POST /webhooks/stripe``: signatures, replays, unknown events, and a webhook racing the
return URL. Events are signed here exactly as Stripe documents (HMAC-SHA256 of
``<t>.<body>`` with the endpoint secret, header ``t=…,v1=…``); the intents are real ones on
localstripe, so settling re-reads them from a Stripe server."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time

import pytest
from fastapi.testclient import TestClient

from calsync.bookings import changes
from calsync.bookings.packages import get_booking
from calsync.config import PaymentSettings, Settings
from calsync.payments import service
from calsync.payments.gateway import StripeGateway
from calsync.store.db import Database
from calsync.store.models import ChangeStatus, HistoryAction
from calsync.web.app import create_app
from tests.bookings.test_changes import Setup
from tests.payments.test_paid_changes import FEE, _start_two_of_three
from tests.support.browser import live_server, serving_settings
from tests.support.servers import ServerProcess
from tests.support.stripe import register_webhook


def signed(event: dict[str, object], secret: str, at: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={mac}"


def event(kind: str, intent_id: str, number: int = 1) -> dict[str, object]:
    return {
        "id": f"evt_test_{number}",
        "object": "event",
        "type": kind,
        "data": {"object": {"id": intent_id, "object": "payment_intent"}},
    }


@pytest.fixture
def paid_settings(settings: Settings, payment_settings: PaymentSettings) -> Settings:
    return settings.model_copy(update={"payments": payment_settings})


@pytest.fixture
def client(db: Database, paid_settings: Settings) -> TestClient:
    return TestClient(create_app(paid_settings, db=db))


def _secret(settings: Settings) -> str:
    assert settings.payments is not None
    return os.environ[settings.payments.webhook_secret_env]


def test_a_forged_signature_is_refused_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body, header = signed(event("payment_intent.succeeded", "pi_x"), "whsec_not_ours")
    with client, caplog.at_level(logging.WARNING):
        answer = client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": header})
        unsigned = client.post("/webhooks/stripe", content=body)
    assert answer.status_code == 400
    assert unsigned.status_code == 400
    assert "Stripe webhook refused" in caplog.text


def test_an_old_signed_event_is_refused(client: TestClient, paid_settings: Settings) -> None:
    stale = int(time.time()) - 3600
    body, header = signed(event("payment_intent.succeeded", "pi_x"), _secret(paid_settings), stale)
    with client:
        answer = client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": header})
    assert answer.status_code == 400


def test_unknown_events_and_other_apps_intents_are_answered_200(
    client: TestClient, paid_settings: Settings
) -> None:
    secret = _secret(paid_settings)
    with client:
        for payload in (
            event("customer.created", "cus_1"),
            event("payment_intent.succeeded", "pi_x"),
        ):
            body, header = signed(payload, secret)
            answer = client.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
            )
            assert answer.status_code == 200


def test_a_replayed_webhook_applies_the_paid_change_once(
    db: Database,
    paid_settings: Settings,
    client: TestClient,
    radicale_server: ServerProcess,
) -> None:
    assert paid_settings.payments is not None
    gateway = StripeGateway.from_settings(paid_settings.payments)
    setup = Setup(db, paid_settings, radicale_server, radicale_server.new_calendar(), policy=FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    assert step.intent_id
    gateway.confirm_intent(step.intent_id, "pm_card_visa")
    body, header = signed(event("payment_intent.succeeded", step.intent_id), _secret(paid_settings))
    with client:
        for _ in range(3):
            answer = client.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
            )
            assert answer.status_code == 200
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED
    history = [h.action for h in get_booking(db, booking.id).history]
    assert history.count(HistoryAction.PAID) == 1
    assert history.count(HistoryAction.RESCHEDULED) == 2


def test_a_webhook_and_the_return_url_together_apply_the_change_once(
    db: Database, paid_settings: Settings, radicale_server: ServerProcess
) -> None:
    assert paid_settings.payments is not None
    gateway = StripeGateway.from_settings(paid_settings.payments)
    setup = Setup(db, paid_settings, radicale_server, radicale_server.new_calendar(), policy=FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    assert step.intent_id
    gateway.confirm_intent(step.intent_id, "pm_card_visa")
    errors: list[BaseException] = []

    def settle() -> None:
        try:
            service.settle(db, paid_settings, gateway, step.intent_id or "")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = [h.action for h in get_booking(db, booking.id).history]
    assert history.count(HistoryAction.PAID) == 1
    assert history.count(HistoryAction.RESCHEDULED) == 2
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED


def test_localstripe_s_own_signed_webhook_applies_a_change_paid_outside_calsync(
    db: Database,
    paid_settings: Settings,
    radicale_server: ServerProcess,
    stripe_server: ServerProcess,
) -> None:
    """The customer's browser confirms the intent with Stripe directly (as Stripe.js's
    ``confirmCardPayment`` does with real Stripe); calsync hears of it only through the
    webhook localstripe signs and delivers to the running app."""
    assert paid_settings.payments is not None
    served = serving_settings(paid_settings)
    gateway = StripeGateway.from_settings(paid_settings.payments)
    setup = Setup(db, served, radicale_server, radicale_server.new_calendar(), policy=FEE)
    booking, moves, outcome = _start_two_of_three(setup, served)
    step = service.payment_step(db, served, gateway, outcome.change.id)
    assert step.intent_id
    register_webhook(
        stripe_server, f"hook-{booking.id}", served.base_url + "/webhooks/stripe", _secret(served)
    )
    with live_server(served, db):
        gateway.confirm_intent(step.intent_id, "pm_card_visa")
        deadline = time.monotonic() + 20
        while changes.changes_of(db, booking.id)[0].status is ChangeStatus.AWAITING_PAYMENT:
            assert time.monotonic() < deadline, "the webhook did not arrive"
            time.sleep(0.2)
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED
    first = get_booking(db, booking.id).sessions[0]
    assert first.start == moves[first.id]
    assert setup.event(first.href)["DTSTART"].dt == moves[first.id]
