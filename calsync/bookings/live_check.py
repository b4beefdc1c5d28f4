"""The live check at commit time: the calendar server's own free/busy answer, on top of the
fresh poll.

Before a booking or a customer's reschedule is recorded, the conflict calendars are polled
(``bookings.refresh_conflicts``), and then each is asked ``busy()`` about the exact window the
new sessions need. Providers that have a live answer give it (Google: ``freebusy.query``);
the others (CalDAV) answer None and the fresh poll is all there is. Whatever a server reports
busy there that the mirror does not already hold as busy (an event made between the poll and
now, or one a sync delta has not delivered yet) blocks the new times too. Subtracting the
mirror's busy time leaves calsync's own rules in charge of everything it knows about: the
sessions being moved, declined events and the like stay as the mirror says.

Calendars whose all-day events are set to count as free are left out: a server's free/busy
(Google's) counts those days as busy, against the owner's setting. A calendar that cannot
answer stops the booking (AvailabilityUnknown): unknown is not free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from calsync.bookings.event_types import AvailabilityUnknown, conflict_calendars, rules_of
from calsync.calendars.base import Interval
from calsync.calendars.errors import ProviderError
from calsync.calendars.ical.busy import AllDayMode
from calsync.policy.types import Slot, Span
from calsync.store.db import Database
from calsync.store.models import CalendarConnection, EventType
from calsync.sync import mirror
from calsync.sync.providers import ProviderFactory


def live_busy(
    db: Database, event_type: EventType, slots: Sequence[Slot], factory: ProviderFactory
) -> list[Span]:
    """Busy time the calendars report live around ``slots`` that the mirror does not know."""
    if not slots:
        return []
    rules = rules_of(event_type)
    start = min(s.start for s in slots) - rules.buffer_before
    end = max(s.end for s in slots) + rules.buffer_after
    with db.reading() as session:
        conflicts = conflict_calendars(session, event_type)
        calendars = [c for c in conflicts if c.all_day is not AllDayMode.FREE]
        if not calendars:
            return []
        # Everything the slot check already counts as busy, whichever calendar holds it.
        known = [
            Interval(s, e)
            for s, e, _ in mirror.busy_spans(session, [c.id for c in conflicts], start, end)
        ]
    reported = [i for c in calendars for i in _ask_live(c, factory, start, end)]
    return [Span(i.start, i.end) for i in subtract(reported, known)]


def _ask_live(
    calendar: CalendarConnection, factory: ProviderFactory, start: datetime, end: datetime
) -> list[Interval]:
    try:
        provider = factory(calendar)
        try:
            return provider.busy(start, end) or []  # None: no live answer to add
        finally:
            provider.close()
    except ProviderError as exc:
        raise AvailabilityUnknown(
            f"calendar {calendar.id} could not be checked just now ({exc}); nothing was "
            "changed, try again in a minute"
        ) from exc


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of ``intervals`` not covered by any of ``holes``."""
    cuts = mirror.merge_intervals(holes)  # sorted, not overlapping
    left: list[Interval] = []
    for interval in intervals:
        cursor = interval.start
        for cut in cuts:
            if cut.end <= cursor or cut.start >= interval.end:
                continue
            if cut.start > cursor:
                left.append(Interval(cursor, cut.start))
            cursor = max(cursor, cut.end)
        if cursor < interval.end:
            left.append(Interval(cursor, interval.end))
    return left
