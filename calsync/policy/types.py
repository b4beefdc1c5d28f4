"""The values availability is computed from, and the rules' error contract.

Glossary
--------
instant       an aware datetime: one point on the timeline. Results are always in UTC; inputs
              may carry any tzinfo but never none.
wall time     a naive local clock reading (``time``) in the event type's zone. It only becomes an
              instant together with a date and the zone (see ``availability.wall_to_instant``).
time range    a pair of wall times on one local day during which the owner works.
weekly hours  the time ranges of each weekday, 0 = Monday. A missing weekday is closed.
override      the time ranges of one calendar date, replacing its weekday's hours; () = closed.
span          time that is taken: an event on a conflict calendar (busy) or a session of another
              booking (booked). Its key says what it is, so a reschedule can ignore itself.
buffer        room the *new* session needs around it: nothing may end less than
              ``buffer_before`` before it starts, nor start less than ``buffer_after`` after
              it ends.
slot          a bookable [start, end) of exactly the event type's duration.
working period  one time range of one local date, as the half-open UTC span it covers.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Instant: TypeAlias = datetime
Weekday: TypeAlias = int  # 0 = Monday … 6 = Sunday, as ``date.weekday()``
ZoneName: TypeAlias = str  # an IANA zone name such as "Europe/Berlin"
SpanKey: TypeAlias = str  # what a span is, e.g. the UID of a session

MIDNIGHT = time(0)
LONGEST = timedelta(days=3660)  # the longest duration any rule may have


class RulesError(ValueError):
    """Availability rules that cannot be used as they are.

    ``field`` names the offending attribute of ``AvailabilityRules`` (or ``"time_range"`` for a
    range that is wrong on its own), ``key`` the weekday or date inside it when there is one,
    ``value`` the offending value, and ``message`` says what to change.
    """

    def __init__(
        self, field: str, message: str, *, key: object = None, value: object = None
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.key = key
        self.value = value


def format_wall_time(wall: time, *, is_end: bool = False) -> str:
    """``09:30``; an end at midnight reads ``24:00`` because it means the end of the day."""
    if is_end and wall == MIDNIGHT:
        return "24:00"
    text = wall.strftime("%H:%M")
    return text if wall.second == 0 and wall.microsecond == 0 else wall.isoformat()


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Working time on one local day, from ``start`` up to (not including) ``end``.

    Both are naive wall times. ``end == time(0)`` means midnight at the *end* of the day
    (24:00), so ``TimeRange(time(0), time(0))`` is the whole day. A range never crosses
    midnight: work from 22:00 to 02:00 is 22:00–24:00 on one day and 00:00–02:00 on the next.

    Raises ``RulesError(field="time_range")`` for aware times or an end not after the start.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise RulesError("time_range", "start and end must be datetime.time values", value=self)
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise RulesError(
                "time_range",
                "use naive wall times; the zone comes from the rules' timezone",
                value=self,
            )
        if self.end != MIDNIGHT and self.end <= self.start:
            raise RulesError(
                "time_range",
                f"{self} ends before it starts; a range cannot cross midnight, so end it "
                "at 24:00 and continue at 00:00 on the next day (e.g. 'mon 22:00-24:00' "
                "and 'tue 00:00-02:00')",
                value=self,
            )

    def __str__(self) -> str:
        return f"{format_wall_time(self.start)}–{format_wall_time(self.end, is_end=True)}"

    @property
    def ends_at_midnight(self) -> bool:
        """True when the range runs to the end of its day (24:00)."""
        return self.end == MIDNIGHT


@dataclass(frozen=True, slots=True)
class Span:
    """Taken time [start, end): a busy event or another booking's session.

    ``key`` identifies it (a session UID, an event UID) so ``free_slots(ignore=…)`` can leave
    it out. An empty span (end == start) takes no time.

    ``start`` and ``end`` are stored in UTC whatever zone they arrive in: Python compares and
    subtracts two datetimes of the *same* zone by wall clock, which is wrong across a DST
    change (02:50 CEST is before 02:10 CET), so nothing downstream may see zoned values.

    Raises ``ValueError`` for naive datetimes or an end before the start.
    """

    start: Instant
    end: Instant
    key: SpanKey | None = None

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise ValueError(f"Span needs aware datetimes, got {self.start!r}, {self.end!r}")
        # Frozen: the normalisation goes through object.__setattr__, once, at construction.
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end < self.start:
            raise ValueError(f"Span ends before it starts: {self.start} > {self.end}")


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable [start, end) in UTC, exactly one duration long."""

    start: Instant
    end: Instant


@dataclass(frozen=True, slots=True)
class WorkingPeriod:
    """One time range of one local date, resolved to UTC instants [start, end)."""

    day: date
    start: Instant
    end: Instant


@dataclass(frozen=True, slots=True)
class AvailabilityRules:
    """When an event type can be booked. Check with ``validate_rules`` before relying on it.

    The mappings are treated as read-only; build a new rules value to change them.
    """

    timezone: ZoneName
    duration: timedelta
    slot_step: timedelta
    weekly_hours: Mapping[Weekday, tuple[TimeRange, ...]]
    date_overrides: Mapping[date, tuple[TimeRange, ...]] = field(default_factory=dict)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    minimum_notice: timedelta = timedelta(0)
    horizon: timedelta = timedelta(days=60)
    daily_cap: int | None = None


# -- validation -------------------------------------------------------------------------------

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def validate_rules(rules: AvailabilityRules) -> None:
    """Raise ``RulesError`` for the first problem ``rules_problems`` finds; return if none."""
    problems = rules_problems(rules)
    if problems:
        raise problems[0]


def rules_problems(rules: AvailabilityRules) -> list[RulesError]:
    """Every reason ``rules`` cannot be used, in field order (empty when they are fine).

    A form can show them all at once; each error names its field and says what to change.
    """
    return [
        *_timezone_problems(rules.timezone),
        *_length_problems(rules),
        *_daily_cap_problems(rules.daily_cap),
        *_weekly_hours_problems(rules.weekly_hours),
        *_override_problems(rules.date_overrides),
    ]


def _timezone_problems(name: object) -> list[RulesError]:
    if not isinstance(name, str) or not name:
        return [RulesError("timezone", "give an IANA zone name such as Europe/Berlin", value=name)]
    if name == "localtime":
        # It names whatever zone this machine is set to, which is not the owner's zone.
        return [RulesError("timezone", "give the owner's IANA zone, not 'localtime'", value=name)]
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [RulesError("timezone", _unknown_zone_message(name), value=name)]
    return []


def _unknown_zone_message(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; use an IANA name such as Europe/Berlin"
    return f"unknown time zone {name!r}{hint}"


def _length_problems(rules: AvailabilityRules) -> list[RulesError]:
    """Durations: positive where zero makes no sense, non-negative where zero means 'none'."""
    problems: list[RulesError] = []
    positive = {"duration": rules.duration, "slot_step": rules.slot_step, "horizon": rules.horizon}
    non_negative = {
        "buffer_before": rules.buffer_before,
        "buffer_after": rules.buffer_after,
        "minimum_notice": rules.minimum_notice,
    }
    for name, value in (positive | non_negative).items():
        if not isinstance(value, timedelta):
            problems.append(RulesError(name, "give a datetime.timedelta", value=value))
        elif name in positive and value <= timedelta(0):
            problems.append(RulesError(name, f"must be longer than zero, got {value}", value=value))
        elif value < timedelta(0):
            problems.append(RulesError(name, f"cannot be negative, got {value}", value=value))
        elif value > LONGEST:
            # Far past any booking need, and date arithmetic near year 9999 would overflow.
            problems.append(RulesError(name, "can be at most 10 years", value=value))
    if not problems and rules.horizon < rules.minimum_notice + rules.duration:
        # A slot must start after the notice and end before the horizon: no room, no slots.
        problems.append(
            RulesError(
                "horizon",
                f"the booking horizon ({rules.horizon}) must be at least the minimum notice "
                f"({rules.minimum_notice}) plus one session ({rules.duration}), or nothing "
                "can ever be booked",
                value=rules.horizon,
            )
        )
    return problems


def _daily_cap_problems(cap: object) -> list[RulesError]:
    if cap is None:
        return []
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        return [
            RulesError(
                "daily_cap",
                "give a whole number of sessions per day of at least 1, or None for no cap "
                "(close a day through weekly_hours instead of a cap of 0)",
                value=cap,
            )
        ]
    return []


def _weekly_hours_problems(weekly: object) -> list[RulesError]:
    if not isinstance(weekly, Mapping):
        return [RulesError("weekly_hours", "give a mapping of weekday (0=Monday) to ranges")]
    problems: list[RulesError] = []
    for day, ranges in weekly.items():
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            message = f"weekday keys are 0 (Monday) to 6 (Sunday), got {day!r}"
            problems.append(RulesError("weekly_hours", message, key=day))
            continue
        problems += _day_ranges_problems("weekly_hours", day, _DAY_NAMES[day], ranges)
    return problems


def _override_problems(overrides: object) -> list[RulesError]:
    if not isinstance(overrides, Mapping):
        return [RulesError("date_overrides", "give a mapping of date to ranges")]
    problems: list[RulesError] = []
    for day, ranges in overrides.items():
        # A datetime is a date too, but a key with a time of day would silently never match.
        if not isinstance(day, date) or isinstance(day, datetime):
            message = f"keys are datetime.date values, got {day!r}"
            problems.append(RulesError("date_overrides", message, key=day))
            continue
        problems += _day_ranges_problems("date_overrides", day, day.isoformat(), ranges)
    return problems


def _day_ranges_problems(
    field_name: str, key: object, label: str, ranges: object
) -> list[RulesError]:
    """One day's ranges: a sequence of TimeRange, none overlapping another (touching is fine)."""
    if isinstance(ranges, str) or not isinstance(ranges, Sequence):
        message = f"{label}: give a tuple of TimeRange (an empty tuple closes the day)"
        return [RulesError(field_name, message, key=key, value=ranges)]
    if not all(isinstance(r, TimeRange) for r in ranges):
        message = f"{label}: every entry must be a TimeRange"
        return [RulesError(field_name, message, key=key, value=ranges)]
    ordered = sorted(ranges, key=lambda r: r.start)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.ends_at_midnight or later.start < earlier.end:
            message = f"{label}: {earlier} and {later} overlap; merge them into one range"
            return [RulesError(field_name, message, key=key, value=ranges)]
    return []
