"""Working hours written as text (CLI) and as plain data (JSON storage), both ways.

Text: one entry per group of days, ``"mon-fri 09:00-12:00,13:00-17:00"``, ``"sat 10:00-14:00"``;
a date override is ``"2026-12-24=closed"`` or ``"2026-12-31=10:00-12:00"``. ``24:00`` ends a
range at midnight. Errors are RulesError naming ``weekly_hours`` or ``date_overrides``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, time

from calsync.policy.types import MIDNIGHT, RulesError, TimeRange, Weekday, format_wall_time

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_wall_time(text: str, field: str) -> time:
    text = text.strip()
    if text == "24:00":
        return MIDNIGHT
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise RulesError(field, f"{text!r} is not a time like 09:30", value=text) from None


def parse_ranges(text: str, field: str) -> tuple[TimeRange, ...]:
    """``"09:00-12:00,13:00-17:00"`` → ranges; ``"closed"`` → ()."""
    if text.strip().lower() == "closed":
        return ()
    ranges = []
    for part in text.split(","):
        start, sep, end = part.partition("-")
        if not sep:
            raise RulesError(field, f"{part.strip()!r} is not a range like 09:00-17:00")
        try:
            ranges.append(TimeRange(parse_wall_time(start, field), parse_wall_time(end, field)))
        except RulesError as exc:
            raise RulesError(field, exc.message, value=part.strip()) from None
    return tuple(sorted(ranges, key=lambda r: r.start))


def _parse_days(text: str) -> list[Weekday]:
    days: list[Weekday] = []
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first.strip()[:3])
            b = DAY_NAMES.index((last or first).strip()[:3])
        except ValueError:
            raise RulesError(
                "weekly_hours", f"{part!r} is not a day or day range like mon-fri"
            ) from None
        days += range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
    return days


def parse_weekly_hours(entries: Iterable[str]) -> dict[Weekday, tuple[TimeRange, ...]]:
    """Each entry ``"<days> <ranges>"``; later entries add to the same day."""
    weekly: dict[Weekday, tuple[TimeRange, ...]] = {}
    for entry in entries:
        days_text, _, ranges_text = entry.strip().partition(" ")
        if not ranges_text:
            raise RulesError(
                "weekly_hours", f"{entry!r} needs days and times: 'mon-fri 09:00-17:00'"
            )
        ranges = parse_ranges(ranges_text, "weekly_hours")
        for day in _parse_days(days_text):
            weekly[day] = tuple(sorted((*weekly.get(day, ()), *ranges), key=lambda r: r.start))
    return weekly


def parse_overrides(entries: Iterable[str]) -> dict[date, tuple[TimeRange, ...]]:
    overrides: dict[date, tuple[TimeRange, ...]] = {}
    for entry in entries:
        day_text, sep, ranges_text = entry.partition("=")
        try:
            day = date.fromisoformat(day_text.strip())
        except ValueError:
            raise RulesError(
                "date_overrides", f"{entry!r} needs a date: '2026-12-24=closed'"
            ) from None
        if not sep:
            raise RulesError("date_overrides", f"{entry!r} needs '=closed' or '=09:00-12:00'")
        overrides[day] = parse_ranges(ranges_text, "date_overrides")
    return overrides


# -- plain data (JSON) ---------------------------------------------------------------------


def ranges_to_data(ranges: Iterable[TimeRange]) -> list[list[str]]:
    return [[format_wall_time(r.start), format_wall_time(r.end, is_end=True)] for r in ranges]


def ranges_from_data(data: Iterable[Iterable[str]], field: str) -> tuple[TimeRange, ...]:
    return tuple(
        TimeRange(parse_wall_time(start, field), parse_wall_time(end, field)) for start, end in data
    )


def weekly_to_data(weekly: Mapping[Weekday, Iterable[TimeRange]]) -> dict[str, list[list[str]]]:
    return {DAY_NAMES[day]: ranges_to_data(ranges) for day, ranges in sorted(weekly.items())}


def weekly_from_data(
    data: Mapping[str, Iterable[Iterable[str]]],
) -> dict[Weekday, tuple[TimeRange, ...]]:
    weekly = {}
    for name, ranges in data.items():
        if name not in DAY_NAMES:
            raise RulesError("weekly_hours", f"{name!r} is not a day (use mon … sun)")
        weekly[DAY_NAMES.index(name)] = ranges_from_data(ranges, "weekly_hours")
    return weekly


def overrides_to_data(overrides: Mapping[date, Iterable[TimeRange]]) -> dict[str, list[list[str]]]:
    return {day.isoformat(): ranges_to_data(ranges) for day, ranges in sorted(overrides.items())}


def overrides_from_data(
    data: Mapping[str, Iterable[Iterable[str]]],
) -> dict[date, tuple[TimeRange, ...]]:
    overrides = {}
    for day_text, ranges in data.items():
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise RulesError(
                "date_overrides", f"{day_text!r} is not a date like 2026-12-24"
            ) from None
        overrides[day] = ranges_from_data(ranges, "date_overrides")
    return overrides
