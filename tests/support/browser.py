"""A real browser against a real server: the app under uvicorn on a free loopback port (in a
thread of the test process), and headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``); Playwright never
downloads a browser here. Without it the browser tests are skipped with a message saying how
to install it. The browser runs with networking features that call home switched off, and
each test gets a fresh context (no cookies, its own time zone and locale).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import uvicorn

from calsync.config import Settings
from calsync.store.db import Database
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.support.servers import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-quic",
]
STARTUP_TIMEOUT = 10.0


@dataclass
class LiveServer:
    """The app served by uvicorn at ``url`` (which is also its configured ``base_url``)."""

    url: str
    settings: Settings
    db: Database


@contextmanager
def live_server(
    settings: Settings, db: Database, *, limits: RateLimits | None = None
) -> Iterator[LiveServer]:
    """Serve the app on a free loopback port until the block ends.

    ``settings.base_url`` must already be ``http://127.0.0.1:<port>`` (see ``serving_settings``)
    so that the links the app writes point at this server."""
    port = int(settings.base_url.rsplit(":", 1)[1])
    app = create_app(settings, db=db, manage_limits=limits)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield LiveServer(settings.base_url, settings, db)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serving_settings(settings: Settings) -> Settings:
    """``settings`` with the base URL of a free loopback port, for ``live_server``."""
    return settings.model_copy(update={"base_url": f"http://127.0.0.1:{free_port()}"})


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Headless Debian Chromium until the block ends; skips the test without it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install -y --no-install-recommends chromium; `make test` does it)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
