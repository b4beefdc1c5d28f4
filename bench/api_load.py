"""Benchmark: ``GET /api/event-types/{id}/availability`` under 20 concurrent clients for 10 s.

Setup (seeded, dated from today): a SQLite database in a temporary directory holding an owner,
one calendar marked as synced whose mirror holds 500 events spread over the next 60 days
(in working hours, 15–60 minutes, sometimes overlapping; the 14-day window asked for sees
about 120 of them, a busy owner's calendar), stored through
``mirror.apply_changes`` exactly as a poll stores them (no CalDAV server is needed to read
availability), and an event type in Europe/Berlin: Mon–Fri 08:00–18:00, Sat 09:00–13:00,
30-minute slots every 15 minutes, 10-minute buffers.

The server is what ``calsync web`` runs (``run_server``, one uvicorn process, poller off) in a
child process on a free loopback port. The clients are threads, each with its own keep-alive
``httpx.Client``, asking for the whole 14-day window over and over for ``DURATION`` seconds.
A request counts as an error unless it answers 200 with the same slots as the first one.

Figures only: nothing here asserts anything about speed. Run: ``python -m bench api_load``
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from calsync.bookings.event_types import EventTypeSpec, save_event_type
from calsync.calendars.base import Interval
from calsync.config import Settings
from calsync.demo.embedded import free_port
from calsync.policy.types import TimeRange
from calsync.store.db import MIGRATIONS, Database
from calsync.store.models import CalendarConnection, ConnectionStatus, ProviderKind, utcnow
from calsync.sync import connections as services
from calsync.sync import mirror

SEED = 20260302
EVENTS = 500
SPREAD_DAYS = 60
WINDOW_DAYS = 14
CLIENTS = 20
DURATION = 10.0
SEQUENTIAL = 50
ZONE = ZoneInfo("Europe/Berlin")
API_KEY = "bench-admin-key-0123456789abcdef"
OWNER = "owner@example.org"
STARTUP_TIMEOUT = 30.0
SERVE = (
    "import sys\n"
    "from calsync.config import Settings\n"
    "from calsync.web.server import run_server\n"
    "run_server(Settings(), host='127.0.0.1', port=int(sys.argv[1]), run_poller=False)\n"
)


# -- the data -------------------------------------------------------------------------------------


def _ics(uid: str, start: datetime, end: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:busy\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _events(first_day: date) -> list[mirror.ExpandedItem]:
    rng = random.Random(SEED)
    items = []
    for n in range(EVENTS):
        day = first_day + timedelta(days=rng.randrange(SPREAD_DAYS))
        begin = datetime.combine(day, wall(8), tzinfo=ZONE) + timedelta(
            minutes=15 * rng.randrange(40)
        )
        start = begin.astimezone(UTC)
        end = start + timedelta(minutes=15 * rng.randrange(1, 5))
        uid = f"bench-{n}"
        items.append(
            mirror.ExpandedItem(
                f"/bench/{uid}.ics", f'"{n}"', uid, _ics(uid, start, end), [Interval(start, end)]
            )
        )
    return items


def seed(database_url: str, first_day: date) -> int:
    """Owner, synced calendar with its mirror, event type; returns the event type's id."""
    db = Database(database_url)
    try:
        db.migrate()
        owner = services.add_owner(db, name="Bench", email=OWNER, timezone=ZONE.key)
        now = utcnow()
        with db.writing() as session:
            calendar = CalendarConnection(
                owner_id=owner.id,
                provider=ProviderKind.CALDAV,
                url="http://127.0.0.1:9/bench/",
                display_name="bench",
                status=ConnectionStatus.OK,
                last_polled_at=now,
                last_success_at=now,
                next_poll_at=now + timedelta(days=1),
            )
            session.add(calendar)
            session.flush()
            mirror.apply_changes(session, calendar.id, _events(first_day), [])
        workday = (TimeRange(wall(8), wall(18)),)
        event_type = save_event_type(
            db,
            EventTypeSpec(
                owner_email=OWNER,
                slug="consult",
                title="Consultation",
                duration=timedelta(minutes=30),
                slot_step=timedelta(minutes=15),
                timezone=ZONE.key,
                weekly_hours={d: workday for d in range(5)} | {5: (TimeRange(wall(9), wall(13)),)},
                buffer_before=timedelta(minutes=10),
                buffer_after=timedelta(minutes=10),
                horizon_days=SPREAD_DAYS,
            ),
        )
        return event_type.id
    finally:
        db.dispose()


def database_for(package_root: Path, database: Path) -> str:
    """A copy of ``database`` at the schema of the calsync package under ``package_root``,
    which refuses to serve a database newer than its own migrations: downgraded with this
    calsync's migrations, which only drop what the older package never read."""
    versions = package_root / "calsync" / "store" / "migrations" / "versions"
    newest = max(path.name.split("_", 1)[0] for path in versions.glob("0*.py"))
    copy = database.with_name(f"{database.stem}-{newest}.db")
    # SQLite's own backup: a plain file copy would miss what is still in the -wal file.
    source, target = sqlite3.connect(database), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    from alembic import command
    from alembic.config import Config as AlembicConfig

    db = Database(f"sqlite:///{copy}")
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = db.engine
        command.downgrade(config, newest)
    finally:
        db.dispose()
    return f"sqlite:///{copy}"


# -- the server -----------------------------------------------------------------------------------


class Server:
    """``run_server`` in a child process on a loopback port."""

    def __init__(self, database_url: str, log: Path, package_root: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = os.environ | {
            "CALSYNC_DATABASE_URL": database_url,
            "CALSYNC_ADMIN_API_KEY": API_KEY,
            "CALSYNC_LOG_LEVEL": "WARNING",  # no access log line per request
        }
        if package_root is not None:  # another calsync package (the 'before' figures)
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(package_root), os.environ.get("PYTHONPATH")])
            )
        # Started outside the checkout: `python -c` puts its working directory first on
        # sys.path, which would import this checkout's calsync whatever PYTHONPATH says.
        where = subprocess.run(
            [sys.executable, "-c", "import calsync; print(calsync.__file__)"],
            env=env,
            cwd=log.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if package_root is not None and not where.startswith(str(package_root)):
            raise RuntimeError(f"the other calsync was not picked up: {where}")
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, str(self.port)],
                cwd=log.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer within {STARTUP_TIMEOUT} s")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client(url: str, params: dict[str, str], expected: bytes, until: float, tally: Tally) -> None:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                response = client.get(url, params=params)
                ok = response.status_code == 200 and response.content == expected
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors += 1
    with tally.lock:
        tally.latencies += latencies
        tally.errors += errors


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def load(server: Server, event_type_id: int, first_day: date) -> list[tuple[str, str]]:
    url = f"{server.url}/api/event-types/{event_type_id}/availability"
    params = {
        "start": first_day.isoformat(),
        "end": (first_day + timedelta(days=WINDOW_DAYS)).isoformat(),
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        first = client.get(url, params=params)
        first.raise_for_status()
        sequential = []
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            client.get(url, params=params).raise_for_status()
            sequential.append(time.perf_counter() - started)
    tally = Tally()
    cpu_before = server.cpu_seconds()
    began = time.perf_counter()
    until = began + DURATION
    threads = [
        threading.Thread(target=_client, args=(url, params, first.content, until, tally))
        for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_after = server.cpu_seconds()
    done = len(tally.latencies)
    cpu = "n/a"
    if cpu_before is not None and cpu_after is not None:
        cpu = f"{(cpu_after - cpu_before) / done * 1000:.1f} ms ({os.cpu_count()} CPUs, shared)"
    return [
        ("answer", f"{len(first.json()['slots'])} free slots, {len(first.content):,} bytes"),
        (f"one client: median of {SEQUENTIAL}", _ms(statistics.median(sequential))),
        (f"{CLIENTS} clients for {DURATION:.0f} s: requests", f"{done:,}"),
        (f"{CLIENTS} clients: throughput", f"{done / elapsed:.0f} requests/s"),
        (f"{CLIENTS} clients: median latency", _ms(statistics.median(tally.latencies))),
        (
            f"{CLIENTS} clients: p95 latency",
            _ms(statistics.quantiles(tally.latencies, n=20)[18]),
        ),
        (f"{CLIENTS} clients: errors", f"{tally.errors}"),
        ("server CPU per request", cpu),
    ]


def run() -> list[tuple[str, str]]:
    """Rows of (label, figure): calsync now, then (same data, same run) the calsync package of
    ``bench.first_sync.BASELINE``, the commit before issue 14's speed-up, for the 'before'."""
    from bench.first_sync import BASELINE, export_baseline

    first_day = datetime.now(ZONE).date() + timedelta(days=1)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="calsync-bench-api-") as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        Settings(database_url=database_url)  # fail early on a bad URL
        event_type_id = seed(database_url, first_day)
        old = export_baseline(Path(tmp) / "baseline")
        cpu: dict[str, float] = {}
        for label, root in (("now", None), (f"before ({BASELINE})", old)):
            if label != "now" and root is None:
                rows.append(("before", f"skipped: commit {BASELINE} not available (git)"))
                continue
            served = database_url if root is None else database_for(root, Path(tmp) / "bench.db")
            server = Server(served, Path(tmp) / f"server-{len(rows)}.log", root)
            try:
                server.wait_until_ready()
                measured = load(server, event_type_id, first_day)
            finally:
                server.stop()
            rows += [(f"{label}: {name}", value) for name, value in measured]
            for name, value in measured:
                if name.startswith("server CPU") and value != "n/a":
                    cpu[label] = float(value.split()[0])
        if len(cpu) == 2:
            now, before = cpu.values()
            rows.append(("server CPU per request: before ÷ now", f"{before / now:.2f}×"))
    setup = [
        ("server", "calsync web (uvicorn, 1 process), SQLite, poller off, loopback"),
        ("data", f"{EVENTS} mirrored events over {SPREAD_DAYS} days; window {WINDOW_DAYS} days"),
        ("event type", "30 min every 15 min, buffers 10/10, Mon–Fri 08–18, Sat 09–13"),
    ]
    return setup + rows
