"""Benchmark: syncing a 2,000-event Google calendar through calsync, against the local fake.

The fake Google Calendar v3 (``calsync.testing.google_fake``) runs on loopback in this process
and holds one primary calendar of 2,000 events, seeded directly in memory with
``owner_insert``: 1,600 single timed events over the next 90 days and 400 weekly series
(``RRULE:FREQ=WEEKLY;COUNT=n``), about a quarter of them with a cancelled instance and about a
quarter with a moved one, as Google stores them (exception events with ``recurringEventId``
and ``originalStartTime``), all in Europe/Berlin. Seeded, so every run sees the same events
(dated from today).

calsync does the work through its own code and the real google-api-python-client: a SQLite
database in a temporary directory, ``services.add_owner`` + ``services.add_google_calendar``
(a token JSON whose ``token_uri`` is the fake's), and ``Poller.sync_now``.

1. First sync (events.list pages, grouping into masters + exceptions, rendering, expansion,
   storage), ``FIRST_SYNCS`` times, each into a new database; then once more under
   ``tracemalloc`` for the peak of Python allocations (every thread: the fake's too).
2. Incremental polls (``syncToken``) with no change, with one single event patched by the
   owner (``owner_patch``), and with one series master patched (its group is re-read:
   events.get + events.list by iCalUID); median of ``RUNS`` each, after one warm-up poll.
3. The full re-listing: a poll after ``expire_sync_tokens()``, so the syncToken request is
   answered 410 ``fullSyncRequired`` and calsync lists the whole calendar again (nothing has
   changed, so nothing is stored). Median of ``RUNS``, compared with the incremental poll.

Requests are the API requests the fake logged (``fake.requests``); token refreshes (POST /token,
counted apart) happen once per grant and hour, as calsync keeps access tokens (the first of
the first syncs pays it). Bytes are the API answers' bodies as the client
received them (uncompressed JSON). The fake runs in this process and shares the GIL, so its
own work (deep copies, JSON encoding) is inside the times, where Google's would be network
latency; "fetch" is the time in the provider's ``changes`` call, the rest is database work and
expansion.

Figures only: nothing here asserts anything about speed. Progress goes to stderr.

Run: ``python -m bench google_sync``
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from bench.sync import mirror_counts
from calsync.bookings.polling import booking_poller
from calsync.calendars.base import CalendarProvider, Cursor, Delta, ETag, Href
from calsync.calendars.google import account as google_connect
from calsync.calendars.google.provider import GoogleProvider
from calsync.config import GoogleSettings, Settings, SyncSettings
from calsync.store.db import Database
from calsync.store.models import CalendarConnection
from calsync.sync import connections as services
from calsync.sync.poller import PollResult
from calsync.sync.providers import open_provider
from calsync.testing.google_fake import FakeGoogle

SEED = 20260302
SINGLES = 1_600
SERIES = 400
EVENTS = SINGLES + SERIES
RUNS = 5
FIRST_SYNCS = 3
HORIZON_DAYS = 90
ZONE = "Europe/Berlin"
OWNER = "owner@example.org"
SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"
WORDS = ("review", "planning", "client", "call", "design", "standup", "lunch", "demo", "gym")
WORDS += ("training", "coaching", "hiring", "budget", "roadmap", "dentist", "board", "yoga")

Rows = list[tuple[str, str]]
Body = dict[str, Any]

# -- the calendar ---------------------------------------------------------------------------------


@dataclass
class Calendar:
    """The Google JSON bodies to seed: each master (or single event) with its exceptions."""

    groups: list[tuple[Body, list[Body]]] = field(default_factory=list)

    @property
    def exceptions(self) -> list[Body]:
        return [e for _, exceptions in self.groups for e in exceptions]


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.isoformat(), "timeZone": ZONE}


def _details(rng: random.Random) -> Body:
    """What an event carries besides its times: text, sometimes guests, sometimes free."""
    body: Body = {
        "summary": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).capitalize()
    }
    if rng.random() < 0.5:
        body["description"] = " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))
    if rng.random() < 0.3:
        body["location"] = f"Room {rng.randint(1, 40)}"
    if rng.random() < 0.25:
        body["organizer"] = {"email": OWNER, "self": True}
        body["attendees"] = [
            {"email": OWNER, "self": True, "organizer": True, "responseStatus": "accepted"}
        ] + [
            {"email": f"guest{n}@example.org", "responseStatus": "accepted"}
            for n in range(rng.randint(1, 4))
        ]
    if rng.random() < 0.08:
        body["transparency"] = "transparent"
    return body


def make_calendar(today: date, seed: int = SEED) -> Calendar:
    """``SINGLES`` timed events over the next 90 days, then ``SERIES`` weekly series of 4-12
    occurrences starting in the next four weeks; ~25 % of the series have one occurrence
    cancelled and ~25 % one moved by an hour or two (exception events, ids as Google makes
    them: the master's id, ``_``, the original start in UTC)."""
    rng = random.Random(seed)
    zone = ZoneInfo(ZONE)
    calendar = Calendar()
    for n in range(EVENTS):
        event_id = f"bench{n:05d}"
        series = n >= SINGLES
        day = today + timedelta(days=rng.randrange(28 if series else HORIZON_DAYS))
        midnight = datetime.combine(day, datetime.min.time(), zone)
        start = midnight + timedelta(minutes=rng.randrange(7 * 60, 19 * 60, 15))
        length = timedelta(minutes=rng.randrange(15, 181, 15))
        master = {
            "id": event_id,
            **_details(rng),
            "start": _when(start),
            "end": _when(start + length),
        }
        exceptions: list[Body] = []
        if series:
            count = rng.randint(4, 12)
            master["recurrence"] = [f"RRULE:FREQ=WEEKLY;COUNT={count}"]
            # The later occurrences, same wall-clock time each week (across DST).
            later = [
                (start.replace(tzinfo=None) + timedelta(weeks=k)).replace(tzinfo=zone)
                for k in range(1, count)
            ]
            picked = rng.sample(later, 2)
            if rng.random() < 0.25:
                exceptions.append({**_instance(master, picked[0]), "status": "cancelled"})
            if rng.random() < 0.25:
                moved = picked[1] + timedelta(hours=rng.choice((-2, -1, 1, 2)))
                exceptions.append(
                    {
                        **_instance(master, picked[1]),
                        "summary": f"{master['summary']} (moved)",
                        "start": _when(moved),
                        "end": _when(moved + length),
                    }
                )
        calendar.groups.append((master, exceptions))
    return calendar


def _instance(master: Body, original: datetime) -> Body:
    """The identity of one occurrence of ``master``, as Google names it."""
    return {
        "id": f"{master['id']}_{original.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        "recurringEventId": master["id"],
        "iCalUID": f"{master['id']}@google.com",
        "originalStartTime": _when(original),
    }


def seed(fake: FakeGoogle, calendar: Calendar) -> None:
    for master, exceptions in calendar.groups:
        fake.owner_insert(master)
        for exception in exceptions:
            fake.owner_insert(exception)


# -- measuring calsync ----------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench.google_sync] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def size(n: float) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


@dataclass
class Traffic:
    """What one poll sent and received, and how long it spent in ``changes``."""

    requests: int = 0
    tokens: int = 0
    received: int = 0
    fetch_seconds: float = 0.0
    seconds: float = 0.0
    result: PollResult | None = None


class Meter:
    """Counts the fake's API requests and token refreshes, and the bytes and fetch time of
    every provider that ``factory`` opens, for the poll going on. One per fake."""

    def __init__(self, fake: FakeGoogle) -> None:
        self.fake = fake
        self.current = Traffic()

    def factory(self, settings: Settings) -> Callable[[CalendarConnection], CalendarProvider]:
        open_ = open_provider(settings)

        def factory(connection: CalendarConnection) -> CalendarProvider:
            provider = open_(connection)
            assert isinstance(provider, GoogleProvider)
            http = provider.service._http  # bench only: the client's AuthorizedHttp
            request, changes = http.request, provider.changes

            def counted(*args: Any, **kwargs: Any) -> Any:
                response, content = request(*args, **kwargs)
                self.current.received += len(content or b"")
                return response, content

            def timed(cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
                started = time.perf_counter()
                try:
                    return changes(cursor, known)
                finally:
                    self.current.fetch_seconds += time.perf_counter() - started

            http.request = counted
            provider.changes = timed  # type: ignore[method-assign]
            return provider

        return factory

    def poll(self, calsync: Connected, before: Callable[[], None] | None = None) -> Traffic:
        """One timed ``Poller.sync_now`` of the calendar, after ``before()``."""
        if before is not None:
            before()
        self.current = traffic = Traffic()
        poller = booking_poller(
            calsync.db, calsync.settings, provider_factory=self.factory(calsync.settings)
        )
        requests, tokens = len(self.fake.requests), self.fake.token_refreshes
        try:
            started = time.perf_counter()
            (traffic.result,) = poller.sync_now([calsync.connection_id])
            traffic.seconds = time.perf_counter() - started
        finally:
            poller.stop()
        if traffic.result.error:
            raise RuntimeError(f"poll failed: {traffic.result.error}")
        traffic.requests = len(self.fake.requests) - requests
        traffic.tokens = self.fake.token_refreshes - tokens
        return traffic


@dataclass
class Connected:
    """calsync's side: its database, settings and the Google calendar's connection id."""

    settings: Settings
    db: Database
    connection_id: int


def connect(fake: FakeGoogle, database: Path) -> Connected:
    """A fresh SQLite database with an owner and the fake's primary calendar, added as the
    CLI adds it from a token file."""
    database_url = f"sqlite:///{database}"
    settings = Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        sync=SyncSettings(horizon_days=HORIZON_DAYS, poll_jitter_seconds=0),
        google=GoogleSettings(api_endpoint=fake.endpoint),
    )
    db = Database(database_url)
    db.migrate()
    services.add_owner(db, name="Owner", email=OWNER, timezone=ZONE)
    token = {
        "token": "expired-access-token",
        "refresh_token": "bench-refresh-token",
        "client_id": "client-id.apps.googleusercontent.com",
        "client_secret": "client-secret",
        "token_uri": fake.token_uri,
        "scopes": list(google_connect.SCOPES),
    }
    connection = services.add_google_calendar(
        db, settings, OWNER, credentials_json=json.dumps(token)
    )
    return Connected(settings, db, connection.id)


def first_syncs(meter: Meter, workdir: Path) -> tuple[Rows, Connected]:
    """``FIRST_SYNCS`` timed first syncs and one under tracemalloc, each into a new database;
    the last timed one's database is returned for the polls."""
    firsts: list[Traffic] = []
    kept: Connected | None = None
    for run in range(FIRST_SYNCS + 1):
        traced = run == FIRST_SYNCS
        calsync = connect(meter.fake, workdir / f"calsync-{run}.db")
        say(f"first sync {run + 1}/{FIRST_SYNCS + 1}{' (tracemalloc)' if traced else ''}")
        if traced:
            tracemalloc.start()
        try:
            first = meter.poll(calsync)
            if traced:
                _, peak = tracemalloc.get_traced_memory()
        finally:
            if traced:
                tracemalloc.stop()
        if traced:
            calsync.db.dispose()
            traced_seconds = first.seconds
        else:
            firsts.append(first)
            if kept is not None:
                kept.db.dispose()
            kept = calsync
    assert kept is not None
    mirrored, intervals = mirror_counts(kept.db, kept.connection_id)
    times = sorted(f.seconds for f in firsts)
    upserted = "/".join(sorted({f"{f.result.upserted:,}" for f in firsts if f.result}))
    rows = [
        (
            f"first sync (Poller.sync_now), fetch + expand + store, median of {FIRST_SYNCS}",
            f"{median(times):.2f} s = {EVENTS / median(times):,.0f} events/s "
            f"(of which fetch {median(f.fetch_seconds for f in firsts):.2f} s; "
            f"range {times[0]:.2f}-{times[-1]:.2f} s)",
        ),
        (
            "first sync: API requests / token refreshes / bytes received",
            f"{_same(f.requests for f in firsts)} / {_same(f.tokens for f in firsts)} / "
            f"{size(median(f.received for f in firsts))}",
        ),
        (
            "mirrored after first sync",
            f"{upserted} groups stored, {mirrored:,} events, {intervals:,} busy intervals",
        ),
        (
            "first sync: peak Python memory (tracemalloc: all threads incl. the fake; no SQLite C)",
            f"{peak / 1024 / 1024:.0f} MiB (a separate first sync; it took "
            f"{traced_seconds:.2f} s traced)",
        ),
    ]
    return rows, kept


def _same(values: Any) -> str:
    """Figures that should not vary between runs: one value, or every value seen."""
    return "/".join(str(v) for v in sorted(set(values)))


def polls(meter: Meter, calsync: Connected, calendar: Calendar) -> Rows:
    fake = meter.fake
    singles = [master for master, exceptions in calendar.groups if "recurrence" not in master]
    series = [master for master, exceptions in calendar.groups if exceptions]

    def patch(events: list[Body], what: str) -> Callable[[int], Callable[[], None]]:
        def before(run: int) -> Callable[[], None]:
            event = events[run * 7]
            return lambda: fake.owner_patch(event["id"], {"summary": f"Changed {what} {run}"})

        return before

    say("incremental polls")
    meter.poll(calsync)  # warm-up: caches and lazy imports of the first poll in this Poller
    kinds: list[tuple[str, Callable[[int], Callable[[], None]] | None]] = [
        ("0 changes", None),
        ("1 single event patched by the owner", patch(singles, "single")),
        ("1 series master patched by the owner", patch(series, "series")),
        ("full re-listing (syncToken → 410 fullSyncRequired)", lambda run: fake.expire_sync_tokens),
    ]
    rows: Rows = []
    measured: dict[str, list[Traffic]] = {}
    for label, before in kinds:
        runs = [meter.poll(calsync, before(run) if before else None) for run in range(RUNS)]
        measured[label] = runs
        upserted = _same(r.result.upserted for r in runs if r.result)
        full = _same("full" if r.result and r.result.full else "delta" for r in runs)
        rows += [
            (
                f"poll, {label}: Poller.sync_now, median of {RUNS}",
                f"{ms(median(r.seconds for r in runs))} "
                f"(of which fetch {ms(median(r.fetch_seconds for r in runs))}; "
                f"{full}, {upserted} stored)",
            ),
            (
                f"poll, {label}: API requests / token refreshes / bytes received",
                f"{_same(r.requests for r in runs)} / {_same(r.tokens for r in runs)} / "
                f"{size(median(r.received for r in runs))}",
            ),
        ]
    full = measured[kinds[-1][0]]
    for label, _ in kinds[:2]:
        runs = measured[label]
        rows.append(
            (
                f"full re-listing ÷ incremental poll, {label}: time / requests / bytes",
                f"{median(r.seconds for r in full) / median(r.seconds for r in runs):,.0f}× / "
                f"{median(r.requests for r in full) / median(r.requests for r in runs):,.0f}× / "
                f"{median(r.received for r in full) / median(r.received for r in runs):,.0f}×",
            )
        )
    events_, intervals = mirror_counts(calsync.db, calsync.connection_id)
    rows.append(("mirrored after the polls", f"{events_:,} events, {intervals:,} busy intervals"))
    return rows


def run() -> Rows:
    """Rows of (label, figure) for calsync against the fake Google Calendar."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    calendar = make_calendar(today)
    exceptions = calendar.exceptions
    cancelled = sum(e.get("status") == "cancelled" for e in exceptions)
    with FakeGoogle() as fake:
        seed(fake, calendar)
        listed = len(json.dumps([b for m, e in calendar.groups for b in (m, *e)]))
        rows = [
            (
                "calendar on the fake Google",
                f"{EVENTS:,} events: {SINGLES:,} single, {SERIES} weekly series "
                f"({cancelled} with a cancelled instance, {len(exceptions) - cancelled} with a "
                f"moved one); {EVENTS + len(exceptions):,} Google events, {size(listed)} of JSON "
                "as seeded",
            ),
        ]
        with tempfile.TemporaryDirectory(prefix="calsync-bench-google-") as tmp:
            meter = Meter(fake)
            first, calsync = first_syncs(meter, Path(tmp))
            rows += first
            try:
                rows += polls(meter, calsync, calendar)
            finally:
                calsync.db.dispose()
    return rows
