"""Busy time of one calendar object: the spans in which its events block the owner.

Glossary
--------
object       one stored item's iCalendar text: a VCALENDAR holding one UID, which may be a
             recurring master plus overrides (the normal case for CalDAV).
master       the VEVENT without RECURRENCE-ID; its RRULE/RDATE/EXDATE generate occurrences.
override     a VEVENT with the master's UID and a RECURRENCE-ID. It replaces one occurrence:
             moves it (possibly into or out of the window), cancels it, makes it
             transparent, or records that the owner declined just that one.
occurrence   one instance of an event after expansion; each is judged on its own properties.
floating     a DATE-TIME with neither TZID nor Z. It means "local time", which for calsync is
             the calendar's zone (``BusyRules.timezone``).
all-day      an event whose DTSTART is a DATE: it runs from local midnight to local midnight
             in the calendar's zone.

Rules (DESIGN.md §4): an occurrence is busy when it is OPAQUE (the RFC 5545 default, also
for all-day events), not STATUS:CANCELLED and not declined by the owner; all-day occurrences
follow ``BusyRules.all_day``. Expansion is done by ``recurring_ical_events``; this module
prepares the parsed calendar for it (zones, UNTIL values) and judges what comes out.

Durations follow RFC 5545 §3.8.5.3: occurrences of an event with DTEND last the exact
duration of the first one; with DURATION, whole days are nominal (same wall time N days
later) and the rest is exact. ``recurring_ical_events`` adds durations in wall time, which
differs when an occurrence spans a DST change, so the end of each occurrence is computed here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from math import prod
from time import thread_time
from types import FrameType
from typing import Any

import icalendar
from icalendar.prop import vRecur
from recurring_ical_events import CalendarQuery

from calsync.calendars.base import Interval
from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.timezones import iana_zone, resolve_zone, to_utc, vtimezone_zones

try:
    from icalendar.error import GloballyUniqueTZIDGuessed
except ImportError:  # icalendar < 7 never guesses such TZIDs, so it has no warning for it
    GloballyUniqueTZIDGuessed = UserWarning  # type: ignore[assignment,misc]

from calsync.calendars.ical.busy_text import busy_text
from calsync.calendars.ical.scan import item_uid
from calsync.states import AllDayMode

__all__ = [
    "AllDayMode",
    "BusyRules",
    "busy_intervals",
    "item_uid",
    "parse_calendar",
    "read_object",
]

logger = logging.getLogger(__name__)

# Components that make a VCALENDAR a usable calendar object. VTODO and VJOURNAL never block,
# but an object holding only a task is valid data, not an error.
_ITEM_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})

# Marks every VEVENT with its index before expansion; recurring_ical_events copies the
# component for each occurrence, so the mark tells which VEVENT (master or override) the
# occurrence came from and therefore which duration rule applies.
_SOURCE = "X-CALSYNC-SOURCE"

# Expansion happens over a window a day wider than asked on each side, then the results
# are filtered exactly in UTC. This absorbs the differences between the library's
# wall-clock arithmetic and ours (at most a DST shift) and its comparisons of dates.
_MARGIN = timedelta(days=1)

# dateutil walks a rule from DTSTART, not from the window, at ~2 µs a step. An invitation
# with FREQ=SECONDLY (or a minutely rule started years ago) would stall every poll, so a
# rule that needs more steps than this to cover the window is rejected as unusable.
_MAX_RULE_STEPS = 100_000

# Bounds on one object's expansion, whatever its rules. dateutil walks period by period
# without yielding while a rule's BY-parts match nothing (up to the year 9999: seconds of CPU
# for one event), and an object may hold many occurrences; past either bound the object is
# unusable. Legitimate objects stay far below: a year of hourly events is 8,760 occurrences,
# and expanding an ordinary object takes milliseconds.
_MAX_OCCURRENCES = 10_000
_MAX_CPU_SECONDS = 2.0

_FREQ_SECONDS = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,
    "YEARLY": 365 * 86400,
}
# An event with any of these has (or removes) occurrences besides its own DTSTART.
_RECURRENCE = ("RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID")
# BY-parts that spread a WEEKLY, MONTHLY or YEARLY period over several of its days.
_DAY_PARTS = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH")

# icalendar warns (GloballyUniqueTZIDGuessed) while parsing TZIDs like "/mozilla.org/...".
# Guessing is what we want, so the warning is silenced, but only for texts that have such
# a TZID: catch_warnings() swaps process-wide state and is best kept rare.
_PREFIXED_TZID = re.compile(r'TZID="?/', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BusyRules:
    """How one calendar's events turn into busy time.

    ``timezone`` is the calendar's zone (IANA or anything ``resolve_zone`` accepts): floating
    times and all-day dates are read in it. ``owner_addresses`` are the owner's e-mail
    addresses; they are normalised to lower case without "mailto:". Raises ValueError for a
    zone that cannot be resolved or an unknown ``all_day`` mode.
    """

    timezone: str = "UTC"
    owner_addresses: frozenset[str] = frozenset()
    all_day: AllDayMode = AllDayMode.FOLLOW_TRANSP

    def __post_init__(self) -> None:
        if resolve_zone(self.timezone) is None:
            raise ValueError(f"Unknown time zone for a calendar: {self.timezone!r}")
        object.__setattr__(self, "all_day", AllDayMode(self.all_day))
        addresses = frozenset(_address(address) for address in self.owner_addresses)
        object.__setattr__(self, "owner_addresses", addresses)


def parse_calendar(data: str, *, href: str | None = None) -> icalendar.Calendar:
    """Parse one object's text.

    Raises InvalidCalendarData (carrying ``href``) when the text is not iCalendar, is not a
    single VCALENDAR, or holds no VEVENT, VTODO or VJOURNAL. Properties whose values cannot
    be parsed are kept as broken values by icalendar; ``busy_intervals`` rejects those it needs.
    """
    try:
        if _PREFIXED_TZID.search(data):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GloballyUniqueTZIDGuessed)
                calendar = icalendar.Calendar.from_ical(data)
        else:
            calendar = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # hostile text reaches more than ValueError in the parser
        raise InvalidCalendarData(f"Not iCalendar text: {exc}", href=href) from exc
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        name = getattr(calendar, "name", type(calendar).__name__)
        raise InvalidCalendarData(f"Expected a VCALENDAR, found {name}", href=href)
    if not any(component.name in _ITEM_COMPONENTS for component in calendar.subcomponents):
        raise InvalidCalendarData("The VCALENDAR holds no VEVENT, VTODO or VJOURNAL", href=href)
    return calendar


def busy_intervals(
    data: str,
    start: datetime,
    end: datetime,
    rules: BusyRules,
    *,
    href: str | None = None,
) -> list[Interval]:
    """The busy intervals of one object that overlap ``[start, end)``.

    Intervals are aware UTC datetimes, sorted, not clipped to the window, and merged only
    when identical (two occurrences that merely overlap stay two intervals). Zero-length
    occurrences block nothing and are left out.

    Raises InvalidCalendarData (carrying ``href``) for text or events that cannot be used;
    nothing else for bad data. Raises ValueError for a naive or reversed window (misuse).
    A TZID that is unknown and has no VTIMEZONE does not drop busy time: its times are
    read in ``rules.timezone`` and a warning names the href and the TZID.
    """
    return read_object(data, start, end, rules, href=href)[1]


def read_object(
    data: str,
    start: datetime,
    end: datetime,
    rules: BusyRules,
    *,
    href: str | None = None,
) -> tuple[str | None, list[Interval]]:
    """The UID of the object's first VEVENT and ``busy_intervals(data, start, end, rules)``,
    from one pass over the text and one parse of the part busy time reads (``busy_text``).

    Raises as ``busy_intervals`` does.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("busy_intervals needs an aware start and end")
    if end < start:
        raise ValueError(f"The window ends before it starts: {start} > {end}")
    slim = busy_text(data, rules.owner_addresses)
    if slim.plain is not None:
        intervals = _plain_busy(slim.plain, start, end, rules)
        if intervals is not None:
            return slim.uid, intervals
    calendar = parse_calendar(slim.text, href=href)
    return slim.uid, _ObjectReader(calendar, data, rules, href).busy(start, end)


# The values the parser-free path reads: a UTC, floating or TZID date-time, or a date.
_PLAIN_LINE = re.compile(
    r"(?P<name>DTSTART|DTEND)(?:;TZID=(?P<tzid>[A-Za-z0-9_+\-/]+)|;VALUE=(?P<value>DATE|DATE-TIME))?"
    r":(?P<date>\d{8})(?:T(?P<time>\d{6})(?P<utc>Z?))?",
    re.IGNORECASE,
)


def _plain_busy(
    plain: dict[str, str], start: datetime, end: datetime, rules: BusyRules
) -> list[Interval] | None:
    """Busy time of a plain event (``busy_text``'s ``SlimObject.plain``) read straight from
    its lines, by the same rules as ``_ObjectReader``; None for anything this path does not
    read exactly the same way (the parser then does the work, and finds any error)."""
    zone = resolve_zone(rules.timezone)
    if zone is None or "DTSTART" not in plain:
        return None
    first = _plain_value(plain["DTSTART"], zone, zone)
    if first is None:
        return None
    # A floating DTEND next to a zoned DTSTART is read in DTSTART's zone (``_prepare``).
    floating = first.tzinfo if isinstance(first, datetime) and first.tzinfo else zone
    last = _plain_value(plain["DTEND"], floating, zone) if "DTEND" in plain else None
    if "DTEND" in plain and last is None:
        return None
    all_day = not isinstance(first, datetime)
    if last is not None and isinstance(last, datetime) == all_day:
        return None  # a date with a date-time: rare, left to the parser
    status = plain.get("STATUS", "").partition(":")[2].strip().upper()
    transp = plain.get("TRANSP", "").partition(":")[2].strip().upper()
    if (
        ";"
        in plain.get("STATUS", ":").partition(":")[0] + plain.get("TRANSP", ":").partition(":")[0]
    ):
        return None  # parameters on STATUS or TRANSP
    if status == "CANCELLED":
        return []
    if all_day and rules.all_day is not AllDayMode.FOLLOW_TRANSP:
        if rules.all_day is AllDayMode.FREE:
            return []
    elif transp == "TRANSPARENT":
        return []
    if all_day:
        assert not isinstance(first, datetime)
        midnight = datetime.combine(first, time(), tzinfo=zone)
        days = 1 if last is None else (last - first).days
        if days < 0:
            return None  # DTEND before DTSTART: the parser's path swaps them
        span = (to_utc(midnight), to_utc(midnight + timedelta(days=days)))
    else:
        assert isinstance(first, datetime)
        begins = to_utc(first)
        ends = begins if last is None else to_utc(last)  # type: ignore[arg-type]
        if ends < begins:
            return None
        span = (begins, ends)
    if span[0] < span[1] and span[0] < end and span[1] > start:
        return [Interval(*span)]
    return []


def _plain_value(line: str, floating: tzinfo, zone: tzinfo) -> date | None:
    """The aware date-time (or date) of a plain DTSTART/DTEND line; None if it is not one of
    the simple forms."""
    match = _PLAIN_LINE.fullmatch(line.strip())
    if match is None:
        return None
    try:
        day = date(int(match["date"][:4]), int(match["date"][4:6]), int(match["date"][6:]))
        if match["time"] is None:
            if match["tzid"] or (match["value"] or "").upper() == "DATE-TIME":
                return None
            return day
        if (match["value"] or "").upper() == "DATE":
            return None
        clock = time(int(match["time"][:2]), int(match["time"][2:4]), int(match["time"][4:]))
    except ValueError:
        return None
    if match["utc"]:
        if match["tzid"]:
            return None
        return datetime.combine(day, clock, tzinfo=UTC)
    if match["tzid"]:
        named = iana_zone(match["tzid"])
        if named is None:
            return None
        return datetime.combine(day, clock, tzinfo=named)
    return datetime.combine(day, clock, tzinfo=floating)


@dataclass(slots=True)
class _Timing:
    """How long the occurrences generated from one VEVENT last.

    End = (start + ``days`` in wall time, read in the start's zone) + ``exact``. RDATE
    periods carry their own end, keyed by the UTC instant they start at.
    """

    all_day: bool
    days: int
    exact: timedelta
    periods: dict[datetime, datetime] = field(default_factory=dict)


class _ObjectReader:
    """Busy time of one parsed object; holds the per-object zone decisions."""

    def __init__(
        self, calendar: icalendar.Calendar, data: str, rules: BusyRules, href: str | None
    ) -> None:
        zone = resolve_zone(rules.timezone)
        if zone is None:  # pragma: no cover - BusyRules.__post_init__ already checked
            raise ValueError(f"Unknown time zone {rules.timezone!r}")
        self.calendar = calendar
        self.data = data
        self.rules = rules
        self.href = href
        self.zone: tzinfo = zone
        self.timings: list[_Timing] = []
        self._tzids: dict[str, tzinfo] = {}
        self._vtimezones: dict[str, tzinfo] | None = None
        # Whether a rule of the object can stall dateutil inside one step (``_CpuBudget``).
        self.may_stall = False
        # Google exports name the calendar's zone in X-WR-TIMEZONE and write UTC times;
        # their RRULEs mean local wall time, so UTC values are re-anchored in that zone.
        xwr = calendar.get("X-WR-TIMEZONE")
        self.xwr_zone = None if xwr is None else resolve_zone(str(xwr))

    def busy(self, start: datetime, end: datetime) -> list[Interval]:
        events = self.calendar.walk("VEVENT")
        if not events:  # only VTODO/VJOURNAL: valid, never busy
            return []
        with self._invalid_on_error("Unusable event"):
            for index, event in enumerate(events):
                self._prepare(event, index, end)
        found: set[tuple[datetime, datetime]] = set()
        if len(events) == 1 and not any(name in events[0] for name in _RECURRENCE):
            # Most objects are one plain event: its only occurrence is the event itself, so
            # recurring_ical_events (which copies the component per occurrence) is skipped.
            with self._invalid_on_error("Unusable event"):
                event, timing = events[0], self.timings[0]
                if self._blocks(event, timing):
                    span = self._span(_dtstart(event), timing)
                    if span[0] < span[1] and span[0] < end and span[1] > start:
                        found.add(span)
            return [Interval(span_start, span_end) for span_start, span_end in sorted(found)]
        query_start = (start - _MARGIN).astimezone(self.zone)
        query_end = (end + _MARGIN).astimezone(self.zone)
        with self._invalid_on_error("Cannot expand the recurrence"):
            query = CalendarQuery(self.calendar, components=("VEVENT",))
            occurrences = self._occurrences(query, query_start, query_end, self.may_stall)
            for count, (begins, source) in enumerate(occurrences):
                if count >= _MAX_OCCURRENCES:
                    raise InvalidCalendarData(
                        f"More than {_MAX_OCCURRENCES} occurrences up to {end}", href=self.href
                    )
                timing = self.timings[int(str(source[_SOURCE]))]
                if not self._blocks(source, timing):
                    continue
                span = self._span(begins, timing)
                if span[0] < span[1] and span[0] < end and span[1] > start:
                    found.add(span)
        return [Interval(span_start, span_end) for span_start, span_end in sorted(found)]

    @staticmethod
    def _occurrences(
        query: CalendarQuery, start: datetime, end: datetime, may_stall: bool
    ) -> Iterator[tuple[date, icalendar.Component]]:
        """Occurrences one at a time (``between`` would build the whole list first), each
        step of the recurrence within the object's CPU budget. Each is its start and the VEVENT
        it comes from (the master, or the override that replaces it): the properties judged
        (STATUS, TRANSP, attendees, the ``_SOURCE`` mark) are that VEVENT's own."""
        budget = _CpuBudget(_MAX_CPU_SECONDS, trace=may_stall)
        for series in query.series:
            steps = series.between(start, end)
            while True:
                with budget:
                    occurrence = next(steps, None)
                if occurrence is None:
                    break
                yield occurrence.start, _source_of(occurrence, query)

    # -- preparing the parsed calendar for expansion -------------------------------------

    def _prepare(self, event: icalendar.Component, index: int, window_end: datetime) -> None:
        """Give every time of ``event`` a zone, fix its UNTILs and record its timing."""
        start_prop = event.get("DTSTART")
        if start_prop is None or isinstance(start_prop, list):
            raise InvalidCalendarData("A VEVENT needs exactly one DTSTART", href=self.href)
        start_prop.dt = self._anchor(start_prop.dt, start_prop.params, self.zone)
        starts_at = start_prop.dt
        if not isinstance(starts_at, date):
            raise InvalidCalendarData(f"DTSTART is not a date or time: {starts_at}", href=self.href)
        # A floating DTEND, EXDATE or RDATE next to a zoned DTSTART breaks RFC 5545's rule
        # that they match DTSTART; the writer meant DTSTART's zone, so that is where we read it.
        floating = self.zone
        if isinstance(starts_at, datetime) and starts_at.tzinfo is not None:
            floating = starts_at.tzinfo
        for name in ("DTEND", "RECURRENCE-ID"):
            prop = event.get(name)
            if isinstance(prop, list):
                raise InvalidCalendarData(f"A VEVENT has {len(prop)} {name}", href=self.href)
            if prop is not None:
                prop.dt = self._anchor(prop.dt, prop.params, floating)
                if not isinstance(prop.dt, date):
                    raise InvalidCalendarData(f"{name} is not a date or time", href=self.href)
        for name in ("EXDATE", "RDATE"):
            for prop in _as_list(event.get(name)):
                for item in prop.dts:
                    params = item.params or prop.params
                    if isinstance(item.dt, tuple):  # an RDATE period: (start, end or duration)
                        item.dt = tuple(self._anchor(part, params, floating) for part in item.dt)
                    else:
                        item.dt = self._anchor(item.dt, params, floating)
        end_prop = event.get("DTEND")
        if end_prop is not None and self._instant(end_prop.dt) < self._instant(starts_at):
            # DTEND before DTSTART: recurring_ical_events swaps them (its issue 132); doing
            # it here keeps our timing consistent with its expansion. Errs toward blocking.
            event["DTSTART"], event["DTEND"] = end_prop, start_prop
            starts_at = end_prop.dt
        for rule in _as_list(event.get("RRULE")):
            if not isinstance(rule, vRecur):
                raise InvalidCalendarData(f"Unreadable RRULE: {rule}", href=self.href)
            self._fix_until(rule, starts_at)
            self._check_density(rule, starts_at, window_end)
            # Only BY-parts can make dateutil walk many periods for one occurrence.
            self.may_stall = self.may_stall or any(
                str(key).upper().startswith("BY") for key in rule
            )
        if "EXRULE" in event:
            self.may_stall = True
        self.timings.append(self._timing(event))
        event[_SOURCE] = str(index)

    def _anchor(self, value: Any, params: Any, floating: tzinfo) -> Any:
        """``value`` with the zone RFC 5545 and our rules give it; dates stay dates.

        ``floating`` is the zone for a time with neither TZID nor Z.
        """
        if not isinstance(value, datetime):
            return value
        tzid = params.get("TZID") if params else None
        if tzid is not None:
            zone = self._zone_for_tzid(str(tzid))
            return value if value.tzinfo is zone else value.replace(tzinfo=zone)
        if value.tzinfo is None:
            return value.replace(tzinfo=floating)
        if self.xwr_zone is not None:  # a UTC time ("Z")
            return value.astimezone(self.xwr_zone)
        return value

    def _zone_for_tzid(self, tzid: str) -> tzinfo:
        """The zone a TZID of this object names.

        IANA names go to zoneinfo even when the object has a VTIMEZONE for them (zoneinfo
        knows the zone's history, a VTIMEZONE often only this year's rule). Any other TZID
        uses the object's own VTIMEZONE, else ``resolve_zone``; an unknown one is read in
        the calendar's zone, with a warning (dropping the event would hide busy time).
        """
        zone = self._tzids.get(tzid)
        if zone is not None:
            return zone
        zone = iana_zone(tzid)
        if zone is None:
            if self._vtimezones is None:
                self._vtimezones = vtimezone_zones(self.data)
            zone = self._vtimezones.get(tzid) or resolve_zone(tzid)
        if zone is None:
            logger.warning(
                "Calendar object %s uses the unknown TZID %r without a VTIMEZONE; "
                "reading its times in %s",
                self.href or "(no href)",
                tzid,
                self.rules.timezone,
            )
            zone = self.zone
        self._tzids[tzid] = zone
        return zone

    def _fix_until(self, rule: vRecur, starts_at: date) -> None:
        """Make UNTIL the type dateutil needs for this DTSTART, keeping its meaning.

        A timed event needs a UTC UNTIL: a floating one is read in the event's zone, a DATE
        one (invalid, but written by some clients) is taken to include that whole day.
        An all-day event needs a DATE UNTIL: a DATE-TIME one becomes its local date.
        """
        untils = rule.get("UNTIL")
        if not untils:
            return
        until = untils[0]
        if isinstance(starts_at, datetime):
            zone = starts_at.tzinfo or self.zone
            if isinstance(until, datetime):
                local = until if until.tzinfo else until.replace(tzinfo=zone)
                rule["UNTIL"] = [to_utc(local)]
            elif isinstance(until, date):
                next_day = datetime.combine(until + timedelta(days=1), time(), tzinfo=zone)
                rule["UNTIL"] = [to_utc(next_day) - timedelta(seconds=1)]
        elif isinstance(until, datetime):
            local = until.astimezone(self.zone) if until.tzinfo else until
            rule["UNTIL"] = [local.date()]

    def _check_density(self, rule: vRecur, starts_at: date, window_end: datetime) -> None:
        """Reject rules that would take dateutil too many steps to reach the window."""
        freq = str(_first(rule.get("FREQ")) or "").upper()
        period = _FREQ_SECONDS.get(freq)
        if period is None:
            raise InvalidCalendarData(f"RRULE has no valid FREQ: {freq!r}", href=self.href)
        interval = _first(rule.get("INTERVAL"))
        interval = 1 if interval is None else int(interval)
        count = _first(rule.get("COUNT"))
        count = None if count is None else int(count)
        if interval < 1 or (count is not None and count < 1):
            # INTERVAL=0 never advances: dateutil would list the first start forever.
            raise InvalidCalendarData(
                f"RRULE {rule.to_ical().decode()} needs an INTERVAL and COUNT of at least 1",  # type: ignore[no-untyped-call]
                href=self.href,
            )
        first = self._instant(starts_at)
        span = (window_end + _MARGIN - first).total_seconds()
        if span <= 0:
            return
        per_period = prod(
            len(rule.get(part) or [None])
            for part, finer_than in (("BYSECOND", 1), ("BYMINUTE", 60), ("BYHOUR", 3600))
            if period > finer_than
        )
        if period > 86400 and any(rule.get(part) for part in _DAY_PARTS):
            per_period *= period // 86400
        steps = (span / (period * interval) + 1) * per_period
        if count is not None:
            steps = min(steps, count * per_period)
        if steps > _MAX_RULE_STEPS:
            # icalendar leaves vRecur.to_ical unannotated.
            text = rule.to_ical().decode()  # type: ignore[no-untyped-call]
            raise InvalidCalendarData(
                f"RRULE {text} is too dense to expand up to {window_end}", href=self.href
            )

    def _timing(self, event: icalendar.Component) -> _Timing:
        starts_at = _dtstart(event)
        all_day = not isinstance(starts_at, datetime)
        end_prop = event.get("DTEND")
        duration_prop = event.get("DURATION")
        if end_prop is not None:
            ends_at = end_prop.dt
            if all_day and not isinstance(ends_at, datetime):
                timing = _Timing(all_day, (ends_at - starts_at).days, timedelta(0))
            else:
                timing = _Timing(all_day, 0, self._instant(ends_at) - self._instant(starts_at))
        elif duration_prop is not None:
            duration = duration_prop.dt
            if not isinstance(duration, timedelta) or duration < timedelta(0):
                raise InvalidCalendarData(f"Unusable DURATION {duration!r}", href=self.href)
            # icalendar's timedelta has already folded PT24H into a day; both mean one
            # day here (only the rare PT24H across a DST change reads differently).
            timing = _Timing(all_day, duration.days, duration - timedelta(days=duration.days))
        else:  # RFC 5545: a date lasts one day, a date-time is an instant
            timing = _Timing(all_day, 1 if all_day else 0, timedelta(0))
        for prop in _as_list(event.get("RDATE")):
            for item in prop.dts:
                if isinstance(item.dt, tuple):
                    period_start, period_end = item.dt
                    begins = self._instant(period_start)
                    if isinstance(period_end, timedelta):
                        timing.periods[begins] = begins + period_end
                    else:
                        timing.periods[begins] = self._instant(period_end)
        return timing

    # -- judging occurrences ----------------------------------------------------------------

    def _blocks(self, occurrence: icalendar.Component, timing: _Timing) -> bool:
        if _text(occurrence, "STATUS") == "CANCELLED":
            return False
        transparent = _text(occurrence, "TRANSP") == "TRANSPARENT"
        if timing.all_day and self.rules.all_day is not AllDayMode.FOLLOW_TRANSP:
            if self.rules.all_day is AllDayMode.FREE:
                return False
        elif transparent:
            return False
        return not self._declined_by_owner(occurrence)

    def _declined_by_owner(self, occurrence: icalendar.Component) -> bool:
        """Declined when every ATTENDEE entry of the owner says DECLINED; an owner who is
        the ORGANIZER did not decline (some servers list the organizer as an attendee)."""
        owner = self.rules.owner_addresses
        if not owner:
            return False
        if any(_address(str(o)) in owner for o in _as_list(occurrence.get("ORGANIZER"))):
            return False
        answers = [
            str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
            for attendee in _as_list(occurrence.get("ATTENDEE"))
            if _address(str(attendee)) in owner
        ]
        return bool(answers) and all(answer == "DECLINED" for answer in answers)

    def _span(self, starts_at: date, timing: _Timing) -> tuple[datetime, datetime]:
        wall = self._wall(starts_at)
        begins = to_utc(wall)
        period_end = timing.periods.get(begins)
        if period_end is not None:
            return begins, period_end
        if timing.days:
            return begins, to_utc(wall + timedelta(days=timing.days)) + timing.exact
        return begins, begins + timing.exact

    def _wall(self, value: date) -> datetime:
        """An aware wall time: dates are local midnight in the calendar's zone."""
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=self.zone)
        return datetime.combine(value, time(), tzinfo=self.zone)

    def _instant(self, value: date) -> datetime:
        return to_utc(self._wall(value))

    @contextlib.contextmanager
    def _invalid_on_error(self, what: str) -> Iterator[None]:
        """Turn any failure on the object's data into InvalidCalendarData.

        icalendar raises BrokenCalendarProperty (a ValueError) for values it could not
        parse; recurring_ical_events and dateutil raise ValueError, TypeError (dates mixed
        with date-times), KeyError or OverflowError on odd data. The contract is that only
        InvalidCalendarData escapes, so everything is translated, with the cause chained.
        """
        try:
            yield
        except InvalidCalendarData:
            raise
        except Exception as exc:  # see the docstring
            raise InvalidCalendarData(f"{what}: {exc}", href=self.href) from exc


class _OverBudget(Exception):
    """An object's expansion used up its CPU time."""


class _CpuBudget:
    """Stops the Python code run inside ``with budget:`` once this thread has used
    ``seconds`` of CPU time since the budget was made (the time between blocks counts too).

    dateutil can spend seconds inside one step of its iterator, and polls run on worker
    threads, where no signal or timer can interrupt them; a trace function is the one hook
    that runs inside that loop (it is called on every Python call and generator resume, and
    an exception it raises propagates into the traced code). Tracing slows the code inside,
    so only dateutil's steps run in the block. It chains to a tracer already installed
    (coverage, a debugger), which is put back afterwards.

    With ``trace=False`` (rules without BY-parts, the common daily or weekly series: each of
    dateutil's periods then holds an occurrence, and ``_check_density`` bounds the walk to the
    window) the budget is only checked between steps; tracing was a sixth of a first sync's
    expansion.
    """

    def __init__(self, seconds: float, *, trace: bool = True) -> None:
        self.seconds = seconds
        self.trace = trace
        self.deadline = thread_time() + seconds
        self.calls = 0
        self.entries = 0
        self.previous: Callable[..., Any] | None = None

    def _check(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.calls += 1
        # Reading the clock costs more than the rest of this function: do it now and then.
        if self.calls % 256 == 0 and thread_time() > self.deadline:
            raise _OverBudget(f"Expanding took more than {self.seconds:g} s of CPU time")
        return self.previous(frame, event, arg) if self.previous is not None else None

    def __enter__(self) -> None:
        # The clock again only every 16th step: on some machines reading a thread's CPU time
        # is a system call that cost more than the step itself (a first sync read it per
        # occurrence). A step that runs long is still stopped by ``_check`` inside it.
        self.entries += 1
        if self.entries % 16 == 0 and thread_time() > self.deadline:
            raise _OverBudget(f"Expanding took more than {self.seconds:g} s of CPU time")
        if self.trace:
            self.previous = sys.gettrace()
            sys.settrace(self._check)

    def __exit__(self, *exc_info: object) -> None:
        if self.trace:
            sys.settrace(self.previous)


def _as_list(value: Any) -> list[Any]:
    """icalendar gives a property that occurs once as a value, more often as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _source_of(occurrence: Any, query: CalendarQuery) -> icalendar.Component:
    """The VEVENT an occurrence of recurring_ical_events comes from, as parsed.

    Its ``as_component`` copies that VEVENT for every occurrence only to set the times, which
    ``_span`` takes from ``occurrence.start`` (the copy was a third of a series' expansion).
    The VEVENT is its adapter's; should a later version keep it elsewhere, the copy is used.
    """
    component = getattr(getattr(occurrence, "_adapter", None), "_component", None)
    if isinstance(component, icalendar.Component):
        return component
    copied: icalendar.Component = occurrence.as_component(query.keep_recurrence_attributes)
    return copied


def _dtstart(event: icalendar.Component) -> date:
    """DTSTART's value, which ``_prepare`` checked is a date or date-time (icalendar types a
    property looked up by name as any of its value types)."""
    value: date = event.get("DTSTART").dt
    return value


def _first(values: Any) -> Any:
    values = _as_list(values)
    return values[0] if values else None


def _text(component: icalendar.Component, name: str) -> str:
    value = _first(component.get(name))
    return "" if value is None else str(value).strip().upper()


def _address(value: str) -> str:
    """An address as compared: ``MAILTO:Ann@Example.org`` becomes ``ann@example.org``."""
    value = value.strip()
    if value[:7].lower() == "mailto:":
        value = value[7:]
    return value.strip().lower()
