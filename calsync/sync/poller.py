"""The poller: keeps every connected calendar's mirror current, in one or many processes.

A tick claims due calendars with a database lease, polls them on a thread pool, and stores
each delta together with its new cursor in one transaction that first checks the lease is
still ours (a fence: a worker that stalled past its lease must not overwrite the work of the
worker that took over). APScheduler drives the ticks, each run scheduling the next, so two
never overlap; its job store lives in memory and is never shared between processes.

The poller knows calendars, not bookings: what bookings do with a stored poll (an owner's own
move or delete of a booked event, adopting new matching events) comes in as ``PollHooks``
(``calsync.bookings.polling`` wires them).

A customer's request polls too (``fresh_busy``), but stores the mirror and nothing else: what
its delta brought in is noted (``MirrorFollowUp``) and the worker's next poll of the calendar
looks at it for the owner's moves and for adoption, as if it had brought it in itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import (
    Connection,
    Table,
    Update,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload

from calsync.calendars.base import CalendarItem, CalendarProvider, Delta, Interval
from calsync.calendars.errors import AuthFailed, CursorExpired, GrantRevoked, ProviderError
from calsync.config import Settings
from calsync.notify import owner_notices
from calsync.observe import metrics
from calsync.observe.logs import log_context
from calsync.store import leases
from calsync.store.db import Database, unreachable
from calsync.store.models import (
    AdoptionRule,
    Base,
    CalendarConnection,
    ConnectionStatus,
    MirroredEvent,
    MirrorFollowUp,
    SyncOutcome,
    SyncRun,
    utcnow,
)
from calsync.sync import mirror
from calsync.sync.connections import ServiceError
from calsync.sync.providers import ProviderFactory, ProviderOpener, open_provider

log = logging.getLogger(__name__)

# Busy time is kept from a day back (events in progress) to the horizon; it is re-expanded
# from the stored data when the horizon has moved on by this much.
LOOKBACK = timedelta(days=1)
REEXPAND_AFTER = timedelta(hours=12)
# How much further than the window at its start a full read expands the items it gets, so
# that the window at its end (read from the clock then) lies inside: longer reads expand again.
EARLY_SLACK = timedelta(hours=1)

Progress = Callable[[str, int, int], None]
#: Calendars a tick's batch claims, in rounds of ``max_parallel_polls``. More would hold the
#: last calendars' leases longer before their polls start (a round of polls that all time out
#: takes ``request_timeout_seconds``; the lease is ``lease_seconds``, 4 times that by default).
BATCH_ROUNDS = 2
#: How long the unchanged polls a batch has done wait to be stored while another of its polls
#: is still running.
FLUSH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one poll brought back, expanded and ready to store."""

    expanded: list[mirror.ExpandedItem]
    changed: int  # how many of ``expanded`` came from the server (the rest were re-expanded)
    removed: list[str]
    cursor: str | None
    full: bool
    window: Interval
    reexpanded: bool


@dataclass(frozen=True, slots=True)
class PollResult:
    connection_id: int
    outcome: SyncOutcome
    upserted: int = 0
    removed: int = 0
    full: bool = False
    problems: int = 0
    error: str | None = None


class StoredHook(Protocol):
    def __call__(
        self,
        session: Session,
        settings: Settings,
        connection_id: int,
        changed: Sequence[mirror.ExpandedItem],
        removed: Iterable[str],
    ) -> object: ...


class ArrivedHook(Protocol):
    def __call__(
        self,
        db: Database,
        settings: Settings,
        connection_id: int,
        *,
        hrefs: Collection[str] | None = None,
        provider_factory: ProviderFactory | None = None,
    ) -> Sized: ...


class RecoveredHook(Protocol):
    def __call__(self, session: Session, connection_id: int, now: datetime) -> object: ...


@dataclass(frozen=True, slots=True)
class PollHooks:
    """What follows a stored poll. ``stored`` runs inside the poll's transaction with the
    items that changed and the hrefs removed; ``arrived`` runs after it, on calendars that adopt
    events, with the hrefs this poll brought in, and returns what it adopted; ``recovered``
    runs inside the transaction of the first good poll after failed ones (the calendar answers
    again: work that was waiting for it need not wait out its backoff)."""

    stored: StoredHook
    arrived: ArrivedHook
    recovered: RecoveredHook | None = None


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Poller:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        worker_id: str | None = None,
        provider_factory: ProviderFactory | None = None,
        clock: Callable[[], datetime] = utcnow,
        hooks: PollHooks | None = None,
    ) -> None:
        self.db = db
        self.hooks = hooks
        self.settings = settings
        self.sync = settings.sync
        self.worker_id = worker_id or default_worker_id()
        self.open_provider = provider_factory or open_provider(settings)
        self.clock = clock
        # Made by the first tick: a request-time refresh uses a Poller without any thread.
        self._pool: ThreadPoolExecutor | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._batch_size = self.sync.max_parallel_polls * BATCH_ROUNDS
        self._stopping = threading.Event()
        self.on_result: Callable[[PollResult], None] | None = None
        # The batch's unchanged polls, stored together after it (``_store_unchanged_batch``).
        self._unstored: list[_Unstored] = []
        self._unstored_lock = threading.Lock()

    # -- leases -------------------------------------------------------------------------

    def claim_due(self, limit: int, only: Iterable[int] | None = None) -> list[int]:
        """Lease up to ``limit`` calendars that are due (or, with ``only``, those if free)."""
        with self.db.writing() as session:
            return self._claim(session, limit, only)

    def _claim(self, session: Session, limit: int, only: Iterable[int] | None) -> list[int]:
        now = self.clock()
        if only is None:
            # A revoked Google grant cannot come back by itself: polling waits for the
            # owner to connect again (an explicit `calsync sync --calendar` still tries).
            where = [
                CalendarConnection.next_poll_at <= now,
                CalendarConnection.status != ConnectionStatus.NEEDS_RECONNECT,
            ]
        else:
            where = [CalendarConnection.id.in_(list(only))]
        ids = leases.claim(
            session,
            CalendarConnection,
            now=now,
            lease=timedelta(seconds=self.sync.lease_seconds),
            limit=limit,
            where=where,
            order_by=[CalendarConnection.next_poll_at],
            owner=self.worker_id,
        )
        return ids

    def _claim_loaded(self, limit: int) -> list[CalendarConnection]:
        """``claim_due`` and ``_load_many`` in one transaction (one less per batch)."""
        with self.db.writing() as session:
            ids = self._claim(session, limit, None)
            if not ids:
                return []
            return self._loaded(session, ids)

    def _holds_lease(self, session: Session, connection_id: int) -> CalendarConnection | None:
        return session.scalars(
            select(CalendarConnection)
            .options(joinedload(CalendarConnection.owner))
            .where(
                CalendarConnection.id == connection_id,
                CalendarConnection.lease_owner == self.worker_id,
            )
            # Lock only the connection row (the owner is joined outer, which cannot be locked).
            .with_for_update(of=CalendarConnection)
        ).one_or_none()

    def _next_poll(self, now: datetime, failures: int) -> datetime:
        interval = timedelta(seconds=self.sync.poll_interval_seconds)
        return now + leases.backoff(
            failures,
            base=interval,
            # The cap bounds the backoff only: a calendar that polls fine waits its interval.
            cap=timedelta(seconds=self.sync.max_backoff_seconds) if failures else interval,
            jitter=timedelta(seconds=self.sync.poll_jitter_seconds),
        )

    # -- one poll -------------------------------------------------------------------------

    def poll(self, connection_id: int, progress: Progress | None = None) -> PollResult:
        """Poll one calendar whose lease we hold, and store the result."""
        result, _ = self._measured(connection_id, progress, mirror_only=False)
        return result

    def _poll_loaded(self, connection: CalendarConnection) -> PollResult:
        """``poll`` of a connection the tick has read already; a poll that finds no change
        leaves its run record to the tick, which writes them all at once."""
        result, _ = self._measured(connection.id, None, mirror_only=False, loaded=connection)
        return result

    def poll_mirror_only(self, connection_id: int) -> tuple[PollResult, Fetched | None]:
        """Poll one calendar whose lease we hold and store its mirror, nothing else: no owner
        changes, no adoption (the worker follows up). Also returns what was fetched, so a
        caller whose lease lapsed meanwhile can still use it without storing it."""
        return self._measured(connection_id, None, mirror_only=True)

    def _measured(
        self,
        connection_id: int,
        progress: Progress | None,
        *,
        mirror_only: bool,
        loaded: CalendarConnection | None = None,
    ) -> tuple[PollResult, Fetched | None]:
        """``_poll``, counted in the metrics and with the calendar in every log line."""
        began = time.perf_counter()
        with log_context(calendar_id=connection_id):
            result, fetched = self._poll(
                connection_id, progress, mirror_only=mirror_only, loaded=loaded
            )
        if not isinstance(result, _Deferred):  # counted once stored, with its final outcome
            metrics.POLLS.labels(result.outcome.value).inc()
        metrics.POLL_DURATION.observe(time.perf_counter() - began)
        return result, fetched

    def read_without_lease(self, connection_id: int) -> list[mirror.ExpandedItem]:
        """What changed since the stored cursor, expanded, for a calendar another worker is
        polling: nothing is stored (the lease holder stores). Raises ProviderError.

        The stored cursor and ETags only move forward, so a delta from them is never older than
        the request; an item removed meanwhile is still busy in the mirror, which errs on the
        side of busy."""
        connection, known = self._load(connection_id)
        name = f"#{connection.id} ({connection.display_name or connection.url})"
        provider = self.open_provider(connection)
        try:
            try:
                delta = provider.changes(connection.cursor, known)
            except CursorExpired:
                delta = provider.changes(None, known)
        finally:
            provider.close()
        now = self.clock()
        window = Interval(now - LOOKBACK, now + timedelta(days=self.sync.horizon_days))
        rules = mirror.rules_for(connection)
        return [mirror.expand_item(i, window, rules, calendar=name) for i in delta.upserted]

    def _load(
        self, connection_id: int, loaded: CalendarConnection | None = None
    ) -> tuple[CalendarConnection, Mapping[str, str]]:
        """The connection (detached, with its owner; ``loaded`` when the tick read it already)
        and the ETags of its mirrored items, read only if the provider asks for them: an
        incremental poll that finds no change never does."""
        if loaded is None:
            (loaded,) = self._load_many([connection_id])
        return loaded, mirror.LazyETags(self.db, connection_id)

    def _load_many(self, connection_ids: Sequence[int]) -> list[CalendarConnection]:
        """The connections (detached, with their owners), in one query, in the given order."""
        with self.db.reading() as session:
            return self._loaded(session, connection_ids)

    @staticmethod
    def _loaded(session: Session, connection_ids: Sequence[int]) -> list[CalendarConnection]:
        found = {
            connection.id: connection
            for connection in session.scalars(
                select(CalendarConnection)
                .options(joinedload(CalendarConnection.owner))
                .where(CalendarConnection.id.in_(list(connection_ids)))
            )
        }
        session.expunge_all()
        return [found[cid] for cid in connection_ids if cid in found]

    def _poll(
        self,
        connection_id: int,
        progress: Progress | None,
        *,
        mirror_only: bool,
        loaded: CalendarConnection | None = None,
    ) -> tuple[PollResult, Fetched | None]:
        started = self.clock()
        connection, known = self._load(connection_id, loaded)
        if connection.next_poll_at <= started:  # due, not polled early on request
            metrics.POLL_LAG.observe((started - connection.next_poll_at).total_seconds())
        name = f"#{connection.id} ({connection.display_name or connection.url})"
        try:
            provider = self.open_provider(connection)
            try:
                fetched = self._fetch(provider, connection, known, name, progress)
            finally:
                provider.close()
        except ProviderError as exc:
            return self._record_failure(connection.id, started, exc), None
        except Exception as exc:
            # A bug or an exhausted worker (MemoryError) must still show on the calendar and
            # give the lease back with a backoff, not leave it "ok" and retried every minute.
            log.exception("calendar %s: unexpected error while polling", name)
            return self._record_failure(connection.id, started, exc), None
        result = None
        if not mirror_only and _unchanged(connection, fetched):
            if loaded is not None:
                # A tick's poll: stored with the rest of its batch, in one transaction.
                with self._unstored_lock:
                    self._unstored.append(_Unstored(connection, started, self.clock(), fetched))
                return _Deferred(connection.id, SyncOutcome.OK, full=fetched.full), fetched
            result = self._store_unchanged(connection, started, fetched)
        if result is None:
            result = self._store_and_adopt(connection, started, fetched, mirror_only=mirror_only)
        return result, fetched

    def _store_and_adopt(
        self,
        connection: CalendarConnection,
        started: datetime,
        fetched: Fetched,
        *,
        mirror_only: bool,
    ) -> PollResult:
        result, arrived = self._store(connection, started, fetched, mirror_only=mirror_only)
        if arrived and connection.adopt is not AdoptionRule.OFF and self.hooks is not None:
            # Only what this poll (or a request's since the last one) brought in: the
            # existing events are adopted by `calsync adopt`.
            self._adopt(connection.id, arrived)
        return result

    def _adopt(self, connection_id: int, hrefs: list[str]) -> None:
        assert self.hooks is not None
        try:
            adopted = self.hooks.arrived(
                self.db,
                self.settings,
                connection_id,
                hrefs=hrefs,
                provider_factory=self.open_provider,
            )
        except (ProviderError, ServiceError) as exc:
            log.warning("calendar #%s: adoption failed: %s", connection_id, exc)
            return
        if adopted:
            log.info("calendar #%s: adopted %d event(s)", connection_id, len(adopted))

    def _fetch(
        self,
        provider: CalendarProvider,
        connection: CalendarConnection,
        known: Mapping[str, str],
        name: str,
        progress: Progress | None,
    ) -> Fetched:
        if progress:
            progress("fetching", 0, 0)
        rules = mirror.rules_for(connection)
        # A full read (a first sync) comes in parts: each is expanded while the next is read.
        guess, _ = self._window(connection, self.clock())
        early = mirror.EarlyExpansion(Interval(guess.start, guess.end + EARLY_SLACK), rules)
        try:
            delta = _changes(provider, connection.cursor, known, early)
        except CursorExpired:
            log.info("calendar %s: sync cursor expired, doing a full resync", name)
            delta = _changes(provider, None, known, early)
        window, reexpand = self._window(connection, self.clock())
        items: list[CalendarItem] = list(delta.upserted)
        if reexpand:
            # Items not in the delta are re-expanded from their stored text over the new window.
            changed = {item.href for item in items} | set(delta.removed)
            with self.db.reading() as session:
                items += [
                    item
                    for item in mirror.stored_items(session, connection.id)
                    if item.href not in changed
                ]
        expanded = []
        for done, item in enumerate(items, start=1):
            expanded.append(early.expand(item, window, rules, calendar=name))
            if progress and (done % 100 == 0 or done == len(items)):
                progress("expanding", done, len(items))
        return Fetched(
            expanded,
            len(delta.upserted),
            list(delta.removed),
            delta.cursor,
            delta.full,
            window,
            reexpand,
        )

    def _window(self, connection: CalendarConnection, now: datetime) -> tuple[Interval, bool]:
        """The window a poll at ``now`` expands over, and whether that is a new one (the
        horizon moved on, or a first sync): the stored items are then expanded again."""
        horizon_end = now + timedelta(days=self.sync.horizon_days)
        if (
            connection.expanded_until is None
            or connection.expanded_until < horizon_end - REEXPAND_AFTER
        ):
            return Interval(now - LOOKBACK, horizon_end + REEXPAND_AFTER), True
        assert connection.expanded_from is not None
        return Interval(connection.expanded_from, connection.expanded_until), False

    def _store(
        self,
        connection: CalendarConnection,
        started: datetime,
        fetched: Fetched,
        *,
        mirror_only: bool,
    ) -> tuple[PollResult, list[str]]:
        """Store the poll under our lease; returns the result and the hrefs to offer adoption."""
        problems = 0
        arrived: list[str] = []
        with self.db.writing() as session:
            current = self._holds_lease(session, connection.id)
            if current is None:
                log.warning(
                    "calendar #%s: lease lost during the poll; result dropped", connection.id
                )
                outcome = SyncOutcome.LEASE_LOST
            else:
                mirror.apply_changes(session, connection.id, fetched.expanded, fetched.removed)
                changed = fetched.expanded[: fetched.changed]
                if mirror_only:
                    _note_follow_ups(session, connection.id, changed, fetched.removed)
                else:
                    changed, removed = _with_follow_ups(
                        session, connection.id, changed, fetched.removed
                    )
                    if self.hooks is not None:
                        self.hooks.stored(session, self.settings, connection.id, changed, removed)
                    arrived = [item.href for item in changed]
                # Counted from the mirror, not this poll's items: an unreadable event stays
                # reported until it is fixed or removed, also on polls that bring no change.
                problems = mirror.unreadable_count(session, connection.id)
                now = self.clock()
                current.cursor = fetched.cursor
                current.status = ConnectionStatus.OK
                current.last_error = (
                    f"{problems} event(s) could not be read and were skipped" if problems else None
                )
                if current.failures and self.hooks is not None and self.hooks.recovered:
                    self.hooks.recovered(session, connection.id, now)
                current.failures = 0
                current.last_polled_at = current.last_success_at = now
                if fetched.reexpanded:
                    current.expanded_from = fetched.window.start
                    current.expanded_until = fetched.window.end
                # What a request stored is followed up by the worker's next poll, soon.
                followed = mirror_only and (fetched.changed or fetched.removed)
                current.next_poll_at = now if followed else self._next_poll(now, 0)
                current.lease_owner = current.lease_until = None
                outcome = SyncOutcome.OK
                if fetched.changed or fetched.removed:
                    log.info(
                        "calendar #%s: %d event(s) new or changed, %d removed",
                        connection.id,
                        fetched.changed,
                        len(fetched.removed),
                    )
            session.add(
                SyncRun(
                    connection_id=connection.id,
                    worker=self.worker_id,
                    started_at=started,
                    finished_at=self.clock(),
                    outcome=outcome,
                    full=fetched.full,
                    upserted=fetched.changed,
                    removed=len(fetched.removed),
                )
            )
        result = PollResult(
            connection.id,
            outcome,
            fetched.changed,
            len(fetched.removed),
            fetched.full,
            problems,
        )
        return result, arrived

    def _store_unchanged(
        self, connection: CalendarConnection, started: datetime, fetched: Fetched
    ) -> PollResult | None:
        """Store a poll that changed nothing in one statement; None when it cannot be (the
        lease was lost, or a request's poll left notes to follow up): ``_store`` then does.

        The update is its own fence: it matches only while we hold the lease, the calendar is
        still healthy (so its ``last_error``, which counts unreadable events, stays true: the
        mirror did not change) and no follow-up notes wait. It also reads the unreadable count
        for the result."""
        with self.db.writing_core() as session:
            problems = self._update_unchanged(session, connection.id, fetched, self.clock())
            if problems is None:
                return None
            session.execute(
                _RUN_INSERT, [self._run_record(connection.id, started, self.clock(), fetched)]
            )
        return PollResult(connection.id, SyncOutcome.OK, full=fetched.full, problems=problems)

    def _store_unchanged_batch(self) -> dict[int, PollResult]:
        """Store the batch's unchanged polls as ``_store_unchanged`` does, all in one
        transaction with their run records in one statement (a transaction per poll cost more
        than the poll's own statement); those the fence turns away take ``_store``. Their
        results by calendar."""
        with self._unstored_lock:
            polls, self._unstored = self._unstored, []
        if not polls:
            return {}
        results: dict[int, PollResult] = {}
        turned_away: list[_Unstored] = []
        try:
            with self.db.writing_core() as session:
                runs = []
                for poll in polls:
                    cid = poll.connection.id
                    problems = self._update_unchanged(session, cid, poll.fetched, self.clock())
                    if problems is None:
                        turned_away.append(poll)
                        continue
                    runs.append(self._run_record(cid, poll.started, poll.finished, poll.fetched))
                    results[cid] = PollResult(
                        cid, SyncOutcome.OK, full=poll.fetched.full, problems=problems
                    )
                if runs:
                    session.execute(_RUN_INSERT, runs)
        except Exception:
            # One failed transaction must not lose the whole batch: each poll is stored (or
            # its failure recorded) on its own, as it would have been without batching.
            log.warning("storing a batch of unchanged polls failed; storing them one by one")
            results, turned_away = {}, polls
        for poll in turned_away:
            with log_context(calendar_id=poll.connection.id):
                results[poll.connection.id] = self._safely(
                    poll.connection.id,
                    partial(
                        self._store_and_adopt,
                        poll.connection,
                        poll.started,
                        poll.fetched,
                        mirror_only=False,
                    ),
                )
        for result in results.values():
            metrics.POLLS.labels(result.outcome.value).inc()
        return results

    def _update_unchanged(
        self, session: Connection, connection_id: int, fetched: Fetched, now: datetime
    ) -> int | None:
        """The fenced update of an unchanged poll; the unreadable count, None if fenced out."""
        problems: int | None = session.execute(
            _UNCHANGED_STORE,
            {
                "connection": connection_id,
                "worker": self.worker_id,
                "new_cursor": fetched.cursor,
                "now": now,
                "next_at": self._next_poll(now, 0),
            },
        ).scalar()
        return problems

    def _run_record(
        self, connection_id: int, started: datetime, finished: datetime, fetched: Fetched
    ) -> dict[str, object]:
        return {
            "connection_id": connection_id,
            "worker": self.worker_id,
            "started_at": started,
            "finished_at": finished,
            "outcome": SyncOutcome.OK,
            "full": fetched.full,
            "upserted": 0,
            "removed": 0,
        }

    def _record_failure(self, connection_id: int, started: datetime, exc: Exception) -> PollResult:
        if isinstance(exc, ProviderError):
            message = str(exc)
            log.warning("calendar #%s: poll failed: %s", connection_id, message)
        else:
            message = f"Unexpected error while polling: {exc!r}"
        with self.db.writing() as session:
            current = self._holds_lease(session, connection_id)
            outcome = SyncOutcome.LEASE_LOST
            if current is not None:
                now = self.clock()
                current.failures += 1
                if isinstance(exc, GrantRevoked):
                    if current.status is not ConnectionStatus.NEEDS_RECONNECT:
                        owner_notices.queue_reconnect(session, self.settings, current, message, now)
                    current.status = ConnectionStatus.NEEDS_RECONNECT
                elif isinstance(exc, AuthFailed):
                    current.status = ConnectionStatus.AUTH_FAILED
                else:
                    current.status = ConnectionStatus.FAILING
                current.last_error = message
                current.last_polled_at = now
                current.next_poll_at = self._next_poll(now, current.failures)
                current.lease_owner = current.lease_until = None
                outcome = SyncOutcome.FAILED
            session.add(
                SyncRun(
                    connection_id=connection_id,
                    worker=self.worker_id,
                    started_at=started,
                    finished_at=self.clock(),
                    outcome=outcome,
                    error=message,
                )
            )
        return PollResult(connection_id, outcome, error=message)

    # -- driving polls --------------------------------------------------------------------

    def sync_now(
        self, connection_ids: Iterable[int] | None = None, progress: Progress | None = None
    ) -> list[PollResult]:
        """Poll the given calendars (default: all) now, in this thread; for the CLI."""
        with self.db.reading() as session:
            wanted = (
                list(connection_ids)
                if connection_ids is not None
                else list(
                    session.scalars(select(CalendarConnection.id).order_by(CalendarConnection.id))
                )
            )
        claimed = self.claim_due(len(wanted) or 1, only=wanted)
        return [self.poll(cid, progress) for cid in claimed]

    def tick(self) -> list[PollResult]:
        """Claim due calendars and poll them, ``max_parallel_polls`` at a time, batch after
        batch while full batches come and for at most ``tick_seconds``; never raises.

        One batch per tick would cap a worker at ``max_parallel_polls`` calendars per
        ``tick_seconds`` (4 per 5 s with the defaults: under one poll a second), far below what
        it can do; the time bound keeps the worker's other jobs and its shutdown prompt.

        A batch is ``BATCH_ROUNDS`` times ``max_parallel_polls`` calendars: its claim, read and
        store are shared by more polls, and a thread that is done takes the batch's next
        calendar instead of waiting for the slowest poll of its round."""
        began = time.monotonic()
        results: list[PollResult] = []
        while True:
            batch_began = time.monotonic()
            batch = self._tick_batch()
            for result in batch:
                if self.on_result:
                    self.on_result(result)
            results += batch
            if len(batch) < self._batch_size or self._stopping.is_set():
                return results
            # Stop about at the next beat, so that the worker's other jobs and a shutdown do
            # not wait behind a long run of batches.
            now = time.monotonic()
            if now - began + (now - batch_began) >= self.sync.tick_seconds:
                return results

    def _tick_batch(self) -> list[PollResult]:
        """One batch: claim and read the connections in one transaction, poll them in
        parallel, store the unchanged ones together in another."""
        try:
            connections = self._claim_loaded(self._batch_size)
            if not connections:
                return []
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.sync.max_parallel_polls, thread_name_prefix="poll"
                )
            futures = [self._pool.submit(self._poll_safely, c) for c in connections]
            stored: dict[int, PollResult] = {}
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, FLUSH_SECONDS, FIRST_COMPLETED)
                    # Stored as they gather, and whenever a slow poll keeps the batch open:
                    # the polls done hold leases that run out (``lease_seconds``).
                    if not done or len(self._unstored) >= self.sync.max_parallel_polls:
                        stored |= self._store_unchanged_batch()
            finally:
                stored |= self._store_unchanged_batch()
            results = [future.result() for future in futures]
            return [stored.get(result.connection_id, result) for result in results]
        except Exception as exc:
            if unreachable(exc):  # a restart: one line per tick until it is back
                log.warning("poller tick: the database cannot be reached; will try again")
            else:
                log.exception("poller tick failed; will try again at the next tick")
            return []

    def _poll_safely(self, connection: CalendarConnection) -> PollResult:
        return self._safely(connection.id, lambda: self._poll_loaded(connection))

    def _safely(self, connection_id: int, poll: Callable[[], PollResult]) -> PollResult:
        """``poll()``, or when it raises, the failure recorded on the calendar."""
        try:
            return poll()
        except Exception as exc:
            # A bug or database hiccup in one calendar's poll must not stop the others. The
            # failure is recorded on the calendar when the database lets us; otherwise the
            # lease expires and the calendar is polled again later.
            if unreachable(exc):
                log.warning(
                    "calendar #%s: the database cannot be reached; polled again once its "
                    "lease runs out",
                    connection_id,
                )
                return PollResult(connection_id, SyncOutcome.FAILED, error="database unreachable")
            log.exception("calendar #%s: unexpected error while polling", connection_id)
            try:
                return self._record_failure(connection_id, self.clock(), exc)
            except Exception:
                log.exception("calendar #%s: could not record the failure", connection_id)
                return PollResult(connection_id, SyncOutcome.FAILED, error=repr(exc))

    def start(self, extra_jobs: Iterable[tuple[str, Callable[[], object]]] = ()) -> None:
        """Run ticks in the background; ``extra_jobs`` (name, function) run on the same beat."""
        self._stopping.clear()
        self._scheduler = BackgroundScheduler(timezone="UTC")
        for name, function in [("calsync-poll-tick", self.tick), *extra_jobs]:
            self._schedule(self._scheduler, name, function, utcnow())
        self._scheduler.start()

    def _schedule(
        self,
        scheduler: BackgroundScheduler,
        name: str,
        function: Callable[[], object],
        when: datetime,
    ) -> None:
        """One run of ``function`` at ``when``, which schedules the next when it ends.

        Not an interval job: APScheduler would find a run that outlasts the beat (a batch of
        first syncs) still going, skip that beat and log a warning each time. Here the next run
        starts a beat after this one began, or at once when this one took longer.
        """

        def run() -> None:
            began = utcnow()
            try:
                function()
            finally:
                if not self._stopping.is_set():
                    due = began + timedelta(seconds=self.sync.tick_seconds)
                    self._schedule(scheduler, name, function, max(due, utcnow()))

        # However late the scheduler's thread gets to it, the run is still wanted. Two
        # instances: APScheduler counts this run as running until just after it returns, and
        # would skip (and so drop for good) a next run due at once; two never overlap, since
        # the next is only added as this one ends.
        scheduler.add_job(
            run,
            "date",
            run_date=when,
            id=name,
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=2,
        )

    def stop(self) -> None:
        """Stop claiming, let the polls in flight finish (each bounded by the request timeout;
        each gives its lease back), then give back any lease still held, so no calendar waits
        out ``lease_seconds`` for a worker that stopped cleanly."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            with self.db.writing() as session:
                session.execute(
                    update(CalendarConnection)
                    .where(CalendarConnection.lease_owner == self.worker_id)
                    .values(lease_owner=None, lease_until=None)
                )
        except Exception:  # the database may be gone at shutdown; the leases then expire
            log.warning("could not give back this worker's leases; they expire by themselves")
        if isinstance(self.open_provider, ProviderOpener):
            self.open_provider.close()  # the kept-alive CalDAV connections


@dataclass(frozen=True, slots=True)
class _Deferred(PollResult):
    """The result of a tick's unchanged poll until its batch is stored."""


@dataclass(frozen=True, slots=True)
class _Unstored:
    """A tick's unchanged poll, waiting for the end of its batch to be stored."""

    connection: CalendarConnection
    started: datetime
    finished: datetime
    fetched: Fetched


def _unchanged_store() -> Update:
    """The one statement that stores an unchanged poll (``Poller._store_unchanged``), built
    once: on the table, not the ORM class, so no ORM bookkeeping runs on the hot path."""
    connections = _table(CalendarConnection)
    events = _table(MirroredEvent)
    notes = _table(MirrorFollowUp)
    unreadable = (
        select(func.count())
        .where(events.c.connection_id == bindparam("connection"), events.c.problem.is_not(None))
        .scalar_subquery()
    )
    return (
        update(connections)
        .where(
            connections.c.id == bindparam("connection"),
            connections.c.lease_owner == bindparam("worker"),
            connections.c.status == ConnectionStatus.OK,
            connections.c.failures == 0,
            ~exists().where(notes.c.connection_id == bindparam("connection")),
        )
        .values(
            cursor=bindparam("new_cursor"),
            last_polled_at=bindparam("now"),
            last_success_at=bindparam("now"),
            next_poll_at=bindparam("next_at"),
            lease_owner=None,
            lease_until=None,
        )
        .returning(unreadable)
    )


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_UNCHANGED_STORE = _unchanged_store()
_RUN_INSERT = insert(_table(SyncRun))


def _changes(
    provider: CalendarProvider,
    cursor: str | None,
    known: Mapping[str, str],
    early: mirror.EarlyExpansion,
) -> Delta:
    """The provider's delta; a full one (no cursor) handed to ``early`` as it arrives (by a
    ``CalendarProvider``: a stand-in with only ``changes``, as tests inject, is read whole)."""
    if cursor is None and isinstance(provider, CalendarProvider):
        return provider.changes_arriving(None, known, early.arrived)
    return provider.changes(cursor, known)


def _unchanged(connection: CalendarConnection, fetched: Fetched) -> bool:
    """A poll of a healthy calendar that brought nothing and re-expanded nothing: the common
    case, stored by ``Poller._store_unchanged`` in one statement."""
    return (
        not fetched.changed
        and not fetched.removed
        and not fetched.reexpanded
        and connection.status is ConnectionStatus.OK
        and connection.failures == 0
    )


def _note_follow_ups(
    session: Session,
    connection_id: int,
    changed: list[mirror.ExpandedItem],
    removed: list[str],
) -> None:
    session.add_all(
        [MirrorFollowUp(connection_id=connection_id, href=i.href) for i in changed]
        + [MirrorFollowUp(connection_id=connection_id, href=h, removed=True) for h in removed]
    )


def _with_follow_ups(
    session: Session,
    connection_id: int,
    changed: list[mirror.ExpandedItem],
    removed: list[str],
) -> tuple[list[mirror.ExpandedItem], list[str]]:
    """This poll's changes plus what requests stored since the last worker poll, as the mirror
    holds it now (this poll's own version of an item wins); the notes are used up."""
    notes = list(
        session.scalars(select(MirrorFollowUp).where(MirrorFollowUp.connection_id == connection_id))
    )
    if not notes:
        return changed, removed
    session.execute(
        delete(MirrorFollowUp).where(MirrorFollowUp.id.in_([note.id for note in notes]))
    )
    seen = {item.href for item in changed} | set(removed)
    wanted = sorted({note.href for note in notes if note.href not in seen})
    rows = session.execute(
        select(MirroredEvent.href, MirroredEvent.etag, MirroredEvent.uid, MirroredEvent.data).where(
            MirroredEvent.connection_id == connection_id, MirroredEvent.href.in_(wanted)
        )
    ).all()
    stored = [mirror.ExpandedItem(href, etag, uid, data, []) for href, etag, uid, data in rows]
    present = {item.href for item in stored}
    gone = [h for h in wanted if h not in present and any(n.removed and n.href == h for n in notes)]
    return [*changed, *stored], [*removed, *gone]
