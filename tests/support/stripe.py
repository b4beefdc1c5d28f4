"""localstripe on loopback, as pytest fixtures (a real, stateful fake Stripe server).

``stripe_server`` starts ``python -m calsync.testing.stripe_server`` once per test session on
a free port. ``payment_settings`` is a ``[payments]`` section pointed at it, with a fresh test
key and webhook secret in the environment. ``register_webhook`` tells localstripe where to
send events (its ``/_config/webhooks/{id}`` route).

Test cards (localstripe's lists; the same numbers Stripe documents): ``pm_card_visa`` pays,
``pm_card_chargeDeclined`` is declined; by number, 4242 4242 4242 4242 pays,
4000 0000 0000 0341 is declined when charged, 4000 0025 0000 3155 asks for 3-D Secure.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync.config import PaymentSettings
from tests.support.servers import ServerProcess, free_port


def start_stripe(workdir: Path) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "calsync.testing.stripe_server", "--port", str(port)]
    server = ServerProcess("localstripe", argv, port, workdir)
    server.start()
    return server


@pytest.fixture(scope="session")
def stripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_stripe(tmp_path_factory.mktemp("localstripe"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def payment_settings(
    stripe_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> PaymentSettings:
    if not stripe_server.running:
        stripe_server.start()
    monkeypatch.setenv("TEST_STRIPE_SECRET_KEY", "sk_test_" + secrets.token_hex(12))
    monkeypatch.setenv("TEST_STRIPE_PUBLISHABLE_KEY", "pk_test_" + secrets.token_hex(12))
    monkeypatch.setenv("TEST_STRIPE_WEBHOOK_SECRET", "whsec_" + secrets.token_hex(16))
    return PaymentSettings(
        secret_key_env="TEST_STRIPE_SECRET_KEY",
        publishable_key_env="TEST_STRIPE_PUBLISHABLE_KEY",
        webhook_secret_env="TEST_STRIPE_WEBHOOK_SECRET",
        api_base=stripe_server.url.rstrip("/"),
        js_url=stripe_server.url + "js.stripe.com/v3/",
        request_timeout_seconds=10,
    )


def register_webhook(server: ServerProcess, name: str, url: str, secret: str) -> None:
    """Ask localstripe to POST every event to ``url``, signed with ``secret``."""
    body = json.dumps({"url": url, "secret": secret}).encode()
    req = urllib.request.Request(
        server.url + f"_config/webhooks/{name}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
