"""An invited owner cannot make the server call its own network through the console.

The CalDAV connect form and "Sync now" refuse addresses that resolve to loopback, link-local
(cloud metadata at 169.254.169.254), private, multicast or unspecified addresses, unless the
operator sets ``web.allow_private_caldav`` (a calendar server on the same host or network).
Real Radicale on 127.0.0.1 stands for "a service only the server can reach"."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from calsync.config import Settings, WebSettings
from calsync.store.db import Database
from calsync.store.models import CalendarConnection
from calsync.sync import connections as services
from tests.support.console import add_owner, console_client, form_token, signed_in
from tests.support.servers import PASSWORD, USER, ServerProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

ADA = "ada@example.org"
REFUSED = "calsync does not connect to addresses on its own network"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    assert settings.web.allow_private_caldav is False  # the default
    add_owner(db, ADA)
    with console_client(settings, db) as browser:
        signed_in(browser, db, settings, ADA)
        yield browser


def _connect(client: TestClient, server: str, password: str = PASSWORD) -> str:
    answer = client.post(
        "/console/calendars/connect/caldav",
        data={
            "csrf": form_token(client, "/console/calendars/connect"),
            "server": server,
            "username": USER,
            "password": password,
        },
    )
    assert answer.status_code == 422, answer.text
    return answer.text


def test_a_local_calendar_server_is_refused_by_default(
    client: TestClient, radicale_auth_server: ServerProcess
) -> None:
    page = _connect(client, radicale_auth_server.url)
    assert REFUSED in page
    assert radicale_auth_server.url in page  # the address is kept to correct


@pytest.mark.parametrize(
    "server",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/dav/",  # private
        "http://192.168.0.10:5232/",
        "http://localhost:5432/",  # a name that resolves to loopback
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4 loopback written as IPv6
        "http://0.0.0.0:5232/",  # unspecified
        "http://224.0.0.1/",  # multicast
    ],
)
def test_addresses_on_the_servers_own_network_are_refused_in_words(
    client: TestClient, server: str
) -> None:
    assert REFUSED in _connect(client, server)


def test_sync_now_refuses_a_calendar_at_a_local_address(
    client: TestClient, db: Database, radicale_auth_server: ServerProcess
) -> None:
    with db.writing() as session:
        row = CalendarConnection(
            owner_id=services.find_owner(db, ADA).id,
            provider="caldav",
            url=radicale_auth_server.url,
            display_name="Work",
        )
        session.add(row)
        session.flush()
        calendar_id = row.id
    answer = client.post(
        f"/console/calendars/{calendar_id}/sync", data={"csrf": form_token(client)}
    )
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    assert REFUSED in page
    with db.reading() as session:
        calendar = session.scalars(select(CalendarConnection)).one()
    assert calendar.last_polled_at is None  # nothing was requested


def test_the_operator_can_allow_local_calendar_servers(
    settings: Settings, db: Database, radicale_auth_server: ServerProcess
) -> None:
    allowed = settings.model_copy(update={"web": WebSettings(allow_private_caldav=True)})
    add_owner(db, ADA)
    radicale_auth_server.new_calendar(display_name="Local practice")
    with console_client(allowed, db) as browser:
        signed_in(browser, db, allowed, ADA)
        found = browser.post(
            "/console/calendars/connect/caldav",
            data={
                "csrf": form_token(browser, "/console/calendars/connect"),
                "server": radicale_auth_server.url,
                "username": USER,
                "password": PASSWORD,
            },
        )
    assert found.status_code == 200, found.text
    assert REFUSED not in found.text and "Local practice" in found.text
