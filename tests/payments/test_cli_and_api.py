"""The owner's side: ``calsync book --payment``, a cancel refunded through localstripe,
``calsync payments list [--json]`` and ``GET /api/payments`` showing the same, and a bad
PaymentIntent id refused with a message (never a traceback)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from calsync.config import PaymentSettings, load_settings
from calsync.payments.gateway import StripeGateway
from calsync.store.db import Database
from calsync.web.app import create_app
from tests.cli.test_cli import Cli
from tests.support.servers import ServerProcess

OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_paid_booking_cancelled_from_the_cli_is_refunded_and_listed(
    tmp_path: Path,
    database_url: str,
    radicale_server: ServerProcess,
    payment_settings: PaymentSettings,
) -> None:
    cli = Cli(tmp_path, database_url)
    with (tmp_path / "calsync.toml").open("a") as config:
        config.write(
            f'[payments]\nsecret_key_env = "{payment_settings.secret_key_env}"\n'
            f'webhook_secret_env = "{payment_settings.webhook_secret_env}"\n'
            f'api_base = "{payment_settings.api_base}"\n'
        )
    cli.coach(OWNER, radicale_server.new_calendar(), "--price", "90", "--cancel-refund", "50%")
    gateway = StripeGateway.from_settings(payment_settings)
    paid = gateway.create_intent(9000, "EUR", {}, f"cli-{tmp_path.name}")
    gateway.confirm_intent(paid.id, "pm_card_visa")
    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=7 - today.weekday())
    refused = cli.fails(
        "book",
        "--event-type",
        "coaching",
        "--customer-email",
        "zoe@example.org",
        "--customer-name",
        "Zoë",
        "--start",
        f"{monday}T09:00",
        "--payment",
        "sk_test_oops",
    )
    assert "PaymentIntent" in refused
    booked = json.loads(
        cli.ok(
            "book",
            "--event-type",
            "coaching",
            "--customer-email",
            "zoe@example.org",
            "--customer-name",
            "Zoë",
            "--start",
            f"{monday}T09:00",
            "--start",
            f"{monday}T11:00",
            "--start",
            f"{monday}T13:00",
            "--payment",
            paid.id,
            "--json",
        )
    )
    assert booked["payment_intent"] == paid.id
    first = str(booked["sessions"][0]["id"])
    keys = {payment_settings.secret_key_env: payment_settings.secret_key()}
    said = cli.ok("booking", "cancel", booked["id"], "--session", first, env=keys)
    assert "Refund 15.00 EUR: succeeded (re_" in said  # half of one of three sessions of 90
    (row,) = json.loads(cli.ok("payments", "list", "--json"))
    assert (row["kind"], row["state"], row["amount_minor"], row["payment_intent"]) == (
        "refund",
        "succeeded",
        1500,
        paid.id,
    )
    assert "refund" in cli.ok("payments", "list")
    shown = json.loads(cli.ok("booking", "show", booked["id"], "--json"))
    refunded = [h for h in shown["history"] if h["action"] == "refunded"]
    assert refunded and refunded[0]["details"]["amount"] == "15.00 EUR"

    settings = load_settings(tmp_path / "calsync.toml").model_copy(
        update={"admin_api_key": "k" * 40}
    )
    db = Database(settings.database_url)
    try:
        with TestClient(create_app(settings, db=db)) as client:
            answer = client.get("/api/payments", headers={"Authorization": "Bearer " + "k" * 40})
        assert answer.status_code == 200
        assert [p["stripe_id"] for p in answer.json()] == [row["stripe_id"]]
    finally:
        db.dispose()
