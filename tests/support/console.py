"""Driving the owner's console in tests: an app, an owner, the emailed sign-in link, a
signed-in client. For the console's own tests and those of pages added to it."""

from __future__ import annotations

import re
import warnings
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import select

from calsync.access import sign_in as console_links
from calsync.config import Settings
from calsync.notify import outbox
from calsync.store.db import Database
from calsync.store.models import OutboxMessage, Owner
from calsync.sync import connections as services
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

LINK = re.compile(r"https?://[^\s\"<>]+/console/link/[A-Za-z0-9_-]+")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_client(
    settings: Settings, db: Database, limits: RateLimits | None = None
) -> TestClient:
    """A browser on the app: redirects not followed, cookies kept."""
    app = create_app(settings, db=db, manage_limits=limits or RateLimits.off())
    return TestClient(app, base_url=settings.base_url, follow_redirects=False)


def add_owner(db: Database, email: str, name: str = "Ada Coach") -> Owner:
    return services.add_owner(db, name=name, email=email, timezone="Europe/Berlin")


def emails_to(db: Database, settings: Settings, address: str) -> list[EmailMessage]:
    """Every message in the outbox to ``address`` that still has its body, oldest first."""
    box = outbox.sealing_box(settings)
    with db.reading() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    found = []
    for row in rows:
        if address in row.recipient and row.raw:
            parsed = message_from_bytes(outbox.unseal(box, row.raw), policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
    return found


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = LINK.search(body.get_content())
    assert match, "no sign-in link in the email"
    return match.group(0)


def emailed_link(db: Database, settings: Settings, address: str) -> str:
    """The sign-in link of the latest email to ``address``."""
    messages = emails_to(db, settings, address)
    assert messages, f"no email to {address} in the outbox"
    return link_in(messages[-1])


def path_of(link: str, settings: Settings) -> str:
    return link.removeprefix(settings.base_url.rstrip("/"))


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no csrf field on the page"
    return match.group(1)


def sign_in(client: TestClient, link: str, settings: Settings) -> None:
    """Open the emailed link and press "Sign in", as the owner does."""
    page = client.get(path_of(link, settings))
    assert page.status_code == 200, page.text
    answer = client.post(path_of(link, settings), data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].endswith("/console/calendars")


def signed_in(client: TestClient, db: Database, settings: Settings, email: str) -> None:
    """Invite the owner with ``email`` and sign ``client`` in with the emailed link."""
    console_links.invite(db, settings, email)
    sign_in(client, emailed_link(db, settings, email), settings)


def form_token(client: TestClient, path: str = "/console/calendars") -> str:
    """The console's anti-CSRF token for the client's session, from a page."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
