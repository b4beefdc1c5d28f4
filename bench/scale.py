"""Benchmark: many calendars on many ``calsync worker`` processes sharing PostgreSQL.

N calendars (default 1,000; ``--calendars 5000``) of realistic size (most small, some large;
the same seeded mix of single events and series as ``bench.sync``) are spread over two
Xandikos and two Radicale servers, each a child process on loopback, seeded in their own
storage as ``bench.sync`` does. calsync runs on PostgreSQL (the server of
``CALSYNC_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
in a database of its own, ``calsync_bench``, dropped and made again at the start.

For 1, 2 and 4 worker processes, each a real worker (``calsync.worker.start_background``
with calsync's default sync settings, except a poll interval of an hour so that every calendar
is polled once per phase and no jitter):

1. first sync: every calendar's mirror emptied and its cursor forgotten; all due at once.
   Events per second over the whole phase, peak RSS (VmHWM) of each worker.
2. unchanged polls: all calendars due at once again, nothing changed on the servers.
   Calendars per second (total and per worker), scaling efficiency against one worker (by
   wall time, and by CPU seconds per poll: the sum of the workers' user+system time divided by
   the polls), database statements per poll (every statement the worker processes sent,
   counted with SQLAlchemy's ``before_cursor_execute``, idle ticks and the other worker jobs
   included), peak RSS of each worker.
3. poll lag: the calendars' due times spread evenly over a period in which they ask for half
   of what phase 2 measured; lag is how long after its due time each poll started (p50, p99).
4. the limit: a bare HTTP loop in as many processes (each with ``max_parallel_polls``
   threads and keep-alive connections) sending the very sync-collection REPORT calsync sends
   for each calendar (with its stored sync token), nothing else. calsync's unchanged-poll rate
   is shown as a ratio of it.

The servers, PostgreSQL and the workers share the machine: on few cores the CPU, not calsync,
bounds what more processes can do, and the table says how many cores there are.

Run: ``python -m bench scale`` (``--calendars N``, ``--workers 1,2,4``, ``--quick`` = 100
calendars on one server of each kind, workers 1 and 2). Figures only, nothing asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.engine import make_url

from bench.sync import OWNER, ROOT, SECRET_KEY, ZONE, Event, make_events
from calsync.config import Settings, SyncSettings
from calsync.store.db import Database
from calsync.store.models import (
    BusyInterval,
    CalendarConnection,
    MirroredEvent,
    SyncRun,
)
from calsync.sync import connections as services

if TYPE_CHECKING:
    from tests.support.servers import ServerProcess

Rows = list[tuple[str, str]]
SEED = 20261203
DATABASE = "calsync_bench"
POSTGRES_URL = os.environ.get(
    "CALSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
#: Targets of issue 14, printed beside the figures.
TARGET_PER_WORKER = 100.0
TARGET_EFFICIENCY = 0.8
TARGET_STATEMENTS = 3.0
TARGET_RSS_MIB = 200.0


# -- the calendars ----------------------------------------------------------------------------


def calendar_sizes(count: int, rng: random.Random) -> list[int]:
    """Events per calendar: 60 % small (5-40), 30 % medium (40-200), 10 % large (200-800),
    about 100 on average, like a practice's calendars (few busy owners hold most events)."""
    sizes = []
    for _ in range(count):
        roll = rng.random()
        low, high = (5, 40) if roll < 0.6 else (40, 200) if roll < 0.9 else (200, 800)
        sizes.append(rng.randint(low, high))
    return sizes


def say_scale(message: str) -> None:
    print(f"[bench.scale] {message}", file=sys.stderr, flush=True)


@dataclass
class Server:
    """A running server and the calendars (URL, events) it holds."""

    kind: str
    process: ServerProcess
    calendars: list[tuple[str, int]]


def _xandikos_fill(process: ServerProcess, names: list[str], objects: list[list[Event]]) -> None:
    from dulwich.index import index_entry_from_stat, locked_index
    from dulwich.objects import Blob
    from dulwich.repo import Repo

    home = process.workdir / "storage" / process.calendar_home.strip("/")
    for name, events in zip(names, objects, strict=True):
        folder = home / name
        repo = Repo(str(folder))
        try:
            with locked_index(repo.index_path()) as index:
                blobs = []
                for item in events:
                    file = f"{item.uid}.ics"
                    data = item.ics.encode("utf-8")
                    (folder / file).write_bytes(data)
                    blob = Blob.from_string(data)
                    blobs.append((blob, None))
                    index[file.encode()] = index_entry_from_stat(os.lstat(folder / file), blob.id)
                repo.object_store.add_objects(blobs)
                repo.get_worktree().commit(
                    message=f"Import {len(events)} events".encode(),
                    tree=index.commit(repo.object_store),
                )
        finally:
            repo.close()


def _radicale_fill(process: ServerProcess, names: list[str], objects: list[list[Event]]) -> None:
    from tests.support.servers import USER

    home = process.workdir / "storage" / "collection-root" / USER
    for name, events in zip(names, objects, strict=True):
        for item in events:
            (home / name / f"{item.uid}.ics").write_text(item.ics, encoding="utf-8", newline="")


def start_server(kind: str, workdir: Path, sizes: list[int], seed: int) -> Server:
    """A server of ``kind`` with one calendar per size, seeded in its storage."""
    from tests.support.servers import USER, _radicale, _xandikos, request

    process = (_xandikos if kind == "Xandikos" else _radicale)(workdir)
    process.start()
    if kind == "Radicale":  # Radicale makes the principal on the first authenticated request
        request("PROPFIND", f"{process.url}{USER}/", headers={"Depth": "0"}, auth=process.auth)
    names = [f"cal{n:05d}" for n in range(len(sizes))]
    with ThreadPoolExecutor(4) as pool:
        urls = list(pool.map(process.new_calendar, names))
    today = datetime.now(ZoneInfo(ZONE)).date()
    objects = [make_events(today, size, seed + n) for n, size in enumerate(sizes)]
    process.stop()
    (_xandikos_fill if kind == "Xandikos" else _radicale_fill)(process, names, objects)
    process.start()
    if kind == "Radicale":
        # Radicale parses each new file once and caches it, as a PUT would have done.
        propfind = b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'

        def warm(url: str) -> None:
            request("PROPFIND", url, propfind, {"Depth": "1"}, auth=process.auth, timeout=300)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(warm, urls))
    return Server(kind, process, list(zip(urls, sizes, strict=True)))


# -- the database -----------------------------------------------------------------------------


def bench_database_url() -> str:
    """A new, empty ``calsync_bench`` database on the test PostgreSQL server."""
    import psycopg

    url = make_url(POSTGRES_URL)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return url.set(database=DATABASE).render_as_string(hide_password=False)


def make_settings(database_url: str) -> Settings:
    # calsync's defaults, except: each calendar polled once per phase, no jitter.
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        sync=SyncSettings(poll_interval_seconds=3600, poll_jitter_seconds=0),
    )


def connect_all(db: Database, settings: Settings, servers: list[Server]) -> int:
    """One owner per two calendars. The first calendar of each server is connected as a user
    would (discovery included); the rest are copies of its row with their own URL."""
    owners = []
    total = sum(len(s.calendars) for s in servers)
    for n in range((total + 1) // 2):
        email = OWNER if n == 0 else f"owner{n}@example.org"
        owners.append(services.add_owner(db, name=f"Owner {n}", email=email, timezone=ZONE).id)
    count = 0
    for server in servers:
        username, password = server.process.auth or (None, None)
        first_url = server.calendars[0][0]
        (template,) = services.add_caldav_calendar(
            db, settings, services.CalDAVRequest(OWNER, first_url, username, password)
        )
        count += 1
        with db.writing() as session:
            row = session.get(CalendarConnection, template.id)
            assert row is not None
            for url, _size in server.calendars[1:]:
                session.add(
                    CalendarConnection(
                        owner_id=owners[count // 2],
                        provider=row.provider,
                        url=url,
                        display_name=url.rstrip("/").rsplit("/", 1)[-1],
                        username=row.username,
                        secret_encrypted=row.secret_encrypted,
                        role=row.role,
                        timezone=row.timezone,
                        all_day=row.all_day,
                        cancel_mode=row.cancel_mode,
                        next_poll_at=FAR,
                    )
                )
                count += 1
    with db.writing() as session:
        session.execute(update(CalendarConnection).values(next_poll_at=FAR))
    return count


# -- the worker processes ---------------------------------------------------------------------


def _vm(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def worker(argv: list[str]) -> None:
    """Child process: a real calsync worker until ``stop_file`` exists; then a JSON report of
    its CPU time, statements, polls and memory. Prints ``ready`` once it is ticking."""
    database_url, stop_file = argv
    from calsync.worker import start_background

    db = Database(database_url)
    statements = [0]

    @event.listens_for(db.engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        statements[0] += 1

    polls: dict[str, int] = {}
    upserted = [0]
    lock = threading.Lock()
    poller = start_background(db, make_settings(database_url))

    def counted(result: Any) -> None:
        with lock:
            polls[result.outcome.value] = polls.get(result.outcome.value, 0) + 1
            upserted[0] += result.upserted

    poller.on_result = counted
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, statements0 = usage.ru_utime + usage.ru_stime, statements[0]
    print("ready", flush=True)
    while not os.path.exists(stop_file):
        time.sleep(0.05)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "cpu": usage.ru_utime + usage.ru_stime - cpu0,
        "statements": statements[0] - statements0,
        "polls": polls,
        "upserted": upserted[0],
        "hwm_kib": _vm("VmHWM"),
    }
    poller.stop()
    db.dispose()
    print(json.dumps(report), flush=True)


def _child_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path}


@contextmanager
def workers(count: int, database_url: str, workdir: Path) -> Iterator[list[dict[str, Any]]]:
    """``count`` worker processes, ticking when the block starts; their reports (filled when
    the block ends) in the yielded list."""
    stop = workdir / f"stop-{time.monotonic_ns()}"
    code = "import sys; from bench.scale import worker; worker(sys.argv[1:])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url, str(stop)],
            cwd=workdir,
            env=_child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    reports: list[dict[str, Any]] = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker process did not start")
        yield reports
    finally:
        stop.touch()
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode == 0:
                reports.append(json.loads(out.strip().splitlines()[-1]))


def wait_for_runs(db: Database, since: datetime, count: int, timeout: float) -> None:
    """Until ``count`` calendars have a run record started after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.reading() as session:
            done = session.scalar(
                select(func.count(func.distinct(SyncRun.connection_id))).where(
                    SyncRun.started_at >= since
                )
            )
        if (done or 0) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"only {done} of {count} calendars were polled in {timeout:.0f} s")


def runs_since(db: Database, since: datetime) -> list[SyncRun]:
    with db.reading() as session:
        return list(session.scalars(select(SyncRun).where(SyncRun.started_at >= since)))


@dataclass
class Phase:
    """What one phase measured, over all its worker processes."""

    workers: int
    seconds: float  # first poll's start to last poll's end
    polls: int
    failed: int
    upserted: int
    cpu: float
    statements: int
    hwm_mib: list[float]
    lags: list[float]

    @property
    def rate(self) -> float:
        return self.polls / self.seconds if self.seconds else 0.0


def run_phase(
    db: Database, database_url: str, workdir: Path, count: int, calendars: int, due: str
) -> Phase:
    """Start ``count`` workers, make the calendars due (``due``: "now", "spread:<seconds>"
    or "first" for a first sync), wait until each was polled once."""
    with workers(count, database_url, workdir) as reports:
        time.sleep(1.0)  # let every worker's first idle tick pass
        now = datetime.now(UTC)
        planned: dict[int, datetime] = {}
        with db.writing() as session:
            ids = list(
                session.scalars(select(CalendarConnection.id).order_by(CalendarConnection.id))
            )
            if due == "first":
                session.execute(delete(BusyInterval))
                session.execute(delete(MirroredEvent))
                session.execute(
                    update(CalendarConnection).values(
                        cursor=None, expanded_from=None, expanded_until=None, next_poll_at=now
                    )
                )
            elif due == "now":
                session.execute(update(CalendarConnection).values(next_poll_at=now))
            else:
                spread = float(due.split(":")[1])
                shuffled = ids[:]
                random.Random(SEED).shuffle(shuffled)
                planned = {
                    cid: now + timedelta(seconds=spread * n / len(ids))
                    for n, cid in enumerate(shuffled)
                }
                session.execute(
                    update(CalendarConnection),
                    [{"id": cid, "next_poll_at": at} for cid, at in planned.items()],
                )
        wait_for_runs(db, now, calendars, timeout=3600)
    runs = runs_since(db, now)
    lags = [(r.started_at - planned[r.connection_id]).total_seconds() for r in runs if planned]
    return Phase(
        workers=count,
        seconds=(
            max(r.finished_at for r in runs) - min(r.started_at for r in runs)
        ).total_seconds(),
        polls=len(runs),
        failed=sum(r.outcome.value != "ok" for r in runs),
        upserted=sum(r.upserted for r in runs),
        cpu=sum(r["cpu"] for r in reports),
        statements=sum(r["statements"] for r in reports),
        hwm_mib=[r["hwm_kib"] / 1024 for r in reports],
        lags=lags,
    )


# -- the limit: the same REPORTs, no calsync ----------------------------------------------------

SYNC_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)


def limit_worker(argv: list[str]) -> None:
    """Child process: ``threads`` threads send the sync-collection REPORT for each (url, token,
    auth) line of ``jobs_file``, keep-alive, once each; prints the count and seconds."""
    jobs_file, threads = argv[0], int(argv[1])
    jobs = [json.loads(line) for line in Path(jobs_file).read_text().splitlines()]
    failures = [0]

    def run(share: list[dict[str, str]]) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        for job in share:
            parts = urlsplit(job["url"])
            conn = conns.get(parts.netloc)
            if conn is None:
                conn = conns[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=30)
            headers = {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"}
            if job["auth"]:
                headers["Authorization"] = job["auth"]
            conn.request("REPORT", parts.path, SYNC_BODY.format(token=job["token"]), headers)
            response = conn.getresponse()
            response.read()
            if response.status != 207:
                failures[0] += 1
        for conn in conns.values():
            conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [jobs[n::threads] for n in range(threads)]))
    seconds = time.perf_counter() - started
    print(json.dumps({"requests": len(jobs), "seconds": seconds, "failures": failures[0]}))


def limit(db: Database, workdir: Path, processes: int, threads: int) -> tuple[float, int]:
    """REPORTs per second of ``processes`` bare loops over all calendars; and failures."""
    import base64

    with db.reading() as session:
        rows = session.execute(
            select(CalendarConnection.url, CalendarConnection.cursor, CalendarConnection.username)
        ).all()
    jobs = []
    for url, token, username in rows:
        auth = ""
        if username:  # Radicale: calsync sends Basic auth too (any password works there)
            auth = "Basic " + base64.b64encode(f"{username}:x".encode()).decode()
        jobs.append(json.dumps({"url": url, "token": token or "", "auth": auth}))
    random.Random(SEED).shuffle(jobs)
    files = []
    for n in range(processes):
        path = workdir / f"limit-{n}.jsonl"
        path.write_text("\n".join(jobs[n::processes]) + "\n")
        files.append(path)
    code = "import sys; from bench.scale import limit_worker; limit_worker(sys.argv[1:])"
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), str(threads)],
            cwd=workdir,
            env=_child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for path in files
    ]
    outs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    # Each process's own loop time, so that interpreter start-up is not counted.
    slowest = max(out["seconds"] for out in outs)
    del started
    return len(jobs) / slowest, sum(out["failures"] for out in outs)


# -- putting it together ------------------------------------------------------------------------


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return quantiles(values, n=100, method="inclusive")[q - 1]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, e.g. 1,2,4")
    parser.add_argument(
        "--quick", action="store_true", help="100 calendars on two servers, workers 1 and 2"
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.calendars = min(options.calendars, 100)
        options.workers = "1,2"
    options.counts = [int(n) for n in options.workers.split(",")]
    return options


def run(argv: list[str] | None = None) -> Rows:
    options = parse(argv or [])
    kinds = ["Xandikos", "Radicale"] * (1 if options.quick else 2)
    rng = random.Random(SEED)
    sizes = calendar_sizes(options.calendars, rng)
    rows: Rows = [
        (
            "setup",
            f"{options.calendars:,} calendars, {sum(sizes):,} events, on {len(kinds)} servers "
            f"({', '.join(kinds)}); PostgreSQL database {DATABASE}; {os.cpu_count()} CPU cores "
            "shared by servers, PostgreSQL and workers",
        )
    ]
    with tempfile.TemporaryDirectory(prefix="calsync-scale-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        servers = []
        for n, kind in enumerate(kinds):
            share = sizes[n :: len(kinds)]
            say_scale(f"{kind} #{n}: seeding {len(share)} calendars, {sum(share):,} events")
            workdir = base / f"server-{n}"
            workdir.mkdir()
            server = start_server(kind, workdir, share, SEED + 100_000 * n)
            stack.callback(server.process.stop)
            servers.append(server)
        database_url = bench_database_url()
        db = Database(database_url)
        stack.callback(db.dispose)
        db.migrate()
        settings = make_settings(database_url)
        calendars = connect_all(db, settings, servers)
        say_scale(f"{calendars} calendars connected")
        threads = settings.sync.max_parallel_polls
        base_unchanged: Phase | None = None
        for count in options.counts:
            say_scale(f"{count} worker(s): first sync")
            first = run_phase(db, database_url, base, count, calendars, "first")
            say_scale(f"{count} worker(s): unchanged polls")
            unchanged = run_phase(db, database_url, base, count, calendars, "now")
            spread = calendars / max(unchanged.rate / 2, 1.0)
            say_scale(f"{count} worker(s): poll lag at half that rate ({spread:.0f} s)")
            steady = run_phase(db, database_url, base, count, calendars, f"spread:{spread}")
            say_scale(f"{count} worker(s): the limit (bare REPORT loop)")
            allowed, failures = limit(db, base, count, threads)
            base_unchanged = base_unchanged or unchanged
            rows += table(count, first, unchanged, steady, allowed, failures, base_unchanged)
        with db.reading() as session:
            # A sanity line: the mirror holds every event the servers hold.
            mirrored = session.scalar(select(func.count()).select_from(MirroredEvent))
            session.execute(text("SELECT 1"))
        rows.append(("mirror after the runs", f"{mirrored:,} events (servers hold {sum(sizes):,})"))
    return rows


def table(
    count: int,
    first: Phase,
    unchanged: Phase,
    steady: Phase,
    allowed: float,
    failures: int,
    one: Phase,
) -> Rows:
    label = f"{count} worker{'s' if count > 1 else ''}"
    per_worker = unchanged.rate / count
    cpu_per_poll = unchanged.cpu / unchanged.polls
    one_cpu_per_poll = one.cpu / one.polls
    efficiency = unchanged.rate / (one.rate * count)
    statements = unchanged.statements / unchanged.polls
    ok = "✓" if per_worker >= TARGET_PER_WORKER else "✗"
    rows = [
        (
            f"{label}: first sync of all calendars",
            f"{first.upserted:,} events in {first.seconds:.1f} s = "
            f"{first.upserted / first.seconds:,.0f} events/s"
            + (f" ({first.failed} polls failed)" if first.failed else ""),
        ),
        (
            f"{label}: unchanged calendars polled/s (total / per worker)",
            f"{unchanged.rate:,.0f} / {per_worker:,.0f} {ok} (target ≥ {TARGET_PER_WORKER:.0f}"
            f" per worker)" + (f"; {unchanged.failed} failed" if unchanged.failed else ""),
        ),
        (
            f"{label}: the limit: bare sync-collection REPORT loop, REPORTs/s",
            f"{allowed:,.0f} (calsync reaches {unchanged.rate / allowed:.0%} of it)"
            + (f"; {failures} non-207 answers" if failures else ""),
        ),
        (
            f"{label}: CPU seconds per unchanged poll (all workers)",
            f"{cpu_per_poll * 1000:.2f} ms (1 worker: {one_cpu_per_poll * 1000:.2f} ms)",
        ),
        (
            f"{label}: database statements per unchanged poll",
            f"{statements:.2f} {'✓' if statements <= TARGET_STATEMENTS else '✗'} "
            f"(target ≤ {TARGET_STATEMENTS:.0f}; idle ticks and the worker's other jobs included)",
        ),
        (
            f"{label}: poll lag p50 / p99 at {steady.polls / steady.seconds:,.0f} polls/s offered",
            f"{pct(steady.lags, 50):.2f} s / {pct(steady.lags, 99):.2f} s "
            "(a due calendar waits for the next tick: tick_seconds = 5)",
        ),
        (
            f"{label}: peak RSS per worker, first sync / unchanged polls",
            f"{max(first.hwm_mib):.0f} / {max(unchanged.hwm_mib):.0f} MiB "
            f"{'✓' if max(unchanged.hwm_mib) <= TARGET_RSS_MIB else '✗'} "
            f"(target ≤ {TARGET_RSS_MIB:.0f} MiB)",
        ),
    ]
    if count > 1:
        cpu_efficiency = one_cpu_per_poll / cpu_per_poll
        rows.append(
            (
                f"{label}: scaling efficiency vs 1 worker, by rate / by CPU per poll",
                f"{efficiency:.0%} / {cpu_efficiency:.0%} "
                f"{'✓' if efficiency >= TARGET_EFFICIENCY else '✗'} "
                f"(target ≥ {TARGET_EFFICIENCY:.0%}; {os.cpu_count()} cores)",
            )
        )
    return rows
