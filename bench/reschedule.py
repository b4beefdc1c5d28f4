"""Benchmark: rescheduling a session on a local Radicale, and the manage page under load.

1. Latency of a reschedule from the request to the event moved in the calendar: 50
   reschedules of one session through the change engine (what the manage page's confirm POST
   calls): a fresh incremental poll of the conflict calendar, the owner lock, the re-check of
   the slot, the recorded change, and the conditional write (GET + If-Match PUT) on Radicale.
   Median and p95; after the run every move is checked on the server.
2. ``GET /m/{token}`` (the customer's page) with 20 concurrent clients for 10 s against
   ``calsync web`` (one uvicorn process) in a child process.

Figures only; nothing is asserted. Run: ``python -m bench reschedule``
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from bench.api_load import CLIENTS, DURATION, Server, Tally, _client
from calsync.bookings import changes
from calsync.bookings.event_types import EventTypeSpec, find_slots, save_event_type
from calsync.bookings.packages import BookingRequest, book
from calsync.bookings.polling import booking_poller
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.ical.event_edit import event_times
from calsync.config import Settings, SyncSettings
from calsync.demo.embedded import EmbeddedRadicale
from calsync.policy.hours import parse_weekly_hours
from calsync.store.db import Database
from calsync.store.models import Actor, CalendarRole
from calsync.sync import connections as services

RESCHEDULES = 50
OWNER = "owner@example.org"
ZONE = ZoneInfo("Europe/Berlin")
SECRET = "bench-secret-key-0123456789abcdefghijklmnop"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _setup(workdir: Path, radicale: EmbeddedRadicale) -> tuple[Database, Settings, str, str]:
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'calsync.db'}",
        secret_key=SECRET,
        sync=SyncSettings(poll_jitter_seconds=0),
    )
    db = Database(settings.database_url)
    db.migrate()
    services.add_owner(db, name="Owner", email=OWNER, timezone="Europe/Berlin")
    url = radicale.ensure_calendar("bench", "work", "Work")
    (calendar,) = services.add_caldav_calendar(
        db,
        settings,
        services.CalDAVRequest(OWNER, url, "bench", "bench", role=CalendarRole.BOTH),
    )
    event_type = save_event_type(
        db,
        EventTypeSpec(
            owner_email=OWNER,
            slug="session",
            title="Session",
            duration=timedelta(minutes=30),
            timezone="Europe/Berlin",
            weekly_hours=parse_weekly_hours(["mon-sun 00:00-24:00"]),
            booking_calendar_id=calendar.id,
            price=Decimal("100"),
        ),
    )
    poller = booking_poller(db, settings)
    poller.sync_now([calendar.id])
    poller.stop()
    start = datetime.now(ZONE) + timedelta(days=1)
    first = find_slots(db, event_type, start, start + timedelta(days=1))
    result = book(
        db, settings, BookingRequest("session", "Customer", "c@example.org", (first[0].start,))
    )
    return db, settings, result.booking.id, result.manage_url


def _reschedules(
    db: Database, settings: Settings, booking_id: str, url: str
) -> list[tuple[str, str]]:
    from calsync.bookings.packages import get_booking

    booking = get_booking(db, booking_id)
    (session,) = booking.sessions
    targets = [session.start + timedelta(hours=2 * (n + 1)) for n in range(RESCHEDULES)]
    timings = []
    for target in targets:
        started = time.perf_counter()
        outcome = changes.reschedule(
            db, settings, booking_id, {session.id: target}, actor=Actor.CUSTOMER
        )
        timings.append(time.perf_counter() - started)
        assert outcome.change.status.value == "applied", outcome.change.message
    provider = CalDAVProvider(url, username="bench", password="bench")
    moved = get_booking(db, booking_id).sessions[0]
    stored = event_times(provider.get(moved.href or "").data)
    provider.close()
    ok = stored is not None and stored[0] == targets[-1]
    p95 = statistics.quantiles(timings, n=20)[18]
    return [
        ("reschedules (one session, each to a new slot)", f"{RESCHEDULES}"),
        ("reschedule → event moved on Radicale: median", _ms(statistics.median(timings))),
        ("reschedule → event moved on Radicale: p95", _ms(p95)),
        ("reschedule → event moved on Radicale: max", _ms(max(timings))),
        ("event on the server at the last target afterwards", "yes" if ok else "NO"),
    ]


def _page_load(database_url: str, manage_url: str, workdir: Path) -> list[tuple[str, str]]:
    import os

    os.environ["CALSYNC_SECRET_KEY"] = SECRET
    # Measure the page itself, not the rate limiter (which would answer most requests 429).
    os.environ["CALSYNC_WEB__MANAGE_READS_PER_MINUTE"] = "0"
    server = Server(database_url, workdir / "server.log")
    try:
        server.wait_until_ready()
        page = f"{server.url}/m/{manage_url.rsplit('/m/', 1)[1]}"
        first = httpx.get(page, timeout=30)
        first.raise_for_status()
        tally = Tally()
        began = time.perf_counter()
        until = began + DURATION
        threads = [
            threading.Thread(target=_client, args=(page, {}, first.content, until, tally))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        server.stop()
    done = len(tally.latencies)
    return [
        ("manage page: size", f"{len(first.content):,} bytes"),
        (
            f"manage page, {CLIENTS} clients for {DURATION:.0f} s: throughput",
            f"{done / elapsed:.0f} requests/s",
        ),
        (
            f"manage page, {CLIENTS} clients: median latency",
            _ms(statistics.median(tally.latencies)),
        ),
        (
            f"manage page, {CLIENTS} clients: p95 latency",
            _ms(statistics.quantiles(tally.latencies, n=20)[18]),
        ),
        (f"manage page, {CLIENTS} clients: errors", f"{tally.errors}"),
    ]


def run() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="calsync-bench-") as tmp:
        workdir = Path(tmp)
        radicale = EmbeddedRadicale(workdir / "radicale")
        radicale.start()
        try:
            db, settings, booking_id, manage_url = _setup(workdir, radicale)
            calendar_url = f"{radicale.url}/bench/work/"
            rows = _reschedules(db, settings, booking_id, calendar_url)
            db.dispose()
            rows += _page_load(settings.database_url, manage_url, workdir)
        finally:
            radicale.stop()
    return rows
