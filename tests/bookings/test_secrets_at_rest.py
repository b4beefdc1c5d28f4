"""Manage links and installations: no working link in a database dump or an error log, and
Message-IDs that no other installation can make.

The booking's link goes through every place it can be kept: the real Radicale event (read
back by a poll into the mirror), the confirmation email sent through a real SMTP server
(aiosmtpd), a reschedule and its emails. Then every table is read whole, with folded iCalendar
lines unfolded and every email decoded, and the token must be nowhere.
"""

from __future__ import annotations

import email
import logging
import re
import shutil
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, insert, select, update
from sqlalchemy.engine import make_url

from calsync.bookings import changes
from calsync.calendars.ical.event_edit import link_of
from calsync.config import MailBackend, MailSettings, Settings, SmtpSecurity
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import MIGRATIONS, Database
from calsync.store.models import Actor, BookedSession, MirroredEvent, OutboxMessage, OutboxStatus
from calsync.sync.poller import Poller
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.conftest import SECRET_KEY, make_settings
from tests.notify.test_outbox import MailServer
from tests.support.manage_shop import Booked, Shop, post_form
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SAME_SITE = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


def with_smtp(settings: Settings, server: MailServer) -> Settings:
    mail = MailSettings(
        backend=MailBackend.SMTP,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security=SmtpSecurity.NONE,
        from_address="bookings@example.org",
    )
    return settings.model_copy(update={"mail": mail})


def deliver(db: Database, settings: Settings) -> int:
    return outbox.deliver_due(
        db, transport_from_settings(settings.mail), "w1", outbox.sealing_box(settings)
    )


def _unfold(text: str) -> str:
    # iCalendar folding (CRLF + space) and quoted-printable soft breaks can split a token.
    return re.sub(r"=\r?\n|\r?\n[ \t]", "", text)


def readable(value: object) -> str:
    """What a person holding the database could read in one cell: the text itself, unfolded,
    and for an email every part decoded (base64, quoted-printable)."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        views = [raw.decode("utf-8", "replace")]
        message = email.message_from_bytes(raw, policy=policy.default)
        for part in message.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                views.append(payload.decode("utf-8", "replace"))
        return _unfold("\n".join(views))
    return _unfold(str(value))


def dump(db: Database) -> str:
    """Every row of every table, as text."""
    metadata = MetaData()
    metadata.reflect(db.engine)
    cells = []
    with db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                cells += [f"{table.name}: {readable(value)}" for value in row]
    return "\n".join(cells)


def test_no_working_manage_link_is_kept_in_the_database(
    db: Database,
    settings: Settings,
    mail_server: MailServer,
    radicale_server: ServerProcess,
    radicale_calendar: str,
) -> None:
    settings = with_smtp(settings, mail_server)
    shop = Shop(db, settings, radicale_calendar)
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    url = f"{settings.base_url}{booked.path}"
    Poller(db, settings).sync_now([shop.calendar_id])  # the events, link and all, come back
    waiting = outbox.list_messages(db, OutboxStatus.READY)
    assert len(waiting) == 2 and booked.token not in dump(db), "emails wait encrypted"
    assert deliver(db, settings) == 2  # customer and owner

    (to_customer,) = [m for m in mail_server.inbox.received if "zoe@" in str(m["To"])]
    assert url in readable(to_customer.as_bytes()), "the customer gets a working link"
    changes.reschedule(
        db,
        settings,
        booked.id,
        {booked.session_ids[0]: at(monday + timedelta(days=1), 10)},
        actor=Actor.CUSTOMER,
    )
    Poller(db, settings).sync_now([shop.calendar_id])
    assert deliver(db, settings) == 2
    assert all(
        url in readable(m.as_bytes()) for m in mail_server.inbox.received if "zoe@" in str(m["To"])
    )
    assert booked.token in "".join(readable(e.data) for e in _server_items(radicale_calendar))

    everything = dump(db)
    assert booked.token not in everything
    assert url not in everything

    # What the owner's side reads from the mirror still sees calsync's link in each event.
    with db.reading() as session:
        mirrored = session.execute(
            select(MirroredEvent.data)
            .join(BookedSession, BookedSession.href == MirroredEvent.href)
            .where(BookedSession.booking_id == booked.id)
        ).scalars()
        found = [link_of(data) for data in mirrored]
    assert len(found) == 2 and all(f is not None and f[0] == booked.id for f in found)
    # The history still says who was written to, about what, when, under which Message-ID.
    sent = outbox.list_messages(db, OutboxStatus.SENT)
    assert len(sent) == 4
    assert all(m.recipient and m.subject and m.message_id and m.sent_at for m in sent)
    assert {m.message_id for m in sent} == {
        str(m["Message-ID"]) for m in mail_server.inbox.received
    }


def _server_items(calendar_url: str) -> list:  # type: ignore[type-arg]
    from calsync.calendars.caldav.provider import CalDAVProvider

    provider = CalDAVProvider(calendar_url)
    try:
        return list(provider.changes(None, {}).upserted)
    finally:
        provider.close()


def test_the_upgrade_redacts_links_already_stored(database_url: str) -> None:
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    command.upgrade(config, "0006")
    token = "mIImfjfL0123456789abcdefghij_-XY"
    url = f"https://book.example.org/m/{token}"
    # As a client stores it: the description folded in the middle of the token.
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//x//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20270101T100000Z\r\nDTEND:20270101T110000Z\r\n"
        "DESCRIPTION:Session 1 of 1\\n\\n-- Cancel or reschedule (calsync) --\\nhttps://book.exa\r\n"
        f" mple.org/m/{token[:10]}\r\n {token[10:]}\\n-- end calsync --\r\n"
        f"URL:{url}\r\nX-CALSYNC-BOOKING:b1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO owners (id, name, email, timezone, created_at) "
            "VALUES (1, 'O', 'o@example.org', 'UTC', '2026-01-01 00:00:00')"
        )
        connection.exec_driver_sql(
            "INSERT INTO calendar_connections (id, owner_id, provider, url, display_name, role, "
            "all_day, adopt, cancel_mode, status, failures, next_poll_at, created_at) VALUES "
            "(1, 1, 'caldav', 'http://x/', '', 'both', 'follow_transp', 'off', 'mark', 'ok', 0, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        connection.execute(
            insert(MirroredEvent.__table__).values(
                connection_id=1,
                href="/e.ics",
                etag='"1"',
                uid="u1",
                data=event,
                updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        for status in ("sent", "dropped"):
            connection.execute(
                insert(OutboxMessage.__table__).values(
                    recipient="zoe@example.org",
                    role="customer",
                    subject="Booked",
                    message_id=f"<{status}@example.org>",
                    raw=f"To: zoe\r\n\r\n{url}\r\n".encode(),
                    status=status,
                    attempts=0,
                    next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC),
                    created_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )
    assert token in readable(event)
    db.migrate()
    everything = dump(db)
    assert token not in everything and token[:10] not in everything
    with db.reading() as session:
        (data,) = session.scalars(select(MirroredEvent.data))
        rows = session.scalars(select(OutboxMessage)).all()
    assert link_of(data) is not None and "Session 1 of 1" in readable(data)
    assert sorted((r.message_id, r.subject) for r in rows) == [
        ("<dropped@example.org>", "Booked"),
        ("<sent@example.org>", "Booked"),
    ]
    db.dispose()


# -- item 5: the error log ----------------------------------------------------------------------


def break_database(db: Database, database_url: str) -> None:
    """Make the database really unusable: PostgreSQL refuses connections and ends the open
    ones; SQLite's file is replaced by a directory (as if the disk lost it)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db.engine.dispose()
        path = Path(str(url.database))
        shutil.move(path, path.with_suffix(".gone"))
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        path.mkdir()
        return
    admin = url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (url.database,),
        )


def test_a_database_outage_during_a_manage_post_logs_no_token(
    db: Database,
    settings: Settings,
    database_url: str,
    radicale_server: ServerProcess,
    radicale_calendar: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = Shop(db, settings, radicale_calendar)
    shop.event_type()
    booked: Booked = shop.book(at(next_monday(), 9))
    app = create_app(settings, db=db, manage_limits=RateLimits.off())
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        confirm = client.get(
            f"{booked.path}/cancel/review", params={"session": booked.session_ids[0]}
        )
        assert confirm.status_code == 200, confirm.text
        form = post_form(confirm.text)
        break_database(db, database_url)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            answer = client.post(
                form.action,
                content=urlencode(form.values()),
                headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
            )
    assert answer.status_code == 503
    assert booked.token not in answer.text
    # httpx's own lines are the test client's (the customer's browser), not the server's.
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    lines = [record.getMessage() for record in records]
    assert any("database unavailable" in line and "/cancel" in line for line in lines), lines
    assert not [line for line in lines if booked.token in line]
    assert not [r for r in records if booked.token in str(r.msg) + str(r.args)]


# -- item 6: Message-IDs ------------------------------------------------------------------------


def test_two_installations_never_share_a_message_id_and_a_retry_keeps_its_own(
    tmp_path: Path, mail_server: MailServer, radicale_server: ServerProcess
) -> None:
    seen: list[set[str]] = []
    for number in (1, 2):
        base = make_settings(f"sqlite:///{tmp_path}/install-{number}.db")
        settings = with_smtp(
            base.model_copy(update={"secret_key": f"{SECRET_KEY}-installation-{number}"}),
            mail_server,
        )
        db = Database(settings.database_url)
        db.migrate()
        shop = Shop(db, settings, radicale_server.new_calendar())
        shop.event_type()
        monday = next_monday()
        booked = shop.book(at(monday, 9))
        # The same change ids in both installations: change 1 moves session 1.
        outcome = changes.reschedule(
            db,
            settings,
            booked.id,
            {booked.session_ids[0]: at(monday, 14)},
            actor=Actor.CUSTOMER,
        )
        assert outcome.change.id == 1
        seen.append({m.message_id for m in outbox.list_messages(db)})

        # A retry sends the same row under its own Message-ID.
        mail_server.stop()
        assert deliver(db, settings) == 0
        waiting = outbox.list_messages(db, OutboxStatus.READY)
        assert waiting and all(m.attempts == 1 for m in waiting)
        mail_server.start()
        with db.writing() as session:
            session.execute(
                update(OutboxMessage).values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
        mail_server.inbox.received.clear()
        assert deliver(db, settings) == len(waiting)
        assert sorted(str(m["Message-ID"]) for m in mail_server.inbox.received) == sorted(
            m.message_id for m in waiting
        )
        db.dispose()
    assert len(seen[0]) == len(seen[1]) == 4
    assert not seen[0] & seen[1]


def test_redaction_rewrites_only_the_lines_that_hold_a_token() -> None:
    from calsync.calendars.ical.event_edit import redact_link_tokens

    token = "Zx9_-abcdefghijklmnopqrstuvwxyz0"
    owner_line = "X-OWNER-NOTE:see https://other.example.com/m/short and keep this\r\n"
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        "DESCRIPTION:My notes\\, kept.\\n\\n-- Cancel or reschedule (calsync) --\\nhttps:/\r\n"
        f" /book.example.org/m/{token[:5]}\r\n\t{token[5:]}\\n-- end calsync --\r\n"
        + owner_line
        + f'X-ALT-DESC:<a href="https://x.example/r?u=https%3A%2F%2Fb.example%2Fm%2F{token}">\r\n'
        f"URL;VALUE=URI:https://old-host.example.org/m/{token}\r\n"
        "X-CALSYNC-BOOKING:b1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    redacted = redact_link_tokens(event)
    assert token[5:] not in redacted and token not in readable(redacted)
    assert owner_line in redacted and redacted.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert "URL;VALUE=URI:https://old-host.example.org/m/redacted\r\n" in redacted
    assert '%2Fm%2Fredacted">' in readable(redacted)  # folded, being long
    assert link_of(redacted) == ("b1", "https://book.example.org/m/redacted")
    assert redact_link_tokens(redacted) == redacted
    assert redact_link_tokens("no calendar at all") == "no calendar at all"
    assert redact_link_tokens(f"broken /m/{token}") == "broken /m/redacted"


def test_a_message_sealed_under_another_secret_key_fails_plainly(
    db: Database, settings: Settings, mail_server: MailServer
) -> None:
    from email.message import EmailMessage

    settings = with_smtp(settings, mail_server)
    message = EmailMessage()
    message["To"], message["Subject"] = "owner@example.org", "Reconnect"
    message["Message-ID"] = "<m1@example.org>"
    message.set_content(f"{settings.base_url}/m/{'T' * 32}")
    with db.writing() as session:
        outbox.enqueue(
            session,
            [("owner", message)],
            booking_id=None,
            box=outbox.sealing_box(settings),
            held=False,
        )
    changed = settings.model_copy(update={"secret_key": f"{SECRET_KEY}-replaced"})
    assert deliver(db, changed) == 0
    (row,) = outbox.list_messages(db)
    assert row.status is OutboxStatus.FAILED and "secret_key" in (row.last_error or "")
    assert mail_server.inbox.received == []
    # With the key back, `outbox retry` sends it.
    assert outbox.retry(db) == 1 and deliver(db, settings) == 1
    assert str(mail_server.inbox.received[0]["Message-ID"]) == "<m1@example.org>"
