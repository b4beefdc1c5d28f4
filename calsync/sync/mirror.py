"""The mirror: our stored copy of each connected calendar and the busy time expanded from it.

Expansion (CPU work, no database) is kept apart from storing (one transaction), so a poll can
expand outside the transaction and hold the write lock only briefly. The stored text has the
token of every calsync manage link replaced (``redact_link_tokens``), during expansion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from calsync.calendars.base import CalendarItem, ETag, Href, Interval
from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.busy import BusyRules, read_object
from calsync.calendars.ical.event_edit import redact_link_tokens
from calsync.store.db import Database
from calsync.store.models import Base, BusyInterval, CalendarConnection, MirroredEvent

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExpandedItem:
    """A remote item with the busy intervals it contributes inside the mirror window."""

    href: Href
    etag: ETag
    uid: str | None
    data: str
    intervals: list[Interval]
    problem: str | None = None


def rules_for(connection: CalendarConnection) -> BusyRules:
    return BusyRules(
        timezone=connection.timezone or connection.owner.timezone,
        owner_addresses=frozenset({connection.owner.email.lower()}),
        all_day=connection.all_day,
    )


def expand_item(
    item: CalendarItem, window: Interval, rules: BusyRules, *, calendar: str
) -> ExpandedItem:
    """Expand one item; an unreadable item is kept with its problem and no busy time."""
    # The stored copy must not be a working manage link (a backup would open every booking);
    # what reads the mirror only needs to see that a link is there (``link_of``).
    data = redact_link_tokens(item.data)
    try:
        uid, intervals = read_object(item.data, window.start, window.end, rules, href=item.href)
    except InvalidCalendarData as exc:
        # One broken object must never stop the sync of the rest of the calendar.
        problem = redact_link_tokens(str(exc))  # it may quote the object's text
        log.warning("calendar %s: skipping unreadable event %s: %s", calendar, item.href, problem)
        return ExpandedItem(item.href, item.etag, None, data, [], problem=problem)
    return ExpandedItem(item.href, item.etag, uid, data, intervals)


class EarlyExpansion:
    """Items expanded as the provider hands them over (``changes_arriving``), while it waits
    for the rest, over ``window``: the poll's window is only known after the fetch (it is
    read from the clock then), so ``window`` reaches further than any the poll can end with.

    ``expand`` then narrows such an expansion to the poll's window, which is what expanding
    over that window gives: ``read_object`` keeps each busy interval that overlaps its window,
    whole, and works each out apart from the window. An item that could not be read is left
    to ``expand_item`` (its problem and warning are the window's own)."""

    def __init__(self, window: Interval, rules: BusyRules) -> None:
        self.window = window
        self.rules = rules
        self._expanded: dict[Href, tuple[CalendarItem, str | None, list[Interval], str]] = {}

    def arrived(self, items: Iterable[CalendarItem]) -> None:
        for item in items:
            try:
                uid, intervals = read_object(
                    item.data, self.window.start, self.window.end, self.rules, href=item.href
                )
            except InvalidCalendarData:
                continue
            self._expanded[item.href] = (item, uid, intervals, redact_link_tokens(item.data))

    def expand(
        self, item: CalendarItem, window: Interval, rules: BusyRules, *, calendar: str
    ) -> ExpandedItem:
        """``expand_item(item, window, rules, calendar=calendar)``, from the early expansion
        of this very item when ``window`` lies within the early one."""
        early = self._expanded.get(item.href)
        if (
            early is None
            or early[0] is not item
            or rules != self.rules
            or window.start < self.window.start
            or window.end > self.window.end
        ):
            return expand_item(item, window, rules, calendar=calendar)
        _item, uid, intervals, data = early
        inside = [i for i in intervals if i.start < window.end and i.end > window.start]
        return ExpandedItem(item.href, item.etag, uid, data, inside)


def known_etags(session: Session, connection_id: int) -> dict[Href, ETag]:
    rows = session.execute(
        select(MirroredEvent.href, MirroredEvent.etag).where(
            MirroredEvent.connection_id == connection_id
        )
    )
    return {href: etag for href, etag in rows}


class LazyETags(Mapping[Href, ETag]):
    """``known_etags`` of one calendar, read from the database on first use (one query, in a
    short transaction of its own): an incremental poll that finds no change never reads them,
    which saves a query over all the calendar's events on most polls."""

    def __init__(self, db: Database, connection_id: int) -> None:
        self._db = db
        self._connection_id = connection_id
        self._etags: dict[Href, ETag] | None = None

    def _loaded(self) -> dict[Href, ETag]:
        if self._etags is None:
            with self._db.reading() as session:
                self._etags = known_etags(session, self._connection_id)
        return self._etags

    def __getitem__(self, href: Href) -> ETag:
        return self._loaded()[href]

    def __iter__(self) -> Iterator[Href]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def unreadable_count(session: Session, connection_id: int) -> int:
    """How many of the calendar's stored items could not be read (they block no time)."""
    return int(
        session.scalar(
            select(func.count()).where(
                MirroredEvent.connection_id == connection_id, MirroredEvent.problem.is_not(None)
            )
        )
        or 0
    )


def stored_items(session: Session, connection_id: int) -> list[CalendarItem]:
    rows = session.execute(
        select(MirroredEvent.href, MirroredEvent.etag, MirroredEvent.data).where(
            MirroredEvent.connection_id == connection_id
        )
    )
    return [CalendarItem(href, etag, data) for href, etag, data in rows]


def apply_changes(
    session: Session,
    connection_id: int,
    upserted: Sequence[ExpandedItem],
    removed: Iterable[Href],
) -> None:
    """Store upserted items (replacing their busy time) and drop removed ones."""
    gone = set(removed) | {item.href for item in upserted}
    if gone:
        existing = dict(
            session.execute(
                select(MirroredEvent.href, MirroredEvent.id).where(
                    MirroredEvent.connection_id == connection_id
                )
            ).all()
        )
        stale_ids = [existing[href] for href in gone if href in existing]
        for chunk in _chunks(stale_ids, 500):
            session.execute(delete(BusyInterval).where(BusyInterval.event_id.in_(chunk)))
            session.execute(delete(MirroredEvent).where(MirroredEvent.id.in_(chunk)))
    if not upserted:
        return
    # On the tables, not the ORM classes: a first sync inserts thousands of rows, and the ORM's
    # bulk path adds per-row bookkeeping that nothing here needs.
    events, intervals = _table(MirroredEvent), _table(BusyInterval)
    ids = session.scalars(
        insert(events).returning(events.c.id, sort_by_parameter_order=True),
        [
            {
                "connection_id": connection_id,
                "href": item.href,
                "etag": item.etag,
                "uid": item.uid,
                "data": item.data,
                "problem": item.problem,
            }
            for item in upserted
        ],
    ).all()
    rows = [
        {
            "event_id": event_id,
            "connection_id": connection_id,
            "start": interval.start,
            "end": interval.end,
        }
        for event_id, item in zip(ids, upserted, strict=True)
        for interval in item.intervals
    ]
    for batch in _chunks(rows, 2000):
        session.execute(insert(intervals), batch)


def busy_between(
    session: Session, connection_ids: Iterable[int], start: datetime, end: datetime
) -> list[Interval]:
    """The merged busy intervals of the given calendars overlapping [start, end)."""
    return merge_intervals(
        Interval(s, e) for s, e, _ in busy_spans(session, connection_ids, start, end)
    )


def busy_spans(
    session: Session,
    connection_ids: Iterable[int],
    start: datetime,
    end: datetime,
    *,
    with_uids: bool = True,
) -> list[tuple[datetime, datetime, str | None]]:
    """Unmerged busy intervals overlapping [start, end), each with its event's UID, so a
    session being rescheduled can leave its own event out; ``with_uids=False`` when no session
    is (the UIDs are None then, and the events' table is not read)."""
    if not with_uids:
        spans = session.execute(
            select(BusyInterval.start, BusyInterval.end).where(
                BusyInterval.connection_id.in_(list(connection_ids)),
                BusyInterval.start < end,
                BusyInterval.end > start,
            )
        )
        return [(s, e, None) for s, e in spans]
    rows = session.execute(
        select(BusyInterval.start, BusyInterval.end, MirroredEvent.uid)
        .join(MirroredEvent, MirroredEvent.id == BusyInterval.event_id)
        .where(
            BusyInterval.connection_id.in_(list(connection_ids)),
            BusyInterval.start < end,
            BusyInterval.end > start,
        )
    )
    return [(s, e, uid) for s, e, uid in rows]


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]
