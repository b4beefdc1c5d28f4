"""Notifications end to end: bookings and changes on a real CalDAV calendar, emails through
the outbox to a real SMTP server (aiosmtpd on loopback), and those emails applied in order to
a fresh calendar, as the customer's calendar app would."""

from __future__ import annotations

import contextlib
import email
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from calsync.bookings import changes
from calsync.bookings.event_types import save_event_type
from calsync.bookings.packages import BookingRequest, book
from calsync.bookings.polling import booking_poller
from calsync.config import MailBackend, MailSettings, Settings, SmtpSecurity
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from calsync.store.models import Actor, CalendarRole, OutboxMessage, OutboxStatus, utcnow
from calsync.sync import connections as services
from tests.conftest import make_settings
from tests.support.itip_client import apply_message, calendar_parts, check_itip, stored_events
from tests.support.servers import ServerProcess, free_port
from tests.support.world import OWNER, at, coaching, next_monday

CUSTOMER = "zoe@example.org"
STAKEHOLDERS = ("parent@example.org", "assistant@example.org")
ZONE = ZoneInfo("Europe/Berlin")


class Inbox:
    def __init__(self) -> None:
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(message)  # type: ignore[arg-type]
        return "250 Accepted"


class MailServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: Settings, mail_server: MailServer) -> Settings:
    mail = MailSettings(
        backend=MailBackend.SMTP,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        smtp_security=SmtpSecurity.NONE,
        from_address="bookings@example.org",
    )
    return settings.model_copy(update={"mail": mail})


def deliver(db: Database, settings: Settings, worker: str = "w1") -> int:
    return outbox.deliver_due(
        db, transport_from_settings(settings.mail), worker, outbox.sealing_box(settings)
    )


def make_due(db: Database) -> None:
    with db.writing() as session:
        session.execute(
            update(OutboxMessage).values(next_attempt_at=datetime(2000, 1, 1, tzinfo=ZONE))
        )


@pytest.fixture
def booked(db: Database, mail_settings: Settings, radicale_server: ServerProcess):
    services.add_owner(db, name="Coach Carter", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db,
        mail_settings,
        services.CalDAVRequest(OWNER, radicale_server.new_calendar(), role=CalendarRole.BOTH),
    )
    save_event_type(
        db,
        coaching(
            booking_calendar_id=calendar.id,
        ),
    )
    mon = next_monday()
    result = book(
        db,
        mail_settings,
        BookingRequest(
            "coaching",
            "Zoë Client",
            CUSTOMER,
            (at(mon, 9), at(mon, 11), at(mon, 13)),
            "America/New_York",
            STAKEHOLDERS,
        ),
    )
    return result


def recipients_of(messages: list[EmailMessage]) -> Counter[str]:
    return Counter(str(m["To"].addresses[0].addr_spec) for m in messages)


def test_booking_reschedule_and_cancel_reach_everyone_once_and_apply_cleanly(
    db: Database,
    mail_settings: Settings,
    mail_server: MailServer,
    radicale_server: ServerProcess,
    booked: Any,
) -> None:
    booking, link = booked.booking, booked.manage_url
    first, second, third = booking.sessions
    mon = next_monday()
    changes.reschedule(
        db,
        mail_settings,
        booking.id,
        {first.id: at(mon + timedelta(days=1), 10), second.id: at(mon + timedelta(days=1), 14)},
        actor=Actor.CUSTOMER,
        reason="Flight moved",
    )
    changes.cancel(db, mail_settings, booking.id, [third.id], actor=Actor.CUSTOMER)
    assert deliver(db, mail_settings) == 12
    assert deliver(db, mail_settings) == 0
    received = mail_server.inbox.received
    everyone = {CUSTOMER, OWNER, *STAKEHOLDERS}
    assert recipients_of(received) == Counter({address: 3 for address in everyone})
    assert len({m["Message-ID"] for m in received}) == 12

    last_sequence: dict[tuple[str, str], int] = {}
    for message in received:
        to = str(message["To"].addresses[0].addr_spec)
        raw = message.as_string()
        assert (link in raw) == (to == CUSTOMER), (
            f"the manage link must reach only the customer ({to})"
        )
        for part in calendar_parts(message):
            checked = check_itip(part.text)
            assert part.mime_method == checked.method
            assert checked.uid in {s.uid for s in booking.sessions}
            if part.attachment:
                continue
            key = (to, checked.uid)
            assert checked.sequence > last_sequence.get(key, -1)
            last_sequence[key] = checked.sequence
            if checked.method == "CANCEL":
                assert checked.status == "CANCELLED"

    # The customer's calendar app applies their three emails in order.
    fresh = radicale_server.new_calendar()
    for message in received:
        if str(message["To"].addresses[0].addr_spec) == CUSTOMER:
            apply_message(fresh, message)
    events = stored_events(fresh)
    assert set(events) == {first.uid, second.uid}
    assert events[first.uid].start == at(mon + timedelta(days=1), 10)
    assert events[second.uid].start == at(mon + timedelta(days=1), 14)


def test_messages_wait_while_the_mail_server_is_down_and_go_out_once(
    db: Database, mail_settings: Settings, mail_server: MailServer, booked: Any
) -> None:
    mail_server.stop()
    assert deliver(db, mail_settings) == 0
    waiting = outbox.list_messages(db, OutboxStatus.READY)
    assert len(waiting) == 4 and all(m.attempts == 1 and m.last_error for m in waiting)
    assert deliver(db, mail_settings) == 0, "not retried before its backoff"
    mail_server.start()
    make_due(db)
    assert deliver(db, mail_settings) == 4
    assert deliver(db, mail_settings) == 0
    assert len(mail_server.inbox.received) == 4
    assert {m.status for m in outbox.list_messages(db)} == {OutboxStatus.SENT}


def test_a_worker_that_dies_mid_delivery_loses_nothing(
    db: Database, mail_settings: Settings, mail_server: MailServer, booked: Any
) -> None:
    claimed = outbox.claim(db, "dead-worker")  # then the process dies: nothing sent, no marks
    assert len(claimed) == 4
    assert deliver(db, mail_settings, "w2") == 0, "leased rows are not taken while the lease runs"
    with db.writing() as session:
        session.execute(update(OutboxMessage).values(lease_until=datetime(2000, 1, 1, tzinfo=ZONE)))
    assert deliver(db, mail_settings, "w2") == 4
    assert recipients_of(mail_server.inbox.received) == Counter(
        {CUSTOMER: 1, OWNER: 1, **{s: 1 for s in STAKEHOLDERS}}
    )


def test_a_dead_workers_message_goes_again_after_the_configured_claim(
    db: Database, mail_settings: Settings, mail_server: MailServer, booked: Any
) -> None:
    claim = timedelta(seconds=mail_settings.mail.claim_seconds)
    assert claim == timedelta(minutes=5)  # the default
    short = timedelta(seconds=30)
    held = outbox.claim(db, "dead-worker", limit=1, lease=short)
    assert len(held) == 1
    box = outbox.sealing_box(mail_settings)
    transport = transport_from_settings(mail_settings.mail)
    assert outbox.deliver_due(db, transport, "w2", box, lease=short) == 3  # not the held one
    later = utcnow() + short + timedelta(seconds=1)
    assert outbox.claim(db, "w2", now=later, lease=short) == held


class ProcessKilled(BaseException):
    """Stands in for SIGKILL (a mock of a fault: a process cannot be killed mid-call in a
    test): nothing of calsync's runs after it, no clean-up, no except clause."""


class DiesOnTheSecondMessage:
    """A real SMTP transport whose worker is killed while handing it the second message."""

    def __init__(self, transport: Any) -> None:
        self.transport, self.sends = transport, 0

    def send(self, message: EmailMessage) -> None:
        self.sends += 1
        if self.sends == 2:
            raise ProcessKilled
        self.transport.send(message)


def test_a_worker_killed_mid_delivery_holds_back_only_the_message_it_was_sending(
    db: Database, mail_settings: Settings, mail_server: MailServer, booked: Any
) -> None:
    """Found by the load test with faults: a worker claimed 20 messages at once for five
    minutes, so killing it delayed every email of the batch it had not reached by that long."""
    dying = DiesOnTheSecondMessage(transport_from_settings(mail_settings.mail))
    with pytest.raises(ProcessKilled):
        outbox.deliver_due(db, dying, "killed", outbox.sealing_box(mail_settings))
    assert len(mail_server.inbox.received) == 1

    assert deliver(db, mail_settings, "w2") == 2, "the others go out at once"
    assert len(mail_server.inbox.received) == 3
    (in_flight,) = outbox.list_messages(db, OutboxStatus.READY)
    assert in_flight.lease_owner == "killed"
    with db.writing() as session:  # its claim runs out
        session.execute(update(OutboxMessage).values(lease_until=datetime(2000, 1, 1, tzinfo=ZONE)))
    assert deliver(db, mail_settings, "w2") == 1
    assert recipients_of(mail_server.inbox.received) == Counter(
        {CUSTOMER: 1, OWNER: 1, **{s: 1 for s in STAKEHOLDERS}}
    )


def test_an_owner_move_in_their_calendar_tells_the_customer_not_the_owner(
    db: Database,
    mail_settings: Settings,
    mail_server: MailServer,
    radicale_server: ServerProcess,
    booked: Any,
) -> None:
    from calsync.calendars.caldav.provider import CalDAVProvider
    from calsync.calendars.ical.event_edit import with_times
    from calsync.store.models import CalendarConnection

    deliver(db, mail_settings)
    mail_server.inbox.received.clear()
    booking = booked.booking
    first = booking.sessions[0]
    with db.reading() as session:
        url = session.get(CalendarConnection, first.connection_id).url
    provider = CalDAVProvider(url)
    item = provider.get(first.href)
    new_start = first.start + timedelta(days=1)
    moved = with_times(
        item.data,
        uid=first.uid,
        start=new_start,
        end=new_start + timedelta(hours=1),
        timezone="Europe/Berlin",
        sequence=0,
        now=datetime.now(ZONE),
    )
    provider.update(first.href, moved, item.etag)  # the owner's app keeps SEQUENCE as it was
    provider.close()
    booking_poller(db, mail_settings).sync_now([first.connection_id])
    assert deliver(db, mail_settings) == 3
    assert recipients_of(mail_server.inbox.received) == Counter(
        {CUSTOMER: 1, **{s: 1 for s in STAKEHOLDERS}}
    )
    (to_customer,) = [
        m for m in mail_server.inbox.received if m["To"].addresses[0].addr_spec == CUSTOMER
    ]
    (part,) = [p for p in calendar_parts(to_customer) if not p.attachment]
    checked = check_itip(part.text)
    assert (checked.uid, checked.sequence, checked.start) == (first.uid, 1, new_start)

    # With the setting off, the owner's own moves are not announced.
    quiet = mail_settings.model_copy(
        update={
            "mail": mail_settings.mail.model_copy(update={"notify_owner_calendar_changes": False})
        }
    )
    provider = CalDAVProvider(url)
    item = provider.get(first.href)
    later = new_start + timedelta(hours=2)
    provider.update(
        first.href,
        with_times(
            item.data,
            uid=first.uid,
            start=later,
            end=later + timedelta(hours=1),
            timezone="Europe/Berlin",
            sequence=0,
            now=datetime.now(ZONE),
        ),
        item.etag,
    )
    provider.close()
    booking_poller(db, quiet).sync_now([first.connection_id])
    assert deliver(db, quiet) == 0


class KillsTheRecordingOfTheFirstDelivery:
    """A real SMTP transport, plus a real database failure right after the first delivery:
    another connection locks that message's row, so calsync's delivered-at UPDATE waits on
    it, and that waiting backend is terminated with pg_terminate_backend (as a PostgreSQL
    restart would). Nothing is mocked; this only decides when the failure happens."""

    def __init__(self, transport: Any, conninfo: str) -> None:
        self.transport = transport
        self.conninfo = conninfo
        self.sends = 0
        self.killer: threading.Thread | None = None

    def send(self, message: EmailMessage) -> None:
        self.transport.send(message)
        self.sends += 1
        if self.sends == 1:
            locker = psycopg.connect(self.conninfo)
            locker.execute(
                "SELECT 1 FROM outbox WHERE message_id = %s FOR UPDATE",
                (str(message["Message-ID"]),),
            )
            self.killer = threading.Thread(target=self._kill_waiting_backend, args=(locker,))
            self.killer.start()

    def _kill_waiting_backend(self, locker: psycopg.Connection) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as admin:
            for _ in range(600):
                row = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()
                if row is not None:
                    break
                time.sleep(0.05)
        locker.rollback()
        locker.close()


@pytest.mark.postgres
def test_a_database_failure_mid_batch_sends_nothing_twice_and_keeps_nothing_waiting(
    postgres_url: str, mail_server: MailServer
) -> None:
    """Issue 17, item 9: the batch kept its 5-minute claim, and after a PostgreSQL restart a
    message that had gone out before the failure went out again once the claim expired."""
    settings = make_settings(postgres_url)
    database = Database(postgres_url)
    database.migrate()
    try:
        mail = MailSettings(
            backend=MailBackend.SMTP,
            smtp_host="127.0.0.1",
            smtp_port=mail_server.port,
            smtp_security=SmtpSecurity.NONE,
            from_address="bookings@example.org",
        )
        settings = settings.model_copy(update={"mail": mail})
        with database.writing() as session:
            messages = []
            for number in range(3):
                message = EmailMessage()
                message["From"], message["To"] = "bookings@example.org", OWNER
                message["Subject"] = f"Message {number}"
                message["Message-ID"] = f"<m{number}@calsync.test>"
                message.set_content("Hello")
                messages.append(("owner", message))
            outbox.enqueue(
                session, messages, booking_id=None, box=outbox.sealing_box(settings), held=False
            )
        conninfo = make_url(postgres_url).set(drivername="postgresql")
        faulty = KillsTheRecordingOfTheFirstDelivery(
            transport_from_settings(settings.mail), conninfo.render_as_string(hide_password=False)
        )
        # The failing round raises on the old code; what matters is what happens next.
        with contextlib.suppress(DBAPIError):
            outbox.deliver_due(database, faulty, "w1", outbox.sealing_box(settings))
        assert faulty.killer is not None
        faulty.killer.join()

        # The next round goes on at once: nothing waits for the failed round's claim.
        deliver(database, settings)
        sent = [str(m["Message-ID"]) for m in mail_server.inbox.received]
        assert sorted(sent) == ["<m0@calsync.test>", "<m1@calsync.test>", "<m2@calsync.test>"]
        with database.reading() as session:
            rows = session.scalars(select(OutboxMessage)).all()
            assert {row.status for row in rows} == {OutboxStatus.SENT}

        # Once any claim would have expired, nothing goes out a second time.
        with database.writing() as session:
            session.execute(
                update(OutboxMessage).values(lease_until=datetime(2000, 1, 1, tzinfo=ZONE))
            )
        deliver(database, settings)
        assert len(mail_server.inbox.received) == 3
    finally:
        database.dispose()
