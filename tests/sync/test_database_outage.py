"""A worker's background jobs while PostgreSQL is down: a line in the log per attempt, not a
traceback, and polling again by itself once the database is back (found by the load test with
faults, where every tick of every worker printed pages of tracebacks during a restart).

The database is a cluster of the test's own, really stopped and started.
"""

from __future__ import annotations

import logging

import pytest

from calsync.bookings.polling import booking_poller
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from calsync.store.models import CalendarConnection, SyncOutcome
from calsync.sync import connections as services
from calsync.worker import guarded
from tests.conftest import make_settings
from tests.support.own_postgres import OwnPostgres

pytestmark = pytest.mark.postgres


def test_a_poller_tick_without_its_database_logs_a_line_and_polls_again_once_it_is_back(
    own_postgres: OwnPostgres, radicale_calendar: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(own_postgres.url)
    db = Database(own_postgres.url)
    db.migrate()
    try:
        services.add_owner(db, name="Owner", email="owner@example.org", timezone="UTC")
        (calendar,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest("owner@example.org", radicale_calendar)
        )
        poller = booking_poller(db, settings)
        assert [r.outcome for r in poller.tick()] == [SyncOutcome.OK]  # pooled connections now

        own_postgres.stop()
        with caplog.at_level(logging.WARNING):
            assert poller.tick() == []
        (line,) = [r for r in caplog.records if r.name == "calsync.sync.poller"]
        assert line.levelno == logging.WARNING and line.exc_info is None
        assert "database cannot be reached" in line.getMessage()

        own_postgres.start()
        with db.writing() as session:
            stored = session.get(CalendarConnection, calendar.id)
            assert stored is not None
            stored.next_poll_at = stored.last_polled_at  # due again
        assert [r.outcome for r in poller.tick()] == [SyncOutcome.OK]
    finally:
        db.dispose()


def test_the_worker_jobs_without_their_database_log_a_line_each(
    own_postgres: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(own_postgres.url)
    db = Database(own_postgres.url)
    db.migrate()
    transport, box = transport_from_settings(settings.mail), outbox.sealing_box(settings)
    deliver = guarded("delivering the outbox", lambda: outbox.deliver_due(db, transport, "w", box))
    try:
        deliver()
        own_postgres.stop()
        with caplog.at_level(logging.WARNING):
            deliver()
        (line,) = [r for r in caplog.records if r.name == "calsync.worker"]
        assert line.levelno == logging.WARNING and line.exc_info is None
        assert line.getMessage().startswith("delivering the outbox: the database cannot be reached")

        caplog.clear()
        with caplog.at_level(logging.WARNING):
            guarded("a job with a bug", lambda: 1 / 0)()
        (line,) = caplog.records
        assert line.levelno == logging.ERROR and line.exc_info, "a bug keeps its traceback"
    finally:
        own_postgres.start()
        db.dispose()
