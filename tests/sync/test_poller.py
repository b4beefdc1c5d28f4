"""The poller's own logic against the in-memory provider, on SQLite and PostgreSQL:
leases and their fence, backoff after failures, cursor expiry, and the moving horizon."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from calsync.bookings.polling import booking_poller
from calsync.calendars.base import CalendarProvider, Interval
from calsync.calendars.errors import AuthFailed
from calsync.calendars.memory import MemoryProvider
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import (
    CalendarConnection,
    ConnectionStatus,
    MirrorFollowUp,
    ProviderKind,
    SyncOutcome,
    SyncRun,
)
from calsync.sync import connections as services
from calsync.sync.poller import Poller, PollResult

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def event(uid: str, start: datetime, minutes: int = 60, extra: str = "") -> str:
    end = start + timedelta(minutes=minutes)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n{extra}"
        "SUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class Calendars:
    """Memory calendars registered as connections of one owner."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.providers: dict[int, MemoryProvider] = {}
        self.owner = services.add_owner(db, name="O", email="o@example.org", timezone="UTC")

    def add(self) -> tuple[int, MemoryProvider]:
        with self.db.writing() as session:
            connection = CalendarConnection(
                owner_id=self.owner.id,
                provider=ProviderKind.CALDAV,
                url="memory:",
                next_poll_at=START,
            )
            session.add(connection)
        provider = MemoryProvider(f"/memory/{connection.id}/")
        self.providers[connection.id] = provider
        return connection.id, provider

    def factory(self) -> Callable[[CalendarConnection], CalendarProvider]:
        return lambda connection: self.providers[connection.id]

    def poller(self, settings: Settings, clock: Clock, name: str) -> Poller:
        return booking_poller(
            self.db, settings, worker_id=name, provider_factory=self.factory(), clock=clock
        )

    def connection(self, connection_id: int) -> CalendarConnection:
        return services.get_calendar(self.db, connection_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def calendars(db: Database) -> Calendars:
    return Calendars(db)


def busy(db: Database, connection_id: int) -> list[Interval]:
    return services.busy(db, connection_id, START - timedelta(days=1), START + timedelta(days=400))


def test_incremental_poll_mirrors_edits_and_deletions(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    a = calendar.owner_put("a", event("a", START + timedelta(hours=2)))
    b = calendar.owner_put("b", event("b", START + timedelta(hours=5)))
    poller = calendars.poller(settings, clock, "w1")
    (first,) = poller.tick()
    assert (first.outcome, first.full, first.upserted) == (SyncOutcome.OK, True, 2)
    assert [i.start.hour for i in busy(calendars.db, cid)] == [10, 13]

    calendar.owner_put(a.href, event("a", START + timedelta(hours=3)))
    calendar.owner_delete(b.href)
    assert poller.tick() == [], "not due yet: the next poll is a poll interval away"
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    (second,) = poller.tick()
    assert (second.full, second.upserted, second.removed) == (False, 1, 1)
    assert [i.start.hour for i in busy(calendars.db, cid)] == [11]


def test_expired_cursor_leads_to_a_full_reconciling_resync(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    for n in range(5):
        calendar.owner_put(f"e{n}", event(f"e{n}", START + timedelta(days=n)))
    poller = calendars.poller(settings, clock, "w1")
    poller.sync_now([cid])
    calendar.owner_delete(next(iter(calendar.snapshot())))
    calendar.owner_put("new", event("new", START + timedelta(days=9)))
    calendar.expire_cursors()
    (result,) = poller.sync_now([cid])
    assert result.full and result.removed == 1
    assert len(busy(calendars.db, cid)) == 5


def test_failures_back_off_are_reported_and_do_not_block_other_calendars(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    down_id, down = calendars.add()
    up_id, up = calendars.add()
    up.owner_put("x", event("x", START + timedelta(hours=1)))
    down.available = False
    poller = calendars.poller(settings, clock, "w1")
    results = {r.connection_id: r for r in poller.tick()}
    assert results[up_id].outcome is SyncOutcome.OK
    assert results[down_id].outcome is SyncOutcome.FAILED
    assert len(busy(calendars.db, up_id)) == 1

    interval = settings.sync.poll_interval_seconds
    waits = []
    for _ in range(8):
        failing = calendars.connection(down_id)
        waits.append((failing.next_poll_at - clock.now).total_seconds())
        clock.now = failing.next_poll_at
        poller.sync_now([down_id])
    assert waits[:4] == [interval, 2 * interval, 4 * interval, 8 * interval]
    assert max(waits) == settings.sync.max_backoff_seconds
    failing = calendars.connection(down_id)
    assert failing.status is ConnectionStatus.FAILING
    assert failing.last_error == "The in-memory calendar is switched off (available = False)."

    down.available = True
    clock.now = failing.next_poll_at
    (recovered,) = poller.sync_now([down_id])
    assert recovered.outcome is SyncOutcome.OK
    assert calendars.connection(down_id).failures == 0


def test_refused_credentials_mark_the_calendar(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    calendar.fail_next(AuthFailed("the server refused the password: update it"))
    calendars.poller(settings, clock, "w1").tick()
    connection = calendars.connection(cid)
    assert connection.status is ConnectionStatus.AUTH_FAILED
    assert connection.last_error == "the server refused the password: update it"


def test_two_workers_never_hold_the_same_calendar(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    ids = [calendars.add()[0] for _ in range(4)]
    first = calendars.poller(settings, clock, "w1").claim_due(2)
    second = calendars.poller(settings, clock, "w2").claim_due(10)
    assert len(first) == 2 and sorted(first + second) == sorted(ids)
    assert calendars.poller(settings, clock, "w3").claim_due(10) == []


def test_a_stalled_worker_loses_its_lease_and_its_result_is_dropped(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    calendar.owner_put("a", event("a", START + timedelta(hours=1)))
    stalled = calendars.poller(settings, clock, "stalled")
    assert stalled.claim_due(1) == [cid]
    # The stalled worker's lease runs out; another worker takes the calendar and polls it.
    clock.advance(seconds=settings.sync.lease_seconds + 1)
    calendar.owner_put("b", event("b", START + timedelta(hours=3)))
    taker = calendars.poller(settings, clock, "taker")
    assert taker.claim_due(1) == [cid]
    assert taker.poll(cid).outcome is SyncOutcome.OK
    # The stalled worker wakes up and finishes its poll: its result must not be stored.
    assert stalled.poll(cid).outcome is SyncOutcome.LEASE_LOST
    assert len(busy(calendars.db, cid)) == 2
    with calendars.db.reading() as session:
        outcomes = [
            (run.worker, run.outcome)
            for run in session.scalars(select(SyncRun).order_by(SyncRun.id))
        ]
    assert outcomes == [("taker", SyncOutcome.OK), ("stalled", SyncOutcome.LEASE_LOST)]


def test_busy_time_follows_the_horizon_as_days_pass(
    calendars: Calendars, db: Database, clock: Clock, database_url: str
) -> None:
    from tests.conftest import make_settings

    settings = make_settings(database_url, horizon_days=7)
    cid, calendar = calendars.add()
    calendar.owner_put(
        "daily", event("daily", START + timedelta(hours=1), extra="RRULE:FREQ=DAILY\r\n")
    )
    poller = calendars.poller(settings, clock, "w1")
    poller.sync_now([cid])
    horizon_end = clock.now + timedelta(days=7)
    assert max(i.end for i in busy(db, cid)) <= horizon_end + timedelta(days=1)
    # Ten days later, with no change on the server, the mirror reaches the new horizon.
    clock.advance(days=10)
    (result,) = poller.sync_now([cid])
    assert result.upserted == 0
    assert max(i.start for i in busy(db, cid)) >= clock.now + timedelta(days=6)


def test_one_tick_polls_every_due_calendar_not_only_one_batch(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    # One batch per tick capped a worker at max_parallel_polls calendars per tick_seconds.
    ids = [calendars.add()[0] for _ in range(3 * settings.sync.max_parallel_polls + 1)]
    results = calendars.poller(settings, clock, "w1").tick()
    assert sorted(r.connection_id for r in results) == ids
    assert {r.outcome for r in results} == {SyncOutcome.OK}


def test_a_slow_poll_does_not_hold_back_the_store_of_its_batch(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    # The unchanged polls of a batch are stored together; one slow poll in the batch must not
    # keep the others' leases (which run out) until it ends.
    (slow_id, slow), (quick_id, _quick) = calendars.add(), calendars.add()
    poller = calendars.poller(settings, clock, "w1")
    poller.tick()
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    gate = threading.Event()
    real_changes = slow.changes

    def held_changes(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(timeout=30)
        return real_changes(*args, **kwargs)

    slow.changes = held_changes  # type: ignore[method-assign]
    ticking = threading.Thread(target=poller.tick)
    ticking.start()
    try:
        deadline = time.monotonic() + 20
        while calendars.connection(quick_id).last_success_at != clock.now:
            assert time.monotonic() < deadline, "the quick poll waited for the slow one"
            time.sleep(0.05)
        assert calendars.connection(quick_id).lease_owner is None
        assert calendars.connection(slow_id).lease_owner == "w1"  # still polling
    finally:
        gate.set()
        ticking.join(timeout=30)
    assert calendars.connection(slow_id).lease_owner is None


def test_a_failed_batch_store_stores_each_poll_on_its_own(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    ids = [calendars.add()[0] for _ in range(3)]
    poller = calendars.poller(settings, clock, "w1")
    poller.tick()
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    real_update = poller._update_unchanged
    failed = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        # A stand-in for a transaction the database aborts (a real failover cannot be timed
        # to fall inside this one transaction).
        if not failed:
            failed.append(True)
            raise OperationalError("UPDATE calendar_connections", {}, Exception("connection lost"))
        return real_update(*args, **kwargs)

    poller._update_unchanged = failing_once  # type: ignore[method-assign]
    results = poller.tick()
    assert failed and sorted(r.connection_id for r in results) == ids
    assert {r.outcome for r in results} == {SyncOutcome.OK}
    for cid in ids:
        connection = calendars.connection(cid)
        assert connection.last_success_at == clock.now and connection.lease_owner is None


def test_unchanged_poll_is_recorded_and_moves_the_cursor_and_next_poll(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    calendar.owner_put("a", event("a", START + timedelta(hours=2)))
    poller = calendars.poller(settings, clock, "w1")
    poller.tick()
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    (unchanged,) = poller.tick()
    assert (unchanged.outcome, unchanged.upserted, unchanged.removed) == (SyncOutcome.OK, 0, 0)
    connection = calendars.connection(cid)
    assert connection.lease_owner is None and connection.lease_until is None
    assert connection.last_success_at == clock.now
    assert connection.next_poll_at == clock.now + timedelta(
        seconds=settings.sync.poll_interval_seconds
    )
    with calendars.db.reading() as session:
        runs = list(session.scalars(select(SyncRun).where(SyncRun.connection_id == cid)))
    assert [(r.outcome, r.upserted, r.worker) for r in runs] == [
        (SyncOutcome.OK, 1, "w1"),
        (SyncOutcome.OK, 0, "w1"),
    ]
    # The owner's change after an unchanged poll still arrives with the next one.
    calendar.owner_put("b", event("b", START + timedelta(hours=5)))
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    (changed,) = poller.tick()
    assert changed.upserted == 1
    assert [i.start.hour for i in busy(calendars.db, cid)] == [10, 13]


def test_unchanged_poll_still_reports_unreadable_events(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    cid, calendar = calendars.add()
    calendar.owner_put(
        "bad",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bad\r\nDTSTART:soon\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    poller = calendars.poller(settings, clock, "w1")
    (first,) = poller.tick()
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    (unchanged,) = poller.tick()
    assert first.problems == unchanged.problems == 1
    assert "1 event(s) could not be read" in (calendars.connection(cid).last_error or "")


def test_a_tick_longer_than_the_beat_is_not_overlapped_and_the_next_tick_runs(
    calendars: Calendars, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    beat = 0.05
    quick = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"tick_seconds": beat})}
    )
    cid, calendar = calendars.add()
    calendar.owner_put("a", event("a", START + timedelta(hours=2)))
    poller = booking_poller(
        calendars.db, quick, worker_id="w1", provider_factory=calendars.factory()
    )
    ticks: list[list[PollResult]] = []
    running = [0, 0]  # now, at most
    lock = threading.Lock()
    two_more = threading.Event()
    real_tick = poller.tick

    def tick() -> list[PollResult]:
        with lock:
            running[0] += 1
            running[1] = max(running)
        if not ticks:
            time.sleep(4 * beat)  # the first tick runs past three beats
        results = real_tick()
        with lock:
            running[0] -= 1
            ticks.append(results)
        if len(ticks) >= 3:
            two_more.set()
        return results

    poller.tick = tick  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    poller.start()
    try:
        assert two_more.wait(timeout=30)
    finally:
        poller.stop()
    assert running[1] == 1  # never two ticks at once
    assert [r.connection_id for r in ticks[0]] == [cid]  # the slow tick polled the calendar
    assert "maximum number of running instances" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert calendars.connection(cid).lease_owner is None


def test_ticks_that_always_outlast_the_beat_keep_coming(
    calendars: Calendars, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Each run schedules the next, due at once here; APScheduler counts a run as running until
    # just after it returns, and with one instance allowed it skipped that next run and so
    # ended the chain (seen within 10 runs when the log is written somewhere).
    beat = 0.01
    quick = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"tick_seconds": beat})}
    )
    poller = booking_poller(
        calendars.db, quick, worker_id="w1", provider_factory=calendars.factory()
    )
    runs: list[float] = []
    enough = threading.Event()

    def tick() -> list[PollResult]:
        time.sleep(2 * beat)
        logging.getLogger("calsync.test").info("tick %d", len(runs))
        runs.append(time.monotonic())
        if len(runs) >= 60:
            enough.set()
        return []

    poller.tick = tick  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    poller.start()
    try:
        assert enough.wait(timeout=60), f"the ticks stopped after {len(runs)} runs"
    finally:
        poller.stop()
    assert "skipped" not in caplog.text and "maximum number" not in caplog.text


def test_an_unchanged_tick_poll_turned_away_by_the_fence_takes_the_full_path(
    calendars: Calendars, settings: Settings, clock: Clock
) -> None:
    # A tick stores its unchanged polls together after the batch; one whose lease was taken
    # meanwhile, or whose calendar has a request's notes waiting, is stored the full way.
    (noted, noted_calendar), (stolen, _) = calendars.add(), calendars.add()
    worker = calendars.poller(settings, clock, "w1")
    assert {r.outcome for r in worker.tick()} == {SyncOutcome.OK}
    clock.advance(seconds=settings.sync.poll_interval_seconds)
    # A customer's request polls `noted` first: it stores the mirror and leaves notes.
    noted_calendar.owner_put("b", event("b", START + timedelta(hours=3)))
    request = calendars.poller(settings, clock, "request")
    assert request.claim_due(1, only=[noted]) == [noted]
    assert request.poll_mirror_only(noted)[0].outcome is SyncOutcome.OK
    # While the worker polls `stolen`, its lease goes to another worker.
    real_factory = calendars.factory()

    def stealing(connection: CalendarConnection) -> CalendarProvider:
        if connection.id == stolen:
            with calendars.db.writing() as session:
                session.get_one(CalendarConnection, stolen).lease_owner = "thief"
        return real_factory(connection)

    worker.open_provider = stealing
    results = {r.connection_id: r for r in worker.tick()}
    assert (results[noted].outcome, results[noted].upserted) == (SyncOutcome.OK, 0)
    assert results[stolen].outcome is SyncOutcome.LEASE_LOST
    with calendars.db.reading() as session:
        assert session.scalars(select(MirrorFollowUp)).all() == []  # the notes were used
        runs = session.scalars(select(SyncRun).where(SyncRun.worker == "w1")).all()
    assert sorted((r.connection_id, r.outcome) for r in runs) == [
        (noted, SyncOutcome.OK),
        (noted, SyncOutcome.OK),
        (stolen, SyncOutcome.LEASE_LOST),
        (stolen, SyncOutcome.OK),
    ]
    assert calendars.connection(noted).lease_owner is None
    assert calendars.connection(stolen).lease_owner == "thief"
