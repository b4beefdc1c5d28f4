"""The console's calendar pages against real Radicale servers, on both databases: connecting
a calendar through the form with discovery (the password never in logs, pages or the
database in clear), the list in words, settings, "sync now", and disconnecting with what
happens to bookings said first."""

from __future__ import annotations

import base64
import logging
import re
import uuid
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from calsync.config import Settings, WebSettings
from calsync.store.db import Database
from calsync.store.models import Base, CalendarConnection, CalendarRole, ConnectionStatus
from calsync.testing.google_fake import FakeGoogle
from tests.support.console import add_owner, console_client, csrf_of, form_token, signed_in
from tests.support.manage_shop import OWNER, Shop
from tests.support.servers import PASSWORD, USER, ServerProcess
from tests.support.world import at, next_monday
from tests.web.test_google_signin import (  # noqa: F401  (fixtures, used by name)
    choose,
    consent,
    fake,
    gsettings,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

ADA = "ada@example.org"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """These tests connect the Radicale on 127.0.0.1, as an operator who allows it would."""
    return settings.model_copy(update={"web": WebSettings(allow_private_caldav=True)})


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    add_owner(db, ADA)
    with console_client(settings, db) as browser:
        signed_in(browser, db, settings, ADA)
        yield browser


def _options(page: str) -> dict[str, str]:
    """The choose page's calendars: name → its select's field name."""
    return dict(
        (name, field) for field, name in re.findall(r'<label for="(use-\d+)">([^<]+)</label>', page)
    )


def _whole_database(db: Database) -> str:
    """Every value of every row of every table, as text."""
    dump = []
    with db.reading() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                dump.append(repr(tuple(row)))
    return "\n".join(dump)


def test_the_owner_connects_a_caldav_calendar_with_discovery_and_the_password_stays_secret(
    client: TestClient,
    db: Database,
    settings: Settings,
    radicale_auth_server: ServerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name = f"Practice {uuid.uuid4().hex[:6]}"
    radicale_auth_server.new_calendar(display_name=name)
    token = form_token(client, "/console/calendars/connect")
    pages = []

    wrong = client.post(
        "/console/calendars/connect/caldav",
        data={
            "csrf": token,
            "server": radicale_auth_server.url,
            "username": USER,
            "password": "nope",
        },
    )
    assert wrong.status_code == 422
    assert "did not accept this username and password" in wrong.text
    assert radicale_auth_server.url in wrong.text  # the address is kept, the password not
    pages.append(wrong.text)

    found = client.post(
        "/console/calendars/connect/caldav",
        data={
            "csrf": token,
            "server": radicale_auth_server.url,
            "username": USER,
            "password": PASSWORD,
        },
    )
    assert found.status_code == 200, found.text
    pages.append(found.text)
    fields = _options(found.text)
    assert name in fields
    sealed = re.search(r'name="sealed" value="([^"]+)"', found.text)
    assert sealed
    connected = client.post(
        "/console/calendars/connect/caldav/choose",
        data={"csrf": csrf_of(found.text), "sealed": sealed.group(1), fields[name]: "both"},
    )
    assert connected.status_code == 303, connected.text
    listing = client.get(connected.headers["location"])
    pages.append(listing.text)
    assert name in listing.text and "Busy time and bookings" in listing.text
    assert "Not read yet" in listing.text

    with db.reading() as session:
        [calendar] = session.scalars(select(CalendarConnection)).all()
    assert calendar.display_name == name and calendar.role is CalendarRole.BOTH
    assert calendar.username == USER and calendar.secret_encrypted

    # It works: calsync reads the calendar with the stored password.
    synced = client.post(f"/console/calendars/{calendar.id}/sync", data={"csrf": token})
    assert synced.status_code == 303
    page = client.get(synced.headers["location"])
    pages.append(page.text)
    assert "Synced just now." in page.text and "Up to date" in page.text

    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, encoded, "correct+horse", "correct%20horse"):
        assert not any(secret in p for p in pages), secret
        assert secret not in caplog.text, secret
        assert secret not in _whole_database(db), secret


def test_the_list_says_what_is_wrong_and_what_to_do(
    client: TestClient, db: Database, settings: Settings, radicale_calendar: str
) -> None:
    owner_id = _ada(db)
    with db.writing() as session:
        session.add(
            CalendarConnection(
                owner_id=owner_id,
                provider="caldav",
                url=radicale_calendar,
                display_name="Home",
                status=ConnectionStatus.AUTH_FAILED,
                last_error="401 Unauthorized",
            )
        )
    page = client.get("/console/calendars").text
    assert "The server refused the username or password" in page
    assert "401 Unauthorized" in page
    assert "connect it again with the new password" in page


def _ada(db: Database) -> int:
    from calsync.sync import connections as services

    return services.find_owner(db, ADA).id


def test_the_owner_changes_role_cancel_mode_and_adoption(
    client: TestClient, db: Database, radicale_calendar: str
) -> None:
    with db.writing() as session:
        row = CalendarConnection(
            owner_id=_ada(db), provider="caldav", url=radicale_calendar, display_name="Home"
        )
        session.add(row)
        session.flush()
        calendar_id = row.id
    token = form_token(client)
    saved = client.post(
        f"/console/calendars/{calendar_id}/settings",
        data={"csrf": token, "name": "Home", "role": "bookings", "cancel_mode": "delete"},
    )
    assert saved.status_code == 303
    assert "Saved." in client.get(saved.headers["location"]).text

    incomplete = client.post(
        f"/console/calendars/{calendar_id}/adoption",
        data={"csrf": token, "adopt": "category", "event_type": "", "category": ""},
    )
    assert incomplete.status_code == 422
    assert "Choose the event type" in incomplete.text and "Name the category" in incomplete.text
    with db.reading() as session:
        stored = session.get(CalendarConnection, calendar_id)
        assert stored is not None
        assert stored.role is CalendarRole.BOOKINGS and stored.cancel_mode.value == "delete"
        assert stored.adopt.value == "off"


def test_disconnecting_says_what_happens_to_bookings_first(
    settings: Settings, db: Database, radicale_calendar: str
) -> None:
    shop = Shop(db, settings, radicale_calendar)
    shop.event_type()
    booked = shop.book(at(next_monday(), 10))
    with console_client(settings, db) as browser:
        signed_in(browser, db, settings, OWNER)
        page = browser.get(f"/console/calendars/{shop.calendar_id}/disconnect")
        assert page.status_code == 200
        assert "1 active booking" in page.text and "can no longer change those events" in page.text
        assert "coaching" in page.text and "cannot be booked" in page.text
        with db.reading() as session:
            assert session.get(CalendarConnection, shop.calendar_id) is not None
        done = browser.post(
            f"/console/calendars/{shop.calendar_id}/disconnect", data={"csrf": csrf_of(page.text)}
        )
        assert done.status_code == 303
        assert "disconnected" in browser.get(done.headers["location"]).text
    with db.reading() as session:
        assert session.get(CalendarConnection, shop.calendar_id) is None
    assert booked.id  # the booking stays
    from calsync.bookings.packages import get_booking

    assert get_booking(db, booked.id).status.value == "active"


def test_a_role_an_event_type_needs_is_refused_in_words(
    settings: Settings, db: Database, radicale_calendar: str
) -> None:
    shop = Shop(db, settings, radicale_calendar)
    shop.event_type()
    with console_client(settings, db) as browser:
        signed_in(browser, db, settings, OWNER)
        token = form_token(browser)
        refused = browser.post(
            f"/console/calendars/{shop.calendar_id}/settings",
            data={"csrf": token, "name": "Work", "role": "conflicts", "cancel_mode": "mark"},
        )
    assert refused.status_code == 422
    assert "must keep taking bookings" in refused.text and "coaching" in refused.text
    assert "calsync event-type edit" not in refused.text
    with db.reading() as session:
        stored = session.get(CalendarConnection, shop.calendar_id)
        assert stored is not None and stored.role is CalendarRole.BOTH


def test_the_owner_connects_google_from_the_console(
    gsettings: Settings,  # noqa: F811
    db: Database,
    fake: FakeGoogle,  # noqa: F811
) -> None:
    add_owner(db, ADA)
    with console_client(gsettings, db) as browser:
        signed_in(browser, db, gsettings, ADA)
        assert "Connect Google" in browser.get("/console/calendars/connect").text
        to_google = browser.get("/console/calendars/connect/google")
        assert to_google.status_code == 303
        link = to_google.headers["location"]
        assert link.startswith(fake.auth_uri)
        page = browser.get(consent(link))
        assert page.status_code == 200, page.text
        done = choose(browser, page.text, **{fake.account: "both"})
        assert done.status_code == 200, done.text  # type: ignore[attr-defined]
        assert 'href="/console/calendars"' in done.text  # type: ignore[attr-defined]
        listing = browser.get("/console/calendars").text
    assert "Google" in listing and "Busy time and bookings" in listing
    with db.reading() as session:
        [calendar] = session.scalars(select(CalendarConnection)).all()
    assert calendar.owner_id == _ada(db) and calendar.url == fake.account


def test_without_google_settings_the_console_says_so(client: TestClient) -> None:
    assert (
        "Google is not set up on this calsync server"
        in client.get("/console/calendars/connect").text
    )
    answer = client.get("/console/calendars/connect/google")
    assert answer.status_code == 503 and "Ask your calsync administrator" in answer.text


class _Controls(HTMLParser):
    """The form controls of a page a person fills in, and the ids its labels name."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "label" and values.get("for"):
            self.labelled.add(str(values["for"]))
        if tag in ("input", "select", "textarea") and values.get("type") != "hidden":
            self.controls.append(values)


def test_every_field_of_every_page_has_a_label(
    client: TestClient, db: Database, settings: Settings, radicale_calendar: str
) -> None:
    with db.writing() as session:
        row = CalendarConnection(
            owner_id=_ada(db), provider="caldav", url=radicale_calendar, display_name="Home"
        )
        session.add(row)
        session.flush()
        calendar_id = row.id
    paths = [
        "/console/calendars",
        "/console/calendars/connect",
        f"/console/calendars/{calendar_id}",
        f"/console/calendars/{calendar_id}/disconnect",
        "/console/email-problems",
    ]
    pages = [client.get(path) for path in paths]
    with console_client(settings, db) as signed_out:
        pages.append(signed_out.get("/console/sign-in"))
    for path, page in zip([*paths, "/console/sign-in"], pages, strict=True):
        assert page.status_code == 200, path
        parsed = _Controls()
        parsed.feed(page.text)
        assert parsed.lang == "en", path
        assert '<meta name="viewport"' in page.text, path
        unlabelled = [c for c in parsed.controls if c.get("id") not in parsed.labelled]
        assert not unlabelled, (path, unlabelled)
        # Only this site's assets: no third-party stylesheet, script or image.
        assert not re.search(r'(src|href)="https?://', page.text.split("<main", 1)[0]), path


def test_sync_now_on_a_server_that_is_down_says_what_happened_and_what_to_do(
    client: TestClient, db: Database
) -> None:
    from tests.support.servers import free_port

    with db.writing() as session:
        row = CalendarConnection(
            owner_id=_ada(db),
            provider="caldav",
            url=f"http://127.0.0.1:{free_port()}/alice/work/",  # nothing listens there
            display_name="Work",
        )
        session.add(row)
        session.flush()
        calendar_id = row.id
    token = form_token(client)
    answer = client.post(f"/console/calendars/{calendar_id}/sync", data={"csrf": token})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    assert "could not" in page and "Cannot be read at the moment" in page
    assert "What went wrong:" in page and "calsync keeps trying on its own" in page
    listing = client.get("/console/calendars").text
    assert "Cannot be read at the moment" in listing and "What went wrong:" in listing
