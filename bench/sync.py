"""Benchmark: syncing a 2,000-event calendar from Radicale and from Xandikos through calsync.

Each server runs as a child process on loopback (started as the tests start them, see
``tests/support/servers.py``) and holds one calendar of 2,000 objects: ~80 % single events over the
next 90 days (a few all-day, a few marked free), ~20 % daily or weekly series ending by COUNT
or UNTIL, some with EXDATEs and moved occurrences, all in Europe/Berlin with a VTIMEZONE, the
way calendar apps write them. Seeded, so every run sees the same objects (dated from today).

calsync does the work through its own code: a SQLite database in a temporary directory,
``services.add_owner`` + ``services.add_caldav_calendar``, and ``Poller.sync_now``.

1. First full sync (sync-collection + calendar-multiget, expand, store), ``FIRST_SYNCS`` times,
   each into a new database and in a new worker process that reports its own peak RSS
   (VmHWM); a process that only imports the same modules gives the baseline. Its "fetch"
   (``changes_arriving``) includes expanding each part of the calendar while the next is read.
2. Incremental polls with no change and with one change (a plain PUT behind calsync's back),
   median of ``RUNS`` each. Requests are counted by the ``CalDAVProvider`` each poll used;
   "fetch" is the time in its ``changes`` call, the rest is database work and expansion.
3. The naive poll: caldav's ``calendar.search(start=now, end=now+90 days, event=True,
   expand=False)``, one calendar-query REPORT returning every object's data. caldav then
   parses every object again to re-check the time range on the client, so the REPORT's own
   time is shown too. Neither includes expansion or storage, so the ratios naive ÷ incremental
   (against the whole incremental poll) flatter the naive way.

Seeding: filling either server by PUT took 80-95 s here even with 8 threads, since a PUT's
cost grows with the collection (Radicale checks the new UID against every stored item,
Xandikos commits a new tree of the whole collection). So the objects are written into each
server's own storage while it is stopped: Radicale's filesystem layout (one ``<uid>.ics`` per
object in the collection folder, as its PUT writes them; a PROPFIND afterwards fills its item
cache, as the PUTs would have) and Xandikos's Git layout (files, index entries and a single
commit, where its PUT makes one commit per object). The calendars are made by MKCALENDAR
first; the one-change runs use plain PUT. Both servers end up with the same mirror (same event
and busy-interval counts), which is the check that the seeding is sound.

Figures only: nothing here asserts anything about speed. Progress goes to stderr.

Run: ``python -m bench sync``
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from caldav import DAVClient
from sqlalchemy import func, select

from calsync.bookings.polling import booking_poller
from calsync.calendars.base import CalendarProvider, Cursor, Delta, ETag, Href
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings, SyncSettings
from calsync.store.db import Database
from calsync.store.models import BusyInterval, CalendarConnection, MirroredEvent
from calsync.sync import connections as services
from calsync.sync.providers import open_provider

if TYPE_CHECKING:
    from tests.support.servers import ServerProcess

SEED = 20260302
EVENTS = 2_000
RUNS = 5
FIRST_SYNCS = 3
HORIZON_DAYS = 90
ZONE = "Europe/Berlin"
OWNER = "owner@example.org"
SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parents[1]

Rows = list[tuple[str, str]]

# -- the calendar ---------------------------------------------------------------------------------

VTIMEZONE = f"""BEGIN:VTIMEZONE
TZID:{ZONE}
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE""".splitlines()
WORDS = ("review", "planning", "client", "call", "design", "standup", "lunch", "demo", "gym")
WORDS += ("training", "coaching", "hiring", "budget", "roadmap", "dentist", "board", "yoga")


@dataclass(frozen=True, slots=True)
class Event:
    """One calendar object: its UID and iCalendar text (one VCALENDAR, one UID)."""

    uid: str
    ics: str
    series: bool


def _local(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _fold(line: str) -> str:
    """One content line, folded at 75 octets (the texts here are ASCII)."""
    parts = [line[:75]] + [" " + line[i : i + 74] for i in range(75, len(line), 74)]
    return "\r\n".join(parts) + "\r\n"


def _vcalendar(*vevents: list[str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//calsync//bench//EN", *VTIMEZONE]
    for vevent in vevents:
        lines += ["BEGIN:VEVENT", *vevent, "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) for line in lines)


def _properties(rng: random.Random, uid: str) -> list[str]:
    """What every VEVENT carries besides its times: text, sometimes guests, sometimes free."""
    summary = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).capitalize()
    stamp = "20260101T090000Z"
    lines = [f"UID:{uid}", f"DTSTAMP:{stamp}", f"CREATED:{stamp}", f"SUMMARY:{summary}"]
    if rng.random() < 0.5:
        lines.append("DESCRIPTION:" + " ".join(rng.choices(WORDS, k=rng.randint(5, 60))))
    if rng.random() < 0.3:
        lines.append(f"LOCATION:Room {rng.randint(1, 40)}")
    if rng.random() < 0.25:
        lines.append("ORGANIZER;CN=Owner:mailto:owner@example.org")
        lines += [
            f"ATTENDEE;PARTSTAT=ACCEPTED;CN=Guest {n}:mailto:guest{n}@example.org"
            for n in range(rng.randint(1, 4))
        ]
    if rng.random() < 0.08:
        lines.append("TRANSP:TRANSPARENT")
    return lines


def make_events(today: date, count: int = EVENTS, seed: int = SEED) -> list[Event]:
    """``count`` objects from ``today`` on: ~80 % single events (5 % of them all-day) over the
    next 90 days, ~20 % daily or weekly series ending by COUNT or UNTIL, of which ~30 % skip
    occurrences (EXDATE) and ~25 % move one or two (RECURRENCE-ID overrides)."""
    rng = random.Random(seed)
    zone = ZoneInfo(ZONE)
    events = []
    for n in range(count):
        uid = f"bench-{n:05d}@calsync.example"
        lines = _properties(rng, uid)
        day = today + timedelta(days=rng.randrange(HORIZON_DAYS))
        midnight = datetime.combine(day, datetime.min.time(), zone)
        if rng.random() < 0.8:
            if rng.random() < 0.05:
                end_day = day + timedelta(days=rng.randint(1, 3))
                lines += [f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{end_day:%Y%m%d}"]
            else:
                start = midnight + timedelta(minutes=rng.randrange(7 * 60, 19 * 60, 15))
                end = start + timedelta(minutes=rng.randrange(15, 181, 15))
                lines += [
                    f"DTSTART;TZID={ZONE}:{_local(start)}",
                    f"DTEND;TZID={ZONE}:{_local(end)}",
                ]
            events.append(Event(uid, _vcalendar(lines), series=False))
            continue
        start = midnight + timedelta(minutes=rng.randrange(8 * 60, 18 * 60, 30))
        length = timedelta(minutes=rng.choice((15, 30, 45, 60, 90)))
        daily = rng.random() < 0.5
        count_ = rng.randint(3, 40 if daily else 12)
        # The occurrences (same wall-clock time each day, across DST), to name real ones below.
        step = timedelta(days=1 if daily else 7)
        wall = [start.replace(tzinfo=None) + k * step for k in range(count_)]
        until = wall[-1].replace(tzinfo=zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        end_rule = f"COUNT={count_}" if rng.random() < 0.5 else f"UNTIL={until}"
        lines += [
            f"DTSTART;TZID={ZONE}:{_local(start)}",
            f"DTEND;TZID={ZONE}:{_local(start + length)}",
            f"RRULE:FREQ={'DAILY' if daily else 'WEEKLY'};{end_rule}",
        ]
        later = wall[1:]
        if rng.random() < 0.3:
            skipped = sorted(rng.sample(later, min(len(later), rng.randint(1, 3))))
            lines.append(f"EXDATE;TZID={ZONE}:" + ",".join(_local(m) for m in skipped))
            later = [m for m in later if m not in skipped]
        vevents = [lines]
        if later and rng.random() < 0.25:
            for moved in rng.sample(later, min(len(later), rng.randint(1, 2))):
                new_start = moved + timedelta(hours=rng.choice((-2, -1, 1, 2)))
                vevents.append(
                    [
                        *_properties(rng, uid),
                        f"RECURRENCE-ID;TZID={ZONE}:{_local(moved)}",
                        f"DTSTART;TZID={ZONE}:{_local(new_start)}",
                        f"DTEND;TZID={ZONE}:{_local(new_start + length)}",
                    ]
                )
        events.append(Event(uid, _vcalendar(*vevents), series=True))
    return events


def changed(event: Event, run: int) -> str:
    """The owner's edit of ``event``: a new title and a SEQUENCE, as their app would write."""
    return event.ics.replace("SUMMARY:", f"SEQUENCE:{run + 1}\r\nSUMMARY:Changed {run + 1}: ", 1)


# -- servers and seeding --------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench.sync] {message}", file=sys.stderr, flush=True)


@dataclass
class Served:
    """A running server with the seeded calendar."""

    name: str
    server: ServerProcess
    calendar_url: str

    @property
    def auth(self) -> tuple[str, str] | None:
        return self.server.auth


def seed_radicale(workdir: Path, events: list[Event]) -> Served:
    # tests.support.servers (and pytest with it) and dulwich are imported where used: the worker
    # process measured for memory imports this module and should load no more than calsync.
    from tests.support.servers import _radicale

    server = _radicale(workdir)
    server.start()
    try:
        return Served("Radicale", server, _fill_radicale(server, events))
    except BaseException:
        server.stop()
        raise


def _fill_radicale(server: ServerProcess, events: list[Event]) -> str:
    from tests.support.servers import USER, request

    # Radicale creates the principal collection on the first authenticated request.
    request("PROPFIND", f"{server.url}{USER}/", headers={"Depth": "0"}, auth=server.auth)
    url = server.new_calendar("bench")
    server.stop()
    folder = server.workdir / "storage" / "collection-root" / USER / "bench"
    for event in events:
        (folder / f"{event.uid}.ics").write_text(event.ics, encoding="utf-8", newline="")
    server.start()
    # Radicale parses each new file once and caches it, as a PUT would have done.
    started = time.perf_counter()
    propfind = b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    status, _ = request("PROPFIND", url, propfind, {"Depth": "1"}, auth=server.auth, timeout=300)
    if status != 207:
        raise RuntimeError(f"Radicale answered {status} to PROPFIND on the seeded calendar")
    say(f"Radicale: item cache filled in {time.perf_counter() - started:.1f} s")
    return url


def seed_xandikos(workdir: Path, events: list[Event]) -> Served:
    from tests.support.servers import _xandikos

    server = _xandikos(workdir)
    server.start()
    try:
        return Served("Xandikos", server, _fill_xandikos(server, events))
    except BaseException:
        server.stop()
        raise


def _fill_xandikos(server: ServerProcess, events: list[Event]) -> str:
    from dulwich.index import index_entry_from_stat, locked_index
    from dulwich.objects import Blob
    from dulwich.repo import Repo

    url: str = server.new_calendar("bench")
    server.stop()
    folder = server.workdir / "storage" / server.calendar_home.strip("/") / "bench"
    repo = Repo(str(folder))
    try:
        # What Xandikos's PUT does (file in the work tree, blob, index entry, commit), with
        # one commit for all objects instead of one each.
        with locked_index(repo.index_path()) as index:
            blobs = []
            for event in events:
                name = f"{event.uid}.ics"
                data = event.ics.encode("utf-8")
                (folder / name).write_bytes(data)
                blob = Blob.from_string(data)
                blobs.append((blob, None))
                index[name.encode()] = index_entry_from_stat(os.lstat(folder / name), blob.id)
            repo.object_store.add_objects(blobs)
            repo.get_worktree().commit(
                message=f"Import {len(events)} events".encode(),
                tree=index.commit(repo.object_store),
            )
    finally:
        repo.close()
    server.start()
    return url


def put(served: Served, event: Event, ics: str) -> None:
    from tests.support.servers import put_event

    put_event(served.calendar_url, ics, auth=served.auth)


# -- measuring calsync ----------------------------------------------------------------------------


def make_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        sync=SyncSettings(horizon_days=HORIZON_DAYS, poll_jitter_seconds=0),
    )


@dataclass
class Traffic:
    """HTTP seen on one client session: answers, bytes received, time spent waiting."""

    requests: int = 0
    received: int = 0
    seconds: float = 0.0


def watch(session: Any) -> Traffic:
    """Count what goes through a caldav client's (niquests) ``session.request`` from now on."""
    traffic = Traffic()
    send = session.request

    def request(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = send(*args, **kwargs)
        traffic.seconds += time.perf_counter() - started
        traffic.requests += 1
        traffic.received += len(response.content or b"")
        return response

    session.request = request
    return traffic


@dataclass
class PollLog:
    """One entry per poll made through ``recording_factory``: the requests its provider sent
    (``CalDAVProvider.request_count``), the bytes it received, and the time spent in
    ``changes``, the network part of a poll (the rest is database work and expansion), or in
    ``changes_arriving`` for a first sync (with the expansion of what arrives meanwhile)."""

    requests: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    fetch_seconds: list[float] = field(default_factory=list)


def recording_factory(settings: Settings, log: PollLog) -> Callable[..., CalendarProvider]:
    """calsync's own provider factory, noting in ``log`` what each provider it opens did."""
    open_ = open_provider(settings)

    def factory(connection: CalendarConnection) -> CalendarProvider:
        provider = open_(connection)
        assert isinstance(provider, CalDAVProvider)
        traffic = watch(provider._client.session)  # bench only: for the bytes received
        changes = provider.changes

        def timed_changes(cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
            started = time.perf_counter()
            try:
                return changes(cursor, known)
            finally:
                log.fetch_seconds.append(time.perf_counter() - started)
                log.requests.append(provider.request_count)
                log.received.append(traffic.received)

        provider.changes = timed_changes  # type: ignore[method-assign]
        # A first sync asks for its items as they arrive (calsync before issue 14 had no
        # changes_arriving: its polls all went through ``changes``).
        arriving = getattr(provider, "changes_arriving", None)
        if arriving is not None:

            def timed_arriving(
                cursor: Cursor | None, known: Mapping[Href, ETag], *args: Any
            ) -> Delta:
                started = time.perf_counter()
                try:
                    return arriving(cursor, known, *args)  # type: ignore[no-any-return]
                finally:
                    log.fetch_seconds.append(time.perf_counter() - started)
                    log.requests.append(provider.request_count)
                    log.received.append(traffic.received)

            provider.changes_arriving = timed_arriving  # type: ignore[method-assign]
        return provider

    return factory


def _vm(key: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: now, VmHWM: peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def worker(argv: list[str]) -> None:
    """Child process entry: ``imports`` reports memory after imports only; ``sync DB_URL ID``
    does calsync's first sync of calendar ID and reports time, requests and memory (JSON)."""
    report: dict[str, Any] = {"imported_kib": _vm("VmHWM")}
    if argv[0] == "sync":
        settings = make_settings(argv[1])
        log = PollLog()
        poller = booking_poller(
            Database(argv[1]), settings, provider_factory=recording_factory(settings, log)
        )
        started = time.perf_counter()
        (result,) = poller.sync_now([int(argv[2])])
        report |= {
            "seconds": time.perf_counter() - started,
            "error": result.error,
            "upserted": result.upserted,
            "problems": result.problems,
            "requests": log.requests[0],
            "received": log.received[0],
            "fetch_seconds": log.fetch_seconds[0],
        }
    report["hwm_kib"] = _vm("VmHWM")
    print(json.dumps(report))


def in_worker(*args: str, cwd: Path) -> dict[str, Any]:
    """Run ``worker(args)`` in a fresh Python process and return its report."""
    code = "import sys; from bench.sync import worker; worker(sys.argv[1:])"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,  # away from any calsync.toml in the repository
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def size(n: float) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


@dataclass(frozen=True, slots=True)
class NaivePoll:
    seconds: float
    traffic: Traffic
    objects: int


def naive_poll(served: Served) -> NaivePoll:
    """The horizon listed again with caldav's time-range search, returning full data."""
    username, password = served.auth or (None, None)
    client = DAVClient(
        url=served.calendar_url,
        username=username,
        password=password,
        auth_type="basic" if username else None,  # as calsync does: no 401 round trip
        enable_rfc6764=False,
    )
    try:
        traffic = watch(client.session)
        calendar = client.calendar(url=served.calendar_url)
        now = datetime.now(UTC)
        started = time.perf_counter()
        found = calendar.search(
            start=now, end=now + timedelta(days=HORIZON_DAYS), event=True, expand=False
        )
        return NaivePoll(time.perf_counter() - started, traffic, len(found))
    finally:
        client.close()


def mirror_counts(db: Database, connection_id: int) -> tuple[int, int]:
    """How many events and busy intervals calsync holds for the calendar."""
    with db.reading() as session:
        events = session.scalar(
            select(func.count()).where(MirroredEvent.connection_id == connection_id)
        )
        intervals = session.scalar(
            select(func.count()).where(BusyInterval.connection_id == connection_id)
        )
    return int(events or 0), int(intervals or 0)


@dataclass
class Connected:
    """calsync's side of one benchmark: its database, settings and the calendar's id."""

    database_url: str
    settings: Settings
    db: Database
    connection_id: int
    #: label → (median seconds, median bytes received) of the incremental polls
    poll_medians: dict[str, tuple[float, float]] = field(default_factory=dict)


def connect(served: Served, database: Path) -> Connected:
    """A fresh SQLite database with an owner and the served calendar, added as a user would."""
    database_url = f"sqlite:///{database}"
    settings = make_settings(database_url)
    db = Database(database_url)
    db.migrate()
    services.add_owner(db, name="Owner", email=OWNER, timezone=ZONE)
    username, password = served.auth or (None, None)
    (connection,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, served.calendar_url, username, password)
    )
    return Connected(database_url, settings, db, connection.id)


def polls(
    calsync: Connected, count: int, before: Callable[[int], None] | None = None
) -> tuple[list[float], PollLog]:
    """``count`` timed ``Poller.sync_now`` calls, each after ``before(run)``."""
    log = PollLog()
    factory = recording_factory(calsync.settings, log)
    poller = booking_poller(calsync.db, calsync.settings, provider_factory=factory)
    seconds = []
    try:
        for run in range(count):
            if before is not None:
                before(run)
            started = time.perf_counter()
            (result,) = poller.sync_now([calsync.connection_id])
            seconds.append(time.perf_counter() - started)
            if result.error:
                raise RuntimeError(f"poll failed: {result.error}")
    finally:
        poller.stop()
    return seconds, log


def measure(served: Served, events: list[Event], workdir: Path) -> Rows:
    rows, calsync = first_syncs(served, workdir)
    try:
        rows += incremental_polls(served, events, calsync)
    finally:
        calsync.db.dispose()
    return rows + naive_polls(served, calsync.poll_medians)


def first_syncs(served: Served, workdir: Path) -> tuple[Rows, Connected]:
    """``FIRST_SYNCS`` first syncs, each into a new database by a new worker process; the
    last database is returned for the polls."""
    name, firsts = served.name, []
    calsync: Connected | None = None
    for run in range(FIRST_SYNCS):
        if calsync is not None:
            calsync.db.dispose()
        calsync = connect(served, workdir / f"calsync-{run}.db")
        say(f"{name}: first sync {run + 1}/{FIRST_SYNCS} in a worker process")
        first = in_worker("sync", calsync.database_url, str(calsync.connection_id), cwd=workdir)
        if first["error"]:
            raise RuntimeError(f"{name}: first sync failed: {first['error']}")
        firsts.append(first)
    assert calsync is not None
    mirrored, intervals = mirror_counts(calsync.db, calsync.connection_id)
    times = sorted(f["seconds"] for f in firsts)
    peak = max(firsts, key=lambda f: f["hwm_kib"])
    requests = "/".join(sorted({str(f["requests"]) for f in firsts}))
    rows = [
        (
            f"{name}: first sync, fetch + expand + store, median of {FIRST_SYNCS}",
            f"{median(times):.2f} s = {EVENTS / median(times):,.0f} events/s "
            f"(of which fetch {median([f['fetch_seconds'] for f in firsts]):.2f} s; "
            f"range {times[0]:.2f}-{times[-1]:.2f} s)",
        ),
        (
            f"{name}: first sync, HTTP requests / bytes received",
            f"{requests} / {size(median([f['received'] for f in firsts]))}",
        ),
        (
            f"{name}: mirrored after first sync",
            f"{mirrored:,} events ({firsts[-1]['problems']} unreadable), "
            f"{intervals:,} busy intervals",
        ),
        (
            f"{name}: first sync worker peak RSS (VmHWM), highest of {FIRST_SYNCS}",
            f"{peak['hwm_kib'] / 1024:.0f} MiB "
            f"(+{(peak['hwm_kib'] - peak['imported_kib']) / 1024:.0f} MiB over its imports)",
        ),
    ]
    return rows, calsync


def incremental_polls(served: Served, events: list[Event], calsync: Connected) -> Rows:
    """Polls with no change, then with one change each; notes their median times in
    ``calsync.poll_medians`` for the comparison with the naive way."""
    name = served.name

    def change_one(run: int) -> None:
        event = events[run * 7]
        put(served, event, changed(event, run))

    say(f"{name}: incremental polls")
    polls(calsync, 1)  # warm-up: this process's first poll pays for lazy imports and caches
    rows = []
    for label, before in (("0 changes", None), ("1 change", change_one)):
        seconds, log = polls(calsync, RUNS, before)
        calsync.poll_medians[label] = (median(seconds), median(log.received))
        requests = "/".join(sorted({str(n) for n in log.requests}))
        rows += [
            (
                f"{name}: incremental poll, {label}: Poller.sync_now, median of {RUNS}",
                f"{ms(median(seconds))} (of which fetch {ms(median(log.fetch_seconds))})",
            ),
            (
                f"{name}: incremental poll, {label}: HTTP requests / bytes received",
                f"{requests} / {size(median(log.received))}",
            ),
        ]
    events_, intervals = mirror_counts(calsync.db, calsync.connection_id)
    rows.append(
        (f"{name}: mirrored after the polls", f"{events_:,} events, {intervals:,} busy intervals")
    )
    return rows


def naive_polls(served: Served, incremental: dict[str, tuple[float, float]]) -> Rows:
    """The naive way ``RUNS`` times, and how it compares with the incremental polls."""
    name = served.name
    say(f"{name}: naive polls")
    naive = [naive_poll(served) for _ in range(RUNS)]
    seconds = median([n.seconds for n in naive])
    report = median([n.traffic.seconds for n in naive])
    received = median([n.traffic.received for n in naive])
    requests = "/".join(sorted({str(n.traffic.requests) for n in naive}))
    rows = [
        (
            f"{name}: naive poll (caldav search: 90-day calendar-query), median of {RUNS}",
            f"{ms(seconds)}, of which the REPORT {ms(report)} (no expansion, no storage)",
        ),
        (
            f"{name}: naive poll: HTTP requests / bytes received / objects",
            f"{requests} / {size(received)} / {naive[-1].objects:,}",
        ),
    ]
    for label, (poll_s, poll_received) in incremental.items():
        rows.append(
            (
                f"{name}: naive ÷ incremental poll, {label}: time (search / REPORT) / bytes",
                f"{seconds / poll_s:,.0f}× / {report / poll_s:,.1f}× / "
                f"{received / poll_received:,.0f}×",
            )
        )
    return rows


@contextmanager
def serving(
    seed: Callable[[Path, list[Event]], Served], workdir: Path, events: list[Event]
) -> Iterator[Served]:
    """The seeded server, stopped at the end whatever happens."""
    served = seed(workdir, events)
    try:
        yield served
    finally:
        served.server.stop()


def run() -> Rows:
    """Rows of (label, figure) for Radicale and Xandikos."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    events = make_events(today)
    series = sum(e.series for e in events)
    exdates = sum("EXDATE" in e.ics for e in events)
    moved = sum("RECURRENCE-ID" in e.ics for e in events)
    rows = [
        (
            "calendar on each server",
            f"{EVENTS:,} objects: {EVENTS - series:,} single, {series} series "
            f"({exdates} with EXDATE, {moved} with moved occurrences), "
            f"{size(sum(len(e.ics) for e in events))}",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="calsync-bench-") as tmp:
        base = Path(tmp)
        baseline = in_worker("imports", cwd=base)
        rows.append(
            (
                "baseline: peak RSS of a worker process that only imports calsync",
                f"{baseline['hwm_kib'] / 1024:.0f} MiB",
            )
        )
        for seed in (seed_radicale, seed_xandikos):
            workdir = base / seed.__name__
            workdir.mkdir()
            say(f"{seed.__name__}: writing {EVENTS:,} events")
            with serving(seed, workdir, events) as served:
                rows += measure(served, events, workdir)
    return rows
