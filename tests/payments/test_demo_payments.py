"""``calsync demo`` runs localstripe so a person can pay a fee: it says how, and the demo's
``[payments]`` section reaches a Stripe server that takes a test card."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from calsync.demo.caldav import run_demo
from calsync.demo.payments import EmbeddedStripe
from calsync.payments.gateway import IntentStatus, StripeGateway


def test_the_demo_says_how_to_pay_a_fee(tmp_path: Path) -> None:
    printed = io.StringIO()
    run_demo(tmp_path / "demo", once=True, console=Console(file=printed, width=400), port=8000)
    text = printed.getvalue()
    assert "fake Stripe (localstripe)" in text
    assert "4242 4242 4242 4242" in text
    assert "calsync payments list" in text


def test_the_demo_stripe_takes_a_test_card(tmp_path: Path) -> None:
    stripe = EmbeddedStripe(tmp_path / "localstripe.log")
    stripe.start()
    try:
        gateway = StripeGateway.from_settings(stripe.settings())
        intent = gateway.create_intent(1500, "EUR", {}, "demo-test")
        assert gateway.confirm_intent(intent.id, "pm_card_visa").status is IntentStatus.SUCCEEDED
    finally:
        stripe.stop()
