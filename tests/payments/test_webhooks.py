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
from tests.support.servers import ServerProcess


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
