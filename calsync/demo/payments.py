"""The demo's Stripe: localstripe (a stateful fake Stripe server, written by others) on a
loopback port, so a person can pay a rescheduling fee in the browser with a test card.

Started by ``calsync demo`` when the ``localstripe`` package is installed (it comes with the
development install, ``make demo``); without it the demo runs without payments, as calsync
does without a ``[payments]`` section. The demo's keys are made up: localstripe accepts any
``sk_…``; they are put in this process's environment only, where ``[payments]`` reads them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from calsync.config import PaymentSettings
from calsync.demo.embedded import free_port

SECRET_ENV = "CALSYNC_DEMO_STRIPE_SECRET_KEY"
PUBLISHABLE_ENV = "CALSYNC_DEMO_STRIPE_PUBLISHABLE_KEY"
WEBHOOK_ENV = "CALSYNC_DEMO_STRIPE_WEBHOOK_SECRET"

#: Test cards that work in the demo's card field (localstripe's and Stripe's test numbers).
CARD_PAYS = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0341"
CARD_3DS = "4000 0025 0000 3155"


def available() -> bool:
    return importlib.util.find_spec("localstripe") is not None


class EmbeddedStripe:
    """localstripe as a child process on 127.0.0.1 (``calsync.testing.stripe_server``)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        argv = [sys.executable, "-m", "calsync.testing.stripe_server", "--port", str(self.port)]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/js.stripe.com/v3/", timeout=1):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"localstripe did not start; see {self._log}") from None
                time.sleep(0.05)

    def settings(self) -> PaymentSettings:
        """A ``[payments]`` section pointed at this server, its made-up keys in the environment."""
        os.environ.setdefault(SECRET_ENV, "sk_test_demo_" + secrets.token_hex(8))
        os.environ.setdefault(PUBLISHABLE_ENV, "pk_test_demo_" + secrets.token_hex(8))
        os.environ.setdefault(WEBHOOK_ENV, "whsec_demo_" + secrets.token_hex(16))
        return PaymentSettings(
            secret_key_env=SECRET_ENV,
            publishable_key_env=PUBLISHABLE_ENV,
            webhook_secret_env=WEBHOOK_ENV,
            api_base=self.url,
            js_url=self.url + "/js.stripe.com/v3/",
            hold_minutes=15,
        )

    def send_webhooks_to(self, url: str, secret: str) -> None:
        """localstripe's ``/_config/webhooks/{id}``: every event, signed, to ``url``."""
        body = json.dumps({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(
            self.url + "/_config/webhooks/calsync-demo",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
