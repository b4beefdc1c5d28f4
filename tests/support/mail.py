"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts, for tests of
what calsync processes actually send.

Fixture: ``smtp_capture`` (started for the test, stopped after it).
"""

from __future__ import annotations

import email
import threading
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.servers import free_port


class Captured:
    """What the server accepted, in order; safe to read while it is receiving."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self._messages.append(message)  # type: ignore[arg-type]
        return "250 Accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(str(m["Message-ID"]) for m in self.messages)


class SmtpCapture:
    def __init__(self) -> None:
        self.inbox = Captured()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self) -> dict[str, str]:
        """Settings that make a calsync process send its mail here."""
        return {
            "CALSYNC_MAIL__BACKEND": "smtp",
            "CALSYNC_MAIL__SMTP_HOST": "127.0.0.1",
            "CALSYNC_MAIL__SMTP_PORT": str(self.port),
            "CALSYNC_MAIL__SMTP_SECURITY": "none",
            "CALSYNC_MAIL__FROM_ADDRESS": "bookings@example.org",
        }


@pytest.fixture
def smtp_capture() -> Iterator[SmtpCapture]:
    server = SmtpCapture()
    server.start()
    yield server
    server.stop()
