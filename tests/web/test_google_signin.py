"""Connecting Google calendars from a browser (the OAuth web flow and the calendar choice), and
what happens when a grant is revoked: the connection waits for a reconnect and the owner is
told. Against the fake Google (consent screen, token endpoint, calendar list) on both
databases; the browser's part is played by the test client following the redirects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from calsync.bookings.polling import booking_poller
from calsync.config import GoogleSettings, Settings
from calsync.notify import outbox
from calsync.secretbox import SecretBox
from calsync.store.db import Database
from calsync.store.models import CalendarRole, ConnectionStatus, Owner, ProviderKind
from calsync.sync import connections as services
from calsync.testing.google_fake import FakeGoogle
from calsync.web.app import create_app
from tests.cli.test_cli import Cli, cli_env
from tests.e2e.test_google_e2e import connect, owner, token_json
from tests.support.world import OWNER
from tests.web.test_api import API_KEY, AUTH

TEAM = "team@group.calendar.google.com"
HOLIDAYS = "holidays@group.v.calendar.google.com"


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        server.add_calendar(TEAM, summary="Team", time_zone="Europe/Berlin", access_role="writer")
        server.add_calendar(HOLIDAYS, summary="Holidays", access_role="reader")
        server.add_calendar("busy-only", summary="Boss", access_role="freeBusyReader")
        yield server


@pytest.fixture
def gsettings(settings: Settings, fake: FakeGoogle) -> Settings:
    google = GoogleSettings(
        client_id="web-client.apps.googleusercontent.com",
        client_secret="web-secret",
        api_endpoint=fake.endpoint,
        auth_uri=fake.auth_uri,
        token_uri=fake.token_uri,
    )
    return settings.model_copy(update={"google": google, "admin_api_key": API_KEY})


@pytest.fixture
def client(gsettings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(gsettings, db=db)) as test_client:
        yield test_client


def sign_in_link(client: TestClient, db: Database) -> str:
    owner_id = services.find_owner(db, OWNER).id
    answer = client.post(f"/api/owners/{owner_id}/google/sign-in", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["sign_in_url"])


def consent(link: str) -> str:
    """What the owner's browser does at Google: open the link, come back with a code."""

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as back:
        urllib.request.build_opener(Stay).open(link)
    assert back.value.code == 302
    location = str(back.value.headers["Location"])
    parts = urlsplit(location)
    assert parts.path == "/oauth/google/callback"
    return f"{parts.path}?{parts.query}"


def choose(client: TestClient, page: str, **uses: str) -> object:
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf, **{f"use:{calendar}": role for calendar, role in uses.items()}}
    return client.post("/oauth/google/calendars", data=form)


def test_an_owner_signs_in_chooses_calendars_and_they_sync(
    client: TestClient, db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    link = sign_in_link(client, db)
    query = parse_qs(urlsplit(link).query)
    # Offline access with a fresh refresh token, PKCE, and only the scopes calsync needs.
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/oauth/google/callback"]
    assert set(query["scope"][0].split()) == {
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
        "https://www.googleapis.com/auth/calendar.freebusy",
    }

    page = client.get(consent(link))
    assert page.status_code == 200, page.text
    # Every calendar whose events can be read, the main one first; free/busy-only ones can't.
    assert page.text.index(fake.account) < page.text.index("Holidays") < page.text.index("Team")
    assert "Boss" not in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/oauth/google" in cookie and "SameSite=lax" in cookie
    assert "refresh-granted" not in page.text + cookie  # the grant is sealed, never shown

    done = choose(client, page.text, **{fake.account: "both", HOLIDAYS: "conflicts", TEAM: ""})
    assert done.status_code == 200, done.text
    assert "busy time and bookings" in done.text
    connections = {c.url: c for c in services.list_calendars(db)}
    assert set(connections) == {fake.account, HOLIDAYS}
    assert connections[fake.account].role is CalendarRole.BOTH
    assert connections[HOLIDAYS].role is CalendarRole.CONFLICTS
    stored = connections[HOLIDAYS]
    assert stored.provider is ProviderKind.GOOGLE and stored.secret_encrypted
    grant = json.loads(SecretBox(gsettings.require_secret_key()).decrypt(stored.secret_encrypted))
    assert grant["refresh_token"].startswith("refresh-granted-")
    assert "token" not in grant  # the short-lived access token is not kept

    poller = booking_poller(db, gsettings)
    try:
        results = poller.sync_now()
    finally:
        poller.stop()
    assert [r.error for r in results] == [None, None]
    # The sealed grant is used up: the same form cannot connect anything again.
    again = choose(client, page.text, **{TEAM: "conflicts"})
    assert again.status_code == 403
    assert TEAM not in {c.url for c in services.list_calendars(db)}


def test_a_refused_consent_connects_nothing_and_says_so(
    client: TestClient, db: Database, fake: FakeGoogle
) -> None:
    owner(db)
    fake.consent = False
    page = client.get(consent(sign_in_link(client, db)))
    assert page.status_code == 400
    assert "did not allow" in page.text
    assert services.list_calendars(db) == []


def test_forged_and_replayed_sign_ins_are_refused(
    client: TestClient, db: Database, fake: FakeGoogle
) -> None:
    owner(db)
    back = consent(sign_in_link(client, db))
    forged = client.get("/oauth/google/callback?state=made-up&code=abc")
    assert forged.status_code == 400 and "not valid any more" in forged.text
    assert client.get(back).status_code == 200
    replayed = client.get(back)  # a code works once
    assert replayed.status_code == 400 and "did not accept" in replayed.text
    assert client.get("/oauth/google/callback").status_code == 400


def test_the_choice_is_only_taken_from_this_site_with_the_cookie(
    client: TestClient, db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    page = client.get(consent(sign_in_link(client, db)))
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf, f"use:{fake.account}": "both"}
    cross = client.post(
        "/oauth/google/calendars", data=form, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    wrong = client.post("/oauth/google/calendars", data={**form, "csrf": "x" * 64})
    assert wrong.status_code == 403
    with TestClient(create_app(gsettings, db=db)) as stranger:  # no cookie
        assert stranger.post("/oauth/google/calendars", data=form).status_code == 403
    assert services.list_calendars(db) == []
    nothing = client.post("/oauth/google/calendars", data={"csrf": csrf})
    assert nothing.status_code == 422
    assert client.post("/oauth/google/calendars", data=form).status_code == 200


def test_a_sign_in_link_needs_a_configured_client_and_a_known_owner(
    settings: Settings, db: Database
) -> None:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    owner(db)
    with TestClient(create_app(keyed, db=db)) as client:
        answer = client.post("/api/owners/1/google/sign-in", headers=AUTH)
        assert answer.status_code == 503
        assert "google.client_id" in answer.json()["detail"]
    google = GoogleSettings(client_id="c", client_secret="s")
    with TestClient(create_app(keyed.model_copy(update={"google": google}), db=db)) as client:
        assert client.post("/api/owners/999/google/sign-in", headers=AUTH).status_code == 404


def test_a_revoked_grant_stops_polling_tells_the_owner_once_and_a_new_sign_in_resumes(
    client: TestClient,
    db: Database,
    gsettings: Settings,
    fake: FakeGoogle,
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner(db)
    calendar = connect(db, gsettings, fake)
    poller = booking_poller(db, gsettings)
    try:
        assert poller.sync_now()[0].error is None
        fake.revoked.add("refresh-token-1")
        (failed,) = poller.sync_now()
        assert failed.error and "reconnect" in failed.error
        stored = services.get_calendar(db, calendar.id)
        assert stored.status is ConnectionStatus.NEEDS_RECONNECT
        # Not due any more, however long we wait: nothing is claimed for it.
        with db.writing() as session:
            session.get(type(stored), calendar.id).next_poll_at = stored.created_at
        assert poller.claim_due(10) == []
        poller.sync_now([calendar.id])  # an explicit sync tries again, and fails again
        messages = outbox.list_messages(db)
        assert len(messages) == 1, "the owner is told once, not at every attempt"
        (message,) = messages
        assert message.recipient.endswith(f"<{OWNER}>") and message.booking_id is None
        text = message_from_bytes(
            outbox.unseal(outbox.sealing_box(gsettings), message.raw), policy=policy.default
        ).get_body(("plain",))
        assert text is not None
        body = text.get_content()
        assert f"calsync calendar add --owner {OWNER} --google --calendar-id {fake.account}" in body
        assert "refresh-token-1" not in body
        # The log and `calsync calendar list` say the same.
        assert "not polling it until" in caplog.text and "refresh-token-1" not in caplog.text
        listed = json.loads(Cli(tmp_path, database_url).ok("calendar", "list", "--json"))
        assert [(c["status"], "reconnect" in c["error"]) for c in listed] == [
            ("needs_reconnect", True)
        ]

        # The owner signs in again and picks the same calendar: it is reconnected.
        page = client.get(consent(sign_in_link(client, db)))
        # The page names the main calendar by the account's address, not "primary".
        assert choose(client, page.text, **{fake.account: "both"}).status_code == 200
        again = services.get_calendar(db, calendar.id)
        assert again.status is ConnectionStatus.NEW and again.last_error is None
        assert len(services.list_calendars(db)) == 1
        assert poller.sync_now()[0].error is None
        assert services.get_calendar(db, calendar.id).status is ConnectionStatus.OK
    finally:
        poller.stop()


def fake_env(fake: FakeGoogle) -> dict[str, str]:
    return {
        "CALSYNC_GOOGLE__CLIENT_ID": "web-client.apps.googleusercontent.com",
        "CALSYNC_GOOGLE__CLIENT_SECRET": "web-secret",
        "CALSYNC_GOOGLE__API_ENDPOINT": fake.endpoint,
        "CALSYNC_GOOGLE__AUTH_URI": fake.auth_uri,
        "CALSYNC_GOOGLE__TOKEN_URI": fake.token_uri,
        "CALSYNC_ADMIN_API_KEY": API_KEY,
    }


def test_the_cli_prints_a_sign_in_link_that_the_pages_accept(
    tmp_path: Path, database_url: str, db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    printed = json.loads(
        cli.ok("calendar", "add", "--owner", OWNER, "--web", "--json", env=fake_env(fake))
    )
    with TestClient(create_app(gsettings, db=db)) as client:
        page = client.get(consent(printed["sign_in_url"]))
        assert page.status_code == 200 and "Team" in page.text
        assert choose(client, page.text, **{TEAM: "bookings"}).status_code == 200
    (connection,) = services.list_calendars(db)
    assert (connection.url, connection.role) == (TEAM, CalendarRole.BOOKINGS)
    text = cli.ok("calendar", "add", "--owner", OWNER, "--web", env=fake_env(fake))
    assert "redirect URI" in text and "/oauth/google/callback" in text
    both = ("--web", "--calendar-id", TEAM)
    message = cli.fails("calendar", "add", "--owner", OWNER, *both, env=fake_env(fake))
    assert "leave out --calendar-id" in message


def test_at_a_terminal_the_owner_picks_calendars_from_the_account(
    tmp_path: Path, database_url: str, db: Database, fake: FakeGoogle
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    token = tmp_path / "token.json"
    token.write_text(token_json(fake))
    args = ["calendar", "add", "--owner", OWNER, "--google-token-file", str(token)]
    # A real terminal on stdin (a pseudo-terminal), as when an operator runs the command.
    leader, follower = os.openpty()
    with os.fdopen(leader, "wb", buffering=0) as keyboard:
        keyboard.write(b"1,3\n")
        result = subprocess.run(
            [sys.executable, "-m", "calsync", *args],
            cwd=tmp_path,
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(fake_env(fake)),
        )
    os.close(follower)
    assert result.returncode == 0, result.stderr
    assert "Calendars to connect" in result.stdout
    # Listed main calendar first, then by name: 1 = the account, 2 = Holidays, 3 = Team.
    assert sorted(c.url for c in services.list_calendars(db)) == sorted([fake.account, TEAM])
    # Without a terminal (a script), the primary calendar, as before.
    cli.ok(*args, env=fake_env(fake))
    assert "primary" not in {c.url for c in services.list_calendars(db)}  # the same calendar
    assert len(services.list_calendars(db)) == 2


def test_another_account_signing_in_never_takes_over_a_connected_calendar(
    client: TestClient, db: Database, gsettings: Settings, fake: FakeGoogle
) -> None:
    owner(db)
    mine = connect(db, gsettings, fake)  # as `calendar add --google` (primary) connects it
    stored_grant = services.get_calendar(db, mine.id).secret_encrypted
    # Someone signs in with another Google account through the owner's link: its main
    # calendar is "primary" too, but a different calendar.
    fake.account = "stranger@example.org"
    page = client.get(consent(sign_in_link(client, db)))
    assert choose(client, page.text, **{fake.account: "conflicts"}).status_code == 200
    connections = {c.url: c for c in services.list_calendars(db)}
    assert set(connections) == {"owner@example.org", "stranger@example.org"}
    assert connections["owner@example.org"].secret_encrypted == stored_grant


def test_a_read_only_calendar_cannot_take_bookings(
    client: TestClient, db: Database, fake: FakeGoogle
) -> None:
    owner(db)
    page = client.get(consent(sign_in_link(client, db)))
    # The page offers "busy time only" for it; a hand-made form asks for more.
    refused = choose(client, page.text, **{HOLIDAYS: "bookings"})
    assert refused.status_code == 422
    assert "may only read" in refused.text
    assert services.list_calendars(db) == []


def test_an_owner_removed_during_the_sign_in_gets_a_page_not_json(
    client: TestClient, db: Database, fake: FakeGoogle
) -> None:
    owner(db)
    page = client.get(consent(sign_in_link(client, db)))
    with db.writing() as session:
        session.delete(session.get(Owner, services.find_owner(db, OWNER).id))
    gone = choose(client, page.text, **{fake.account: "both"})
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("text/html")
    assert "no calendar was connected" in gone.text


def test_an_unticked_permission_is_named_and_nothing_is_connected(
    client: TestClient, db: Database, fake: FakeGoogle
) -> None:
    owner(db)
    fake.withheld_scopes.add("https://www.googleapis.com/auth/calendar.events")
    page = client.get(consent(sign_in_link(client, db)))
    assert page.status_code == 400
    assert "permission to see and edit events" in page.text
    assert "calsync_google_grant" not in page.headers.get("set-cookie", "")
    assert services.list_calendars(db) == []
