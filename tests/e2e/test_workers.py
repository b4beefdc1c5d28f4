"""Several ``calsync worker`` processes on one PostgreSQL database, against real Radicale.

Workers are real child processes; the calendar server is reached through a relay that can be
made slow (tests/support/slowproxy.py), so polls take long enough to overlap and a worker can be
killed while its request is in flight.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from calsync.store.db import Database
from calsync.store.models import CalendarConnection, MirroredEvent, SyncOutcome, SyncRun
from calsync.sync import connections as services
from tests.conftest import SECRET_KEY, make_settings
from tests.support.servers import ServerProcess, free_port, put_event
from tests.support.slowproxy import SlowProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
OWNER = "owner@example.org"


def event(uid: str, start: datetime) -> str:
    end = start + timedelta(hours=1)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def soon(hours: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


class Workers:
    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.env = os.environ | {
            "CALSYNC_DATABASE_URL": database_url,
            "CALSYNC_SECRET_KEY": SECRET_KEY,
            "CALSYNC_SYNC__POLL_INTERVAL_SECONDS": "1",
            "CALSYNC_SYNC__POLL_JITTER_SECONDS": "0.2",
            "CALSYNC_SYNC__TICK_SECONDS": "0.2",
            "CALSYNC_SYNC__LEASE_SECONDS": "3",
            # A batch claims 2 × this many calendars: fewer than the 6 of the tests below, so
            # one worker cannot take them all at every tick and both workers poll.
            "CALSYNC_SYNC__MAX_PARALLEL_POLLS": "2",
        }
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "calsync", "worker"],
            env=self.env,
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(postgres_url, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    db.migrate()
    services.add_owner(db, name="Owner", email=OWNER, timezone="UTC")
    yield db
    db.dispose()


@pytest.fixture
def proxy(radicale_server: ServerProcess) -> Iterator[SlowProxy]:
    relay = SlowProxy(radicale_server.port)
    yield relay
    relay.close()


def connect(pg: Database, url: str, server: ServerProcess) -> CalendarConnection:
    username, password = server.auth or (None, None)
    (connection,) = services.add_caldav_calendar(
        pg,
        make_settings(pg.url),
        services.CalDAVRequest(OWNER, url, username, password),
    )
    return connection


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def runs(pg: Database) -> list[SyncRun]:
    with pg.reading() as session:
        return list(session.scalars(select(SyncRun).order_by(SyncRun.started_at)))


def test_two_workers_never_poll_one_calendar_at_the_same_time(
    pg: Database, workers: Workers, radicale_server: ServerProcess, proxy: SlowProxy
) -> None:
    connections = []
    for n in range(6):
        url = radicale_server.new_calendar()
        put_event(url, event(f"e{n}", soon(2 * n + 2)), auth=radicale_server.auth)
        connections.append(connect(pg, proxy.url_for(url), radicale_server))
    proxy.delay = 0.15  # every request takes a while, so polls by two workers would overlap
    workers.start()
    workers.start()
    wait_for(lambda: len(runs(pg)) >= 40, 60, "40 polls")
    workers.stop_all()

    all_runs = runs(pg)
    assert {run.outcome for run in all_runs} == {SyncOutcome.OK}
    assert len({run.worker for run in all_runs}) == 2, "both workers should have polled"
    for connection in connections:
        mine = [run for run in all_runs if run.connection_id == connection.id]
        for earlier, later in itertools.pairwise(mine):
            assert later.started_at >= earlier.finished_at, (
                f"calendar {connection.id} polled concurrently by {earlier.worker} "
                f"and {later.worker}"
            )


def test_a_killed_worker_is_taken_over_after_its_lease_expires(
    pg: Database, workers: Workers, radicale_server: ServerProcess, proxy: SlowProxy
) -> None:
    url = radicale_server.new_calendar()
    for n in range(5):
        put_event(url, event(f"e{n}", soon(2 * n + 2)), auth=radicale_server.auth)
    connection = connect(pg, proxy.url_for(url), radicale_server)
    proxy.delay = 600  # the first worker's request hangs in the network

    doomed = workers.start()

    def claimed_by_doomed() -> datetime | None:
        current = services.get_calendar(pg, connection.id)
        mine = current.lease_owner and f":{doomed.pid}:" in current.lease_owner
        return current.lease_until if mine and proxy.waiting else None

    lease_until = wait_for(claimed_by_doomed, 30, "the first worker to claim and start polling")
    doomed.kill()  # SIGKILL mid-poll: no clean-up of any kind
    doomed.wait()
    proxy.delay = 0
    put_event(url, event("while-down", soon(30)), auth=radicale_server.auth)

    successor = workers.start()
    wait_for(lambda: [r for r in runs(pg) if r.outcome is SyncOutcome.OK], 30, "a good poll")
    (run,) = [r for r in runs(pg) if r.outcome is SyncOutcome.OK][:1]
    assert f":{successor.pid}:" in run.worker
    assert run.started_at >= lease_until, "taken over before the lease had expired"
    assert not [r for r in runs(pg) if f":{doomed.pid}:" in r.worker]
    with pg.reading() as session:
        stored = session.scalar(
            select(func.count()).where(MirroredEvent.connection_id == connection.id)
        )
    assert stored == 6
    busy = services.busy(pg, connection.id, soon(0), soon(48))
    assert len(busy) == 6


def test_sigterm_mid_poll_gives_the_calendar_back_and_exits_0(
    pg: Database, workers: Workers, radicale_server: ServerProcess, proxy: SlowProxy
) -> None:
    connection = connect(pg, proxy.url_for(radicale_server.new_calendar()), radicale_server)
    proxy.delay = 600  # the poll's request hangs in the network until its timeout
    workers.env["CALSYNC_SYNC__REQUEST_TIMEOUT_SECONDS"] = "3"
    workers.env["CALSYNC_SYNC__LEASE_SECONDS"] = "600"  # an expired lease would hide a leak
    worker = workers.start()

    def polling() -> bool:
        current = services.get_calendar(pg, connection.id)
        return bool(current.lease_owner and f":{worker.pid}:" in current.lease_owner)

    wait_for(lambda: polling() and proxy.waiting, 30, "the worker to claim and start polling")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    current = services.get_calendar(pg, connection.id)
    assert current.lease_owner is None and current.lease_until is None


def test_a_worker_serves_its_metrics_on_its_own_port_and_logs_json(
    pg: Database, workers: Workers, radicale_server: ServerProcess, tmp_path: Path
) -> None:
    url = radicale_server.new_calendar()
    put_event(url, event("e1", soon(2)), auth=radicale_server.auth)
    connection = connect(pg, url, radicale_server)
    port = free_port()
    workers.env["CALSYNC_METRICS_PORT"] = str(port)
    workers.env["CALSYNC_LOGGING__FORMAT"] = "json"
    workers.start()

    def scraped() -> dict[str, float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in ("calsync_polls_total", "calsync_calendars"):
                    found[f"{sample.name}:{','.join(sample.labels.values())}"] = sample.value
        return found if found.get("calsync_polls_total:ok") else {}

    found = wait_for(scraped, 30, "a poll counted on the worker's metrics port")
    assert isinstance(found, dict) and found["calsync_calendars:ok"] == 1
    workers.stop_all()
    lines = [json.loads(line) for line in (tmp_path / "worker-0.log").read_text().splitlines()]
    polled = [line for line in lines if line["logger"] == "calsync.sync.poller"]
    assert polled and {line["calendar_id"] for line in polled} == {connection.id}
