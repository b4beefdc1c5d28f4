"""Load held with faults: 3 ``calsync worker`` and 2 ``calsync web`` processes on PostgreSQL,
under a bounded load of polls, bookings and reschedules, while one worker is killed with
SIGKILL, PostgreSQL is restarted and a CalDAV server is down for 30 seconds.

Everything is real: a PostgreSQL cluster of the test's own (tests/support/own_postgres.py: the
machine's shared server is never restarted), Radicale and Xandikos started for this test on
their own storage, an aiosmtpd server capturing every email, and the processes as an operator
runs them. Afterwards the test asks what an operator would:

- does every calendar's mirror hold exactly what its server holds?
- was every booking and every change applied once: each session's event on the server at its
  new time, once, with SEQUENCE counting its moves, and no stray events?
- was every email sent, and sent once?
- is any calendar still leased to the dead worker?
- did every surviving process get through by itself: still running, /healthz answering, polls
  (workers) and requests (web) served after the database came back?
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import icalendar
import pytest
from sqlalchemy import select

from calsync.bookings.event_types import EventTypeSpec, save_event_type
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.policy.hours import parse_weekly_hours
from calsync.store.db import Database
from calsync.store.models import (
    BookedSession,
    Booking,
    BookingStatus,
    CalendarConnection,
    CalendarRole,
    Change,
    ChangeStatus,
    EventType,
    MirroredEvent,
    OutboxMessage,
    OutboxStatus,
    SyncOutcome,
    SyncRun,
)
from calsync.sync import connections as services
from tests.conftest import SECRET_KEY, make_settings
from tests.support.mail import SmtpCapture
from tests.support.manage_shop import post_form
from tests.support.own_postgres import OwnPostgres
from tests.support.servers import ServerProcess, _radicale, _xandikos, put_event
from tests.support.web_process import ADMIN_KEY, WebProcess

# The load, the 30 s outage and settling take 2–4 minutes on 2 busy cores; the default 300 s
# would cut a slow but healthy run short.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

BASE_URL = "http://127.0.0.1:8000"  # what links are built from; requests go to each process
SAME_SITE = {"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
OUTAGE = 30.0  # seconds the CalDAV server is down
LOAD_UNTIL = 55.0  # the owners edit their calendars this many seconds
GIVE_UP = 180.0  # an operation still failing this long after the load began fails the test
SETTLE = 120.0  # how long everything may take to settle once the load is over
CLAIM_SECONDS = 30  # mail.claim_seconds: the outbox's hold on a message being sent
ALWAYS = parse_weekly_hours(["mon-sun 00:00-24:00"])


# -- processes ------------------------------------------------------------------------------------


class Workers:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.cwd / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "calsync", "worker"],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> list[int | None]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=20))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(None)
        return codes


def worker_tag(process: subprocess.Popen[bytes]) -> str:
    """What a worker's id holds of its process (``host:pid:random``)."""
    return f":{process.pid}:"


# -- the world ------------------------------------------------------------------------------------


@dataclass
class Calendar:
    id: int
    url: str
    server: ServerProcess


@dataclass
class Owner:
    email: str
    slug: str
    booking: Calendar


@dataclass
class Plan:
    """One customer's booking and the move asked for it; what the load did is filled in."""

    owner: Owner
    customer: str
    starts: list[datetime]
    moves: list[datetime]  # one new start per session, in order
    by_customer: bool  # moved through the manage page (else: the owner, through the API)
    booking_id: str | None = None
    manage_path: str | None = None
    session_ids: list[int] = field(default_factory=list)
    moved: bool = False


def event(uid: str, start: datetime, summary: str = "Busy") -> str:
    end = start + timedelta(minutes=45)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//owner app//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def server_items(url: str) -> dict[str, str]:
    """href → ETag of everything the server holds in the calendar."""
    provider = CalDAVProvider(url)
    try:
        delta = provider.changes(None, {})
    finally:
        provider.close()
    return {item.href: item.etag for item in delta.upserted}


def server_events(url: str) -> list[icalendar.Event]:
    provider = CalDAVProvider(url)
    try:
        delta = provider.changes(None, {})
    finally:
        provider.close()
    found = []
    for item in delta.upserted:
        found += icalendar.Calendar.from_ical(item.data).walk("VEVENT")
    return found


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- the load -------------------------------------------------------------------------------------


class Load:
    """Bookings and moves through the two web processes, and the owners' own edits on the
    calendars, at a bounded pace. Every operation is retried until it succeeds (a fault makes
    some fail on the way), with the same idempotency key or form, so a retry can never make a
    change twice; a booking whose answer was lost is looked up by its customer."""

    def __init__(self, webs: list[WebProcess], plans: list[Plan], began: float) -> None:
        self.webs, self.plans, self.began = webs, plans, began
        self.errors: list[str] = []
        self.failures: Counter[str] = Counter()  # what the faults made fail on the way
        self.served_after: dict[int, float] = {}  # web index → last success (load clock)
        self.reads = 0
        self._next = 0
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def _client(self) -> tuple[int, httpx.Client, str]:
        with self._lock:
            index = self._next % len(self.webs)
            self._next += 1
        base = self.webs[index].base
        return index, httpx.Client(base_url=base, timeout=20, follow_redirects=False), base

    def _served(self, index: int) -> None:
        with self._lock:
            self.served_after[index] = self.elapsed()

    def _retry(self, what: str, attempt: Callable[[], bool]) -> None:
        while True:
            try:
                if attempt():
                    return
            except httpx.HTTPError as exc:
                self.failures[f"{what}: {type(exc).__name__}"] += 1
            if self.elapsed() > GIVE_UP:
                raise AssertionError(f"{what} still failing after {GIVE_UP} s")
            time.sleep(1)

    def book(self, plan: Plan) -> None:
        body = {
            "event_type": plan.owner.slug,
            "customer_name": "Customer",
            "customer_email": plan.customer,
            "customer_timezone": "UTC",
            "starts": [s.isoformat() for s in plan.starts],
        }

        def attempt() -> bool:
            index, client, _ = self._client()
            with client:
                # An earlier attempt may have booked and lost its answer: the customer's
                # booking is then there already.
                found = client.get(
                    "/api/bookings", params={"customer": plan.customer}, headers=ADMIN
                )
                if found.status_code != 200:
                    self.failures[f"booking lookup: {found.status_code}"] += 1
                    return False
                active = [b for b in found.json() if b["status"] == BookingStatus.ACTIVE.value]
                if active:
                    (booking,) = active
                else:
                    answer = client.post("/api/bookings", json=body, headers=ADMIN)
                    if answer.status_code != 201:
                        self.failures[f"booking: {answer.status_code}"] += 1
                        if answer.status_code == 422:
                            self.errors.append(f"booking refused: {answer.text}")
                            return True
                        return False
                    booking = answer.json()
            self._served(index)
            plan.booking_id = booking["id"]
            plan.manage_path = urlsplit(booking["manage_url"]).path
            plan.session_ids = [
                s["id"] for s in sorted(booking["sessions"], key=lambda s: s["position"])
            ]
            return True

        self._retry(f"booking for {plan.customer}", attempt)

    def move_as_owner(self, plan: Plan) -> None:
        body = {
            "moves": [
                {"session_id": sid, "start": start.isoformat()}
                for sid, start in zip(plan.session_ids, plan.moves, strict=True)
            ],
            "idempotency_key": f"move-{plan.customer}",
        }

        def attempt() -> bool:
            index, client, _ = self._client()
            with client:
                answer = client.post(
                    f"/api/bookings/{plan.booking_id}/reschedule", json=body, headers=ADMIN
                )
            if answer.status_code != 200:
                self.failures[f"owner move: {answer.status_code}"] += 1
                if answer.status_code == 422:
                    self.errors.append(f"owner move refused: {answer.text}")
                    return True
                return False
            self._served(index)
            plan.moved = True
            return True

        self._retry(f"owner move of {plan.customer}", attempt)

    def move_as_customer(self, plan: Plan) -> None:
        assert plan.manage_path
        params = [("session", str(sid)) for sid in plan.session_ids] + [
            (f"start-{sid}", start.isoformat())
            for sid, start in zip(plan.session_ids, plan.moves, strict=True)
        ]
        form: list[tuple[str, str]] | None = None
        action = ""

        def attempt() -> bool:
            nonlocal form, action
            index, client, _ = self._client()
            with client:
                if form is None:
                    # The confirm step, as the times page's form would reach it.
                    confirm = client.get(f"{plan.manage_path}/reschedule/review", params=params)
                    if confirm.status_code != 200:
                        self.failures[f"customer review: {confirm.status_code}"] += 1
                        return False
                    page_form = post_form(confirm.text)
                    form, action = page_form.values(), page_form.action
                # The same form again after a failure: it carries its idempotency key.
                done = client.post(
                    action,
                    content=urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
                )
            if done.status_code != 303:
                self.failures[f"customer move: {done.status_code}"] += 1
                return False
            self._served(index)
            plan.moved = True
            return True

        self._retry(f"customer move of {plan.customer}", attempt)

    def run_customers(self, plans: list[Plan], pace: float) -> None:
        """Book each plan, then move each: a bounded amount of work, however long it takes."""
        try:
            for plan in plans:
                self.book(plan)
                time.sleep(pace)
            for plan in plans:
                (self.move_as_customer if plan.by_customer else self.move_as_owner)(plan)
                time.sleep(pace)
        except Exception as exc:  # reported by the test, with the rest
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def browse(self, event_type_ids: list[int], stop: threading.Event) -> None:
        """Customers looking at free times, on both processes, all along."""
        day = datetime.now(UTC).date() + timedelta(days=3)
        params = {"start": day.isoformat(), "end": (day + timedelta(days=7)).isoformat()}
        while not stop.is_set() and self.elapsed() < LOAD_UNTIL:
            for event_type_id in event_type_ids:
                index, client, _ = self._client()
                try:
                    with client:
                        answer = client.get(
                            f"/api/event-types/{event_type_id}/availability",
                            params=params,
                            headers=ADMIN,
                        )
                except httpx.HTTPError as exc:
                    self.failures[f"availability: {type(exc).__name__}"] += 1
                    continue
                if answer.status_code == 200:
                    self.reads += 1
                    self._served(index)
                else:
                    self.failures[f"availability: {answer.status_code}"] += 1
            stop.wait(0.2)


class OwnerEdits:
    """The owners' own calendar app adding and changing events behind calsync's back, on
    whichever server is up, so the mirror always has something new to catch up with."""

    def __init__(self, calendars: list[Calendar], began: float) -> None:
        self.calendars, self.began = calendars, began
        self.written = 0
        self.errors: list[str] = []
        self._stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(14)
        day = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
        try:
            while not self._stop.is_set() and time.monotonic() - self.began < LOAD_UNTIL:
                calendar = rng.choice(self.calendars)
                if calendar.server.running:
                    uid = f"edit-{rng.randrange(12)}"  # some new, some changed again
                    start = day + timedelta(days=rng.randrange(1, 40), minutes=rng.randrange(60))
                    try:
                        put_event(calendar.url, event(uid, start, "Owner's own"))
                        self.written += 1
                    except OSError:
                        pass  # the server went down between the check and the write
                self._stop.wait(0.5)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()


# -- fixtures -------------------------------------------------------------------------------------


def _private_server(make: Callable[[], ServerProcess]) -> Iterator[ServerProcess]:
    server = make()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[ServerProcess]:
    """A Radicale of this test's own (the shared one must not see its outage)."""
    workdir = tmp_path / "radicale"
    workdir.mkdir()
    yield from _private_server(lambda: _radicale(workdir))


@pytest.fixture
def xandikos(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "xandikos"
    workdir.mkdir()
    yield from _private_server(lambda: _xandikos(workdir))


def add_calendar(
    db: Database, owner: str, server: ServerProcess, role: CalendarRole, events: int = 0
) -> Calendar:
    url = server.new_calendar()
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    for n in range(events):
        put_event(url, event(f"seed-{n}", day + timedelta(days=n + 1)))
    (connection,) = services.add_caldav_calendar(
        db,
        make_settings(db.url),
        services.CalDAVRequest(owner, url, role=role),
    )
    return Calendar(connection.id, url, server)


# -- the test -------------------------------------------------------------------------------------


def test_load_held_through_a_killed_worker_a_database_restart_and_a_calendar_outage(
    own_postgres: OwnPostgres,
    radicale: ServerProcess,
    xandikos: ServerProcess,
    smtp_capture: SmtpCapture,
    tmp_path: Path,
) -> None:
    db = Database(own_postgres.url)
    db.migrate()
    calendars: list[Calendar] = []
    owners: list[Owner] = []
    # Ana books into Radicale and checks a Xandikos calendar for conflicts: while Xandikos is
    # down her bookings must wait. Ben books into Xandikos and checks Radicale: while Xandikos
    # is down his customers' moves are recorded and applied when it is back.
    for name, book_on, check_on, role in (
        ("ana", radicale, xandikos, CalendarRole.BOTH),
        ("ben", xandikos, radicale, CalendarRole.BOOKINGS),
    ):
        email = f"{name}@example.org"
        services.add_owner(db, name=name.title(), email=email, timezone="UTC")
        booking = add_calendar(db, email, book_on, role, events=2)
        conflicts = add_calendar(db, email, check_on, CalendarRole.CONFLICTS, events=3)
        calendars += [booking, conflicts]
        save_event_type(
            db,
            EventTypeSpec(
                owner_email=email,
                slug=f"{name}-talk",
                title="Talk",
                duration=timedelta(minutes=30),
                timezone="UTC",
                weekly_hours=ALWAYS,
                booking_calendar_id=booking.id,
                # Ben's bookings calendar is no conflict calendar: while it is down his
                # customers can still ask, and their moves wait for it.
                conflict_calendar_ids=(
                    (booking.id, conflicts.id) if role is CalendarRole.BOTH else (conflicts.id,)
                ),
            ),
        )
        owners.append(Owner(email, f"{name}-talk", booking))
    # Calendars that are only polled, two on each server.
    services.add_owner(db, name="Cy", email="cy@example.org", timezone="UTC")
    polled_only = [
        add_calendar(db, "cy@example.org", server, CalendarRole.CONFLICTS, events=4)
        for server in (radicale, radicale, xandikos, xandikos)
    ]
    calendars += polled_only

    env = (
        os.environ
        | {
            "CALSYNC_DATABASE_URL": own_postgres.url,
            "CALSYNC_SECRET_KEY": SECRET_KEY,
            "CALSYNC_ADMIN_API_KEY": ADMIN_KEY,
            "CALSYNC_BASE_URL": BASE_URL,
            "CALSYNC_SYNC__POLL_INTERVAL_SECONDS": "2",
            "CALSYNC_SYNC__POLL_JITTER_SECONDS": "0.3",
            "CALSYNC_SYNC__TICK_SECONDS": "0.5",
            "CALSYNC_SYNC__LEASE_SECONDS": "5",
            "CALSYNC_SYNC__REQUEST_TIMEOUT_SECONDS": "5",
            "CALSYNC_SYNC__MAX_BACKOFF_SECONDS": "3",
            "CALSYNC_WEB__MANAGE_READS_PER_MINUTE": "100000",
            "CALSYNC_WEB__MANAGE_CHANGES_PER_MINUTE": "100000",
            # A message the killed worker was sending goes again after this long.
            "CALSYNC_MAIL__CLAIM_SECONDS": str(CLAIM_SECONDS),
        }
        | smtp_capture.env()
    )
    workers = Workers(env, tmp_path)
    webs: list[WebProcess] = []
    try:
        for _ in range(3):
            workers.start()
        webs = [WebProcess.start(env, tmp_path, name=f"web-{n}", timeout=120) for n in range(2)]

        def all_synced() -> bool:
            with db.reading() as session:
                rows = session.scalars(select(CalendarConnection)).all()
                return all(row.last_success_at is not None for row in rows)

        wait_for(all_synced, 120, "every calendar's first sync")

        # Every customer books one or two half-hour sessions on days of their own, then has
        # them moved to other times of those days: by the owner (API) or themselves (page).
        first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        plans = []
        for owner in owners:
            for n in range(8):
                day = first_day + timedelta(days=3 + n)
                starts = [day + timedelta(hours=10)]
                moves = [day + timedelta(hours=12)]
                if n % 3 == 0:  # a package of two sessions
                    starts.append(day + timedelta(hours=14))
                    moves.append(day + timedelta(hours=16, minutes=30))
                plans.append(
                    Plan(
                        owner,
                        f"customer-{owner.slug}-{n}-{uuid.uuid4().hex[:4]}@example.org",
                        starts,
                        moves,
                        by_customer=n % 2 == 1,
                    )
                )

        began = time.monotonic()
        load = Load(webs, plans, began)
        edits = OwnerEdits(polled_only, began)
        browsing = threading.Event()
        with db.reading() as session:
            event_type_ids = list(session.scalars(select(EventType.id)))
        # Two customers' queues per owner, so one owner's outage does not hold up the other's.
        threads = [
            threading.Thread(target=load.run_customers, args=(queue, 1.5), daemon=True)
            for owner in owners
            for queue in ([p for p in plans if p.owner is owner][i::2] for i in range(2))
        ]
        threads += [
            threading.Thread(target=edits.run, daemon=True),
            threading.Thread(target=load.browse, args=(event_type_ids, browsing), daemon=True),
        ]
        for thread in threads:
            thread.start()

        # The faults, one after the other while the load runs: bookings are being made when
        # the worker dies and the database restarts; moves are being asked for when Xandikos,
        # holding Ben's bookings and Ana's conflicts, goes away.
        time.sleep(3)
        doomed = workers.processes[0]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        survivors = workers.processes[1:]
        with db.reading() as session:
            # A message it was handing to the mail server may or may not have gone out: once
            # its claim runs out it is sent (again), with the same Message-ID.
            in_flight = set(
                session.scalars(
                    select(OutboxMessage.message_id).where(
                        OutboxMessage.lease_owner.contains(worker_tag(doomed)),
                        OutboxMessage.status == OutboxStatus.READY,
                    )
                )
            )
        time.sleep(3)
        own_postgres.restart()
        restarted_at = datetime.now(UTC)
        time.sleep(4)
        xandikos.stop()
        time.sleep(OUTAGE)
        xandikos.start()
        back_at = datetime.now(UTC)

        for thread in threads:
            thread.join(timeout=GIVE_UP + 10)
        edits.stop()
        browsing.set()
        load_took = time.monotonic() - began
        print(
            f"\nload done in {load_took:.0f} s; retried on the way: {dict(load.failures)}; "
            f"owner edits: {edits.written}; availability reads: {load.reads}"
        )
        assert not load.errors, load.errors
        assert not edits.errors, edits.errors
        assert all(plan.booking_id for plan in plans), "every customer got their booking"
        assert all(plan.moved for plan in plans), "every booking was moved"

        # -- settled: nothing left to do ------------------------------------------------------

        def settled() -> bool:
            with db.reading() as session:
                pending = session.scalars(
                    select(Change.id).where(Change.status == ChangeStatus.PENDING)
                ).all()
                unsent = session.scalars(
                    select(OutboxMessage.id).where(
                        OutboxMessage.status.in_([OutboxStatus.READY, OutboxStatus.HELD])
                    )
                ).all()
                leftovers = session.scalars(
                    select(BookedSession.id)
                    .join(Booking, Booking.id == BookedSession.booking_id)
                    .where(Booking.status == BookingStatus.FAILED, BookedSession.href.is_not(None))
                ).all()
            return not pending and not unsent and not leftovers

        # A message the killed worker was sending waits out its claim before it goes again.
        claim_left = CLAIM_SECONDS if in_flight else 0
        wait_for(
            settled,
            SETTLE + claim_left,
            "every change applied, every email sent, every failed booking's events removed",
        )
        print(f"settled {time.monotonic() - began - load_took:.0f} s after the load")

        def mirrors_match() -> list[int] | None:
            differ = []
            for calendar in calendars:
                with db.reading() as session:
                    stored = dict(
                        session.execute(
                            select(MirroredEvent.href, MirroredEvent.etag).where(
                                MirroredEvent.connection_id == calendar.id
                            )
                        ).all()
                    )
                if stored != server_items(calendar.url):
                    differ.append(calendar.id)
            return None if differ else [1]

        wait_for(mirrors_match, 30, "every calendar's mirror to equal its server")

        # -- every booking and change applied exactly once -------------------------------------

        with db.reading() as session:
            bookings = session.scalars(select(Booking)).unique().all()
            by_customer = Counter(
                b.customer_email for b in bookings if b.status is BookingStatus.ACTIVE
            )
            changes = session.scalars(select(Change)).all()
            sessions = session.scalars(select(BookedSession)).all()
        assert all(count == 1 for count in by_customer.values()), by_customer
        assert {c.status for c in changes} == {ChangeStatus.APPLIED}
        assert len(changes) == len(plans), "one change per move, however often it was sent"
        # The outage did what it is here for: moves were recorded while Xandikos was down and
        # a worker carried them into the calendar once it was back.
        assert [c for c in changes if c.attempts > 0], "no move waited for the calendar"
        for owner in owners:
            found = server_events(owner.booking.url)
            uids = Counter(str(e["UID"]) for e in found)
            assert all(n == 1 for n in uids.values()), f"duplicate events: {uids}"
            booked = [e for e in found if str(e["UID"]).endswith("@calsync")]
            mine = [p for p in plans if p.owner is owner]
            assert len(booked) == sum(len(p.starts) for p in mine), "no stray booked event"
            by_uid = {str(e["UID"]): e for e in booked}
            for plan in mine:
                rows = sorted(
                    (s for s in sessions if s.booking_id == plan.booking_id),
                    key=lambda s: s.position,
                )
                for row, start in zip(rows, plan.moves, strict=True):
                    event_on_server = by_uid[row.uid]
                    assert event_on_server["DTSTART"].dt == start, plan.customer
                    assert int(event_on_server["SEQUENCE"]) == row.sequence == 1

        # -- every email sent once ---------------------------------------------------------------

        with db.reading() as session:
            messages = session.scalars(select(OutboxMessage)).all()
        sent = [m for m in messages if m.status is OutboxStatus.SENT]
        assert sent and {m.status for m in messages} <= {OutboxStatus.SENT, OutboxStatus.DROPPED}
        received = smtp_capture.inbox.message_ids()
        assert set(received) == {m.message_id for m in sent}, "every message arrived"
        twice = {key: n for key, n in received.items() if n > 1}
        assert set(twice) <= in_flight and max(twice.values(), default=1) <= 2, (
            f"messages that arrived more than once: {twice}"
        )

        # -- no lease left to the dead worker ------------------------------------------------------

        with db.reading() as session:
            leased = session.scalars(
                select(CalendarConnection.id).where(
                    CalendarConnection.lease_owner.contains(worker_tag(doomed))
                )
            ).all()
            held_mail = session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.lease_owner.contains(worker_tag(doomed))
                )
            ).all()
        assert not leased, f"calendars still leased to the killed worker: {leased}"
        assert not held_mail

        # -- the survivors recovered by themselves ------------------------------------------

        for process in [*survivors, *(web.process for web in webs)]:
            assert process.poll() is None, f"process {process.pid} exited"
        for web in webs:
            assert httpx.get(f"{web.base}/healthz", timeout=10).status_code == 200
        assert set(load.served_after) == {0, 1}
        with db.reading() as session:
            runs = session.scalars(
                select(SyncRun).where(
                    SyncRun.started_at > back_at, SyncRun.outcome == SyncOutcome.OK
                )
            ).all()
        for process in survivors:
            assert [r for r in runs if worker_tag(process) in r.worker], (
                f"worker {process.pid} polled nothing after the faults"
            )
        assert restarted_at < back_at
    finally:
        codes = workers.stop_all()
        for web in webs:
            web.kill()
        db.dispose()
    assert codes[1:] == [0, 0], f"survivors' exit codes {codes[1:]}"
