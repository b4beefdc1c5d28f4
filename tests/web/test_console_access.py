"""The owner's console: invitations, one-time links, sessions, anti-CSRF and isolation, over
HTTP against the app on both databases (the sign-in email is read from the real outbox)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from calsync.access import sign_in as console_links
from calsync.config import Settings
from calsync.store.console_rows import ConsoleSession, ConsoleSignInLink
from calsync.store.db import Database
from calsync.store.models import (
    CalendarConnection,
    CalendarRole,
    OutboxMessage,
    OutboxStatus,
    ProviderKind,
    utcnow,
)
from calsync.token_hash import hash_token
from calsync.web.manage.rate_limit import RateLimits
from tests.conftest import make_settings
from tests.support.console import (
    add_owner,
    console_client,
    csrf_of,
    emailed_link,
    emails_to,
    form_token,
    path_of,
    sign_in,
    signed_in,
)
from tests.support.web_process import WebProcess, process_env

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

ADA = "ada@example.org"
BOB = "bob@example.org"


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    add_owner(db, ADA)
    with console_client(settings, db) as browser:
        yield browser


def test_an_invited_owner_signs_in_from_the_emailed_link(
    client: TestClient, db: Database, settings: Settings
) -> None:
    sent = console_links.invite(db, settings, ADA)
    assert sent.expires_at - utcnow() <= timedelta(minutes=15)
    [email] = emails_to(db, settings, ADA)
    assert "invited" in str(email["Subject"])
    link = emailed_link(db, settings, ADA)

    # Opening the link (as a mail scanner would) signs nobody in.
    page = client.get(path_of(link, settings))
    assert page.status_code == 200 and "Sign in" in page.text
    assert "set-cookie" not in page.headers

    answer = client.post(path_of(link, settings), data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "calsync_console=" in cookie and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Path=/console" in cookie
    assert "Secure" not in cookie  # base_url is http here

    home = client.get("/console/calendars")
    assert home.status_code == 200
    assert "Ada Coach" in home.text and "Sign out" in home.text
    for label in ("Calendars", "Event types", "Bookings", "Email problems"):
        assert f">{label}</a>" in home.text


def test_the_link_is_stored_hashed(client: TestClient, db: Database, settings: Settings) -> None:
    console_links.invite(db, settings, ADA)
    token = emailed_link(db, settings, ADA).rsplit("/", 1)[1]
    with db.reading() as session:
        [row] = session.scalars(select(ConsoleSignInLink)).all()
    assert token not in repr(vars(row)) and row.token_hash == hash_token(token)


def test_a_used_link_is_refused(client: TestClient, db: Database, settings: Settings) -> None:
    console_links.invite(db, settings, ADA)
    link = emailed_link(db, settings, ADA)
    sign_in(client, link, settings)
    with console_client(settings, db) as other:
        again = other.get(path_of(link, settings))
        assert again.status_code == 404 and "does not work" in again.text
        posted = other.post(path_of(link, settings), data={"csrf": "x"})
        assert posted.status_code in (403, 404)
        assert "set-cookie" not in posted.headers
        assert other.get("/console/calendars").status_code == 303


def test_an_expired_link_is_refused(client: TestClient, db: Database, settings: Settings) -> None:
    console_links.invite(db, settings, ADA)
    link = emailed_link(db, settings, ADA)
    page = client.get(path_of(link, settings))
    with db.writing() as session:
        session.execute(
            update(ConsoleSignInLink).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    answer = client.post(path_of(link, settings), data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 404 and "does not work" in answer.text
    assert "set-cookie" not in answer.headers


def test_asking_for_a_link_answers_the_same_for_unknown_addresses(
    client: TestClient, db: Database, settings: Settings
) -> None:
    token = csrf_of(client.get("/console/sign-in").text)
    known = client.post("/console/sign-in", data={"csrf": token, "email": ADA})
    unknown = client.post("/console/sign-in", data={"csrf": token, "email": "eve@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(ADA, "X") == unknown.text.replace("eve@example.org", "X")
    assert len(emails_to(db, settings, ADA)) == 1
    assert emails_to(db, settings, "eve@example.org") == []
    sign_in(client, emailed_link(db, settings, ADA), settings)


def test_asking_for_links_is_rate_limited(settings: Settings, db: Database) -> None:
    add_owner(db, ADA)
    with console_client(settings, db, RateLimits()) as browser:
        token = csrf_of(browser.get("/console/sign-in").text)
        answers = [
            browser.post("/console/sign-in", data={"csrf": token, "email": ADA}).status_code
            for _ in range(5)
        ]
    assert answers[:3] == [200, 200, 200] and answers[3:] == [429, 429]
    assert len(emails_to(db, settings, ADA)) == 3


def test_a_stolen_cookie_stops_working_after_sign_out(
    client: TestClient, db: Database, settings: Settings
) -> None:
    signed_in(client, db, settings, ADA)
    stolen = client.cookies.get("calsync_console")
    assert stolen
    token = form_token(client)
    out = client.post("/console/sign-out", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"].endswith("/console/sign-in?out=1")
    with console_client(settings, db) as thief:
        thief.cookies.set("calsync_console", stolen, path="/console")
        assert thief.get("/console/calendars").status_code == 303
    with db.reading() as session:
        [stored] = session.scalars(select(ConsoleSession)).all()
    assert stored.ended_at is not None and stolen not in stored.token_hash


def test_sessions_end_when_idle_and_at_their_absolute_expiry(
    client: TestClient, db: Database, settings: Settings
) -> None:
    signed_in(client, db, settings, ADA)
    assert client.get("/console/calendars").status_code == 200
    idle = timedelta(minutes=settings.web.console_idle_minutes)
    with db.writing() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - idle))
    assert client.get("/console/calendars").status_code == 303

    signed_in(client, db, settings, ADA)
    with db.writing() as session:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.ended_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get("/console/calendars").status_code == 303


def test_the_cookie_is_secure_behind_https(db: Database, database_url: str) -> None:
    from tests.conftest import make_settings

    settings = make_settings(database_url).model_copy(update={"base_url": "https://book.example"})
    add_owner(db, ADA)
    with console_client(settings, db) as browser:
        console_links.invite(db, settings, ADA)
        link = emailed_link(db, settings, ADA)
        page = browser.get(path_of(link, settings))
        answer = browser.post(path_of(link, settings), data={"csrf": csrf_of(page.text)})
    assert "Secure" in answer.headers["set-cookie"]


def _calendar(db: Database, owner_id: int, name: str) -> int:
    with db.writing() as session:
        row = CalendarConnection(
            owner_id=owner_id,
            provider=ProviderKind.CALDAV,
            url=f"http://cal.example/{name}/",
            display_name=name,
            role=CalendarRole.CONFLICTS,
        )
        session.add(row)
        session.flush()
        return row.id


def test_cross_site_posts_and_forms_without_the_token_are_refused(
    client: TestClient, db: Database, settings: Settings
) -> None:
    signed_in(client, db, settings, ADA)
    ada = db_owner_id(db, ADA)
    calendar_id = _calendar(db, ada, "Work")
    token = form_token(client)
    change = {"csrf": token, "name": "Renamed", "role": "both", "cancel_mode": "mark"}
    path = f"/console/calendars/{calendar_id}/settings"

    foreign = client.post(path, data=change, headers={"Sec-Fetch-Site": "cross-site"})
    assert foreign.status_code == 403
    other_origin = client.post(path, data=change, headers={"Origin": "https://evil.example"})
    assert other_origin.status_code == 403
    no_token = client.post(path, data={**change, "csrf": "forged"})
    assert no_token.status_code == 403
    with db.reading() as session:
        stored = session.get(CalendarConnection, calendar_id)
        assert stored is not None and stored.display_name == "Work"

    ok = client.post(path, data=change)
    assert ok.status_code == 303
    with db.reading() as session:
        stored = session.get(CalendarConnection, calendar_id)
        assert stored is not None and stored.display_name == "Renamed"


def db_owner_id(db: Database, email: str) -> int:
    from calsync.sync import connections as services

    return services.find_owner(db, email).id


def test_owner_a_cannot_see_or_change_owner_b_calendars_or_messages(
    client: TestClient, db: Database, settings: Settings
) -> None:
    add_owner(db, BOB, name="Bob Tutor")
    bob = db_owner_id(db, BOB)
    bobs_calendar = _calendar(db, bob, "Bob's private")
    # A failed email to Bob about no booking (e.g. his own sign-in link).
    console_links.invite(db, settings, BOB)
    with db.writing() as session:
        session.execute(
            update(OutboxMessage).values(status=OutboxStatus.FAILED, last_error="550 no")
        )
        bobs_message = session.scalars(select(OutboxMessage.id)).one()

    signed_in(client, db, settings, ADA)
    token = form_token(client)
    for path in (
        f"/console/calendars/{bobs_calendar}",
        f"/console/calendars/{bobs_calendar}/disconnect",
        "/console/calendars/999999",
        "/console/calendars/not-a-number",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Bob" not in answer.text
    unknown = client.get("/console/calendars/999999").text
    assert client.get(f"/console/calendars/{bobs_calendar}").text == unknown

    for path, data in (
        (
            f"/console/calendars/{bobs_calendar}/settings",
            {"name": "x", "role": "both", "cancel_mode": "delete"},
        ),
        (f"/console/calendars/{bobs_calendar}/disconnect", {}),
        (f"/console/calendars/{bobs_calendar}/sync", {}),
        (f"/console/calendars/{bobs_calendar}/adoption", {"adopt": "off"}),
        (f"/console/email-problems/{bobs_message}/retry", {}),
    ):
        assert client.post(path, data={"csrf": token, **data}).status_code == 404, path
    with db.reading() as session:
        stored = session.get(CalendarConnection, bobs_calendar)
        assert stored is not None and stored.display_name == "Bob's private"
        assert session.get(OutboxMessage, bobs_message).status is OutboxStatus.FAILED  # type: ignore[union-attr]

    problems = client.get("/console/email-problems")
    assert problems.status_code == 200 and BOB not in problems.text
    everything = client.post("/console/email-problems/retry-all", data={"csrf": token})
    assert everything.status_code == 303
    with db.reading() as session:
        assert session.get(OutboxMessage, bobs_message).status is OutboxStatus.FAILED  # type: ignore[union-attr]


def test_an_address_with_underscores_does_not_match_another_owners_emails(
    client: TestClient, db: Database, settings: Settings
) -> None:
    # In SQL LIKE "_" matches any one character: j_doe@x.org must not see jxdoe@x.org's mail.
    add_owner(db, "j_doe@x.org", name="J Doe")
    add_owner(db, "jxdoe@x.org", name="Jx Doe")
    signed_in(client, db, settings, "j_doe@x.org")
    console_links.invite(db, settings, "jxdoe@x.org")
    with db.writing() as session:
        session.execute(update(OutboxMessage).values(status=OutboxStatus.FAILED, last_error="550"))
        others = session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.recipient.contains("jxdoe@x.org"))
        ).one()
    token = form_token(client)
    problems = client.get("/console/email-problems").text
    assert "jxdoe@x.org" not in problems
    answer = client.post(f"/console/email-problems/{others}/retry", data={"csrf": token})
    assert answer.status_code == 404
    client.post("/console/email-problems/retry-all", data={"csrf": token})
    with db.reading() as session:
        assert session.get(OutboxMessage, others).status is OutboxStatus.FAILED  # type: ignore[union-attr]


def test_the_owner_retries_a_failed_email(
    client: TestClient, db: Database, settings: Settings
) -> None:
    signed_in(client, db, settings, ADA)
    with db.writing() as session:
        session.execute(
            update(OutboxMessage).values(
                status=OutboxStatus.FAILED, last_error="550 mailbox unknown"
            )
        )
        message_id = session.scalars(select(OutboxMessage.id)).one()
    page = client.get("/console/email-problems")
    assert "550 mailbox unknown" in page.text and "Send again" in page.text
    answer = client.post(
        f"/console/email-problems/{message_id}/retry", data={"csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 303
    with db.reading() as session:
        assert session.get(OutboxMessage, message_id).status is OutboxStatus.READY  # type: ignore[union-attr]
    assert "Nothing to do here" in client.get("/console/email-problems").text


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    for path in ("/console", "/console/calendars", "/console/email-problems"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert client.post("/console/calendars/1/sync", data={}).status_code == 303


def test_the_access_log_of_a_running_server_does_not_show_sign_in_links(tmp_path: Path) -> None:
    """A real ``calsync web`` process (uvicorn, its own access log) is sent a real sign-in
    link, opened and posted as a browser would; its whole log never holds the token."""
    env = process_env(tmp_path, CALSYNC_LOG_LEVEL="INFO")
    web = WebProcess.start(env, tmp_path)
    try:
        settings = make_settings(env["CALSYNC_DATABASE_URL"])
        db = Database(settings.database_url)
        try:
            add_owner(db, ADA)
            console_links.invite(db, settings, ADA)
            path = path_of(emailed_link(db, settings, ADA), settings)
        finally:
            db.dispose()
        token = path.rsplit("/", 1)[1]
        with httpx.Client(base_url=web.base, follow_redirects=False) as browser:
            page = browser.get(path)
            assert page.status_code == 200 and "Sign in" in page.text
            browser.post(path, data={"csrf": csrf_of(page.text)})
            browser.get(f"{path}?from=mail")
    finally:
        log = web.stop()
    access = [line for line in log.splitlines() if "/console/link/" in line]
    assert len(access) >= 3, log  # the requests were logged...
    assert token not in log and token[:8] not in log  # ...without the token


def test_other_paths_under_the_console_get_its_not_found_page(
    client: TestClient, db: Database, settings: Settings
) -> None:
    signed_in(client, db, settings, ADA)
    answer = client.get("/console/no-such-page")
    assert answer.status_code == 404
    assert "Not found" in answer.text and "Sign out" in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_bookings_event_types_and_their_emails_are_only_their_owners(
    client: TestClient, db: Database, settings: Settings, radicale_calendar: str
) -> None:
    from calsync.access.sessions import SignedInOwner
    from calsync.bookings.event_types import get_event_type
    from calsync.web.console.isolation import NotYours, owned_booking, owned_event_type
    from tests.support.manage_shop import OWNER, Shop
    from tests.support.world import at, next_monday

    shop = Shop(db, settings, radicale_calendar)  # the coach: another owner than Ada
    shop.event_type()
    booked = shop.book(at(next_monday(), 10))
    event_type_id = get_event_type(db, "coaching").id
    with db.writing() as session:
        session.execute(
            update(OutboxMessage).values(status=OutboxStatus.FAILED, last_error="550 no such user")
        )
        coach_messages = session.scalars(select(OutboxMessage.id)).all()
    assert coach_messages

    def as_owner(email: str) -> SignedInOwner:
        owner_id = db_owner_id(db, email)
        return SignedInOwner(owner_id, "", email, "UTC", "", "")

    coach, ada = as_owner(OWNER), as_owner(ADA)
    assert owned_booking(db, coach, booked.id).id == booked.id
    assert owned_event_type(db, coach, str(event_type_id)).id == event_type_id
    for attempt in (
        lambda: owned_booking(db, ada, booked.id),
        lambda: owned_event_type(db, ada, event_type_id),
        lambda: owned_booking(db, ada, "x" * 40),
        lambda: owned_event_type(db, ada, "1e3"),
    ):
        with pytest.raises(NotYours):
            attempt()

    signed_in(client, db, settings, ADA)
    token = form_token(client)
    page = client.get("/console/email-problems").text
    assert "550 no such user" not in page and "zoe@example.org" not in page
    for message_id in coach_messages:
        retried = client.post(f"/console/email-problems/{message_id}/retry", data={"csrf": token})
        assert retried.status_code == 404
    with console_client(settings, db) as coach_browser:
        signed_in(coach_browser, db, settings, OWNER)
        seen = coach_browser.get("/console/email-problems").text
    assert "zoe@example.org" in seen and "550 no such user" in seen


def test_old_links_are_swept_away_when_a_new_one_is_made(
    client: TestClient, db: Database, settings: Settings
) -> None:
    console_links.invite(db, settings, ADA)
    with db.writing() as session:
        session.execute(update(ConsoleSignInLink).values(expires_at=utcnow() - timedelta(days=2)))
    console_links.invite(db, settings, ADA)
    with db.reading() as session:
        [left] = session.scalars(select(ConsoleSignInLink)).all()
    assert left.expires_at > utcnow()
