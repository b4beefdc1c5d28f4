"""The owner's console in headless Chromium against a live server, the way an owner uses it:
invited by the operator, signed in from the link in the email (delivered over real SMTP to
aiosmtpd), a password-protected Radicale calendar connected through the form with discovery
and synced, signed out; later a new link asked for on the sign-in page. No console error is
allowed. SQLite is enough here (the HTTP-level tests run both databases)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from calsync.access import sign_in as console_links
from calsync.config import MailBackend, MailSettings, SmtpSecurity, WebSettings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from calsync.store.models import CalendarConnection, CalendarRole
from tests.conftest import make_settings
from tests.notify.test_outbox import Inbox
from tests.support.browser import launch_chromium, live_server, serving_settings
from tests.support.console import add_owner, link_in
from tests.support.servers import PASSWORD, USER, ServerProcess, free_port

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, ConsoleMessage

pytestmark = pytest.mark.slow
ADA = "ada@example.org"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def test_an_invited_owner_signs_in_and_connects_a_radicale_calendar_in_a_browser(
    tmp_path: Path, chromium: Browser, radicale_auth_server: ServerProcess
) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    mail = MailSettings(
        backend=MailBackend.SMTP,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security=SmtpSecurity.NONE,
        from_address="calsync@example.org",
    )
    settings = serving_settings(make_settings(f"sqlite:///{tmp_path}/calsync.db"))
    # The Radicale on 127.0.0.1 is connected from the console: allowed, as an operator would.
    settings = settings.model_copy(
        update={"mail": mail, "web": WebSettings(allow_private_caldav=True)}
    )
    db = Database(settings.database_url)
    db.migrate()
    add_owner(db, ADA)
    name = f"Practice {uuid.uuid4().hex[:6]}"
    radicale_auth_server.new_calendar(display_name=name)
    problems: list[str] = []
    # Chromium reports every page answered with an error status; these are meant (a refused
    # password is a 422, a used link a 404) and checked for below.
    statuses: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.text.startswith("Failed to load resource: the server responded with"):
            statuses.append(message.text.split("status of ", 1)[1].split(" ", 1)[0])
        elif message.type in ("error", "warning"):
            problems.append(message.text)

    def deliver() -> str:
        """Send what the outbox holds over SMTP; the sign-in link of the last email to Ada."""
        outbox.deliver_due(
            db, transport_from_settings(settings.mail), "w1", outbox.sealing_box(settings)
        )
        to_ada = [m for m in inbox.received if ADA in str(m["To"])]
        assert to_ada, "no email reached Ada"
        return link_in(to_ada[-1])

    try:
        with live_server(settings, db) as server:
            console_links.invite(db, settings, ADA)  # `calsync owner invite ada@example.org`
            link = deliver()
            assert link.startswith(f"{server.url}/console/link/")

            context = chromium.new_context(locale="en-GB")
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on("console", console)
            page.on("pageerror", lambda error: problems.append(str(error)))

            page.goto(link)
            page.get_by_role("button", name="Sign in").click()
            assert page.locator("h1").inner_text() == "Calendars"
            assert "Ada Coach" in page.locator("header").inner_text()
            [cookie] = [c for c in context.cookies() if c["name"] == "calsync_console"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

            page.get_by_role("link", name="Connect a calendar").click()
            page.get_by_label("Server address").fill(radicale_auth_server.url)
            page.get_by_label("Username").fill(USER)
            page.get_by_label("Password").fill("wrong password")
            page.get_by_role("button", name="Find my calendars").click()
            assert "did not accept this username and password" in page.inner_text("main")
            assert page.get_by_label("Password").input_value() == ""
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Find my calendars").click()
            assert page.locator("h1").inner_text() == "Choose your calendars"
            page.get_by_label(name).select_option("both")
            page.get_by_role("button", name="Connect these calendars").click()
            assert "Connected." in page.inner_text("main")
            row = page.locator("tr", has_text=name)
            assert "Busy time and bookings" in row.inner_text()
            assert "Not read yet" in row.inner_text()

            # On a phone: nothing wider than the screen (the table scrolls inside its box).
            page.set_viewport_size({"width": 360, "height": 740})
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.get_by_role("link", name=name).click()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            page.set_viewport_size({"width": 1280, "height": 800})
            page.get_by_role("button", name="Sync now").click()
            assert "Synced just now." in page.inner_text("main")
            assert "Up to date" in page.inner_text("main")
            with db.reading() as session:
                [stored] = session.scalars(select(CalendarConnection)).all()
            assert stored.role is CalendarRole.BOTH and stored.display_name == name

            page.get_by_role("button", name="Sign out").click()
            assert "You are signed out." in page.inner_text("main")
            page.goto(f"{server.url}/console/calendars")
            assert page.locator("h1").inner_text() == "Sign in to your calsync console"

            # The used link opens nothing; a new one is asked for on the sign-in page.
            page.goto(link)
            assert "This sign-in link does not work" in page.inner_text("main")
            page.get_by_label("Your email address").fill(ADA)
            page.get_by_role("button", name="Email me a new link").click()
            assert "a sign-in link is on its way" in page.inner_text("main")
            page.goto(deliver())
            page.get_by_role("button", name="Sign in").click()
            assert name in page.inner_text("main")
            context.close()
    finally:
        smtp.stop()
        db.dispose()
    assert problems == []
    assert statuses == ["422", "404"]
