"""Times in words, one spelling for the emails and the manage page, built on Babel (CLDR).

``Thu, Jun 27, 2019, 10:30 AM – 10:45 AM, Eastern Daylight Time (GMT-04:00)``: the day, the
time range (the end repeats the day when it falls on another one), and the zone by name with
its GMT offset. The zone's name is the one in force at the start, so it says whether summer
time applies in the reader's own language ("Mitteleuropäische Sommerzeit") where an English
"DST" marker could not. Babel's en_US times put a narrow no-break space before AM/PM, so a
time never breaks across lines.

Every function takes a ``locale`` (a CLDR name such as ``en_US`` or ``de_DE``), ``en_US`` by
default. Bookings store no locale yet: when they do (a column filled from the booking page's
``Accept-Language``), the manage page and ``compose`` pass it here and nothing else changes.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import (
    format_skeleton,
    format_time,
    get_timezone_gmt,
    get_timezone_location,
    get_timezone_name,
)

from calsync.notify.values import DEFAULT_LOCALE

__all__ = [
    "DEFAULT_LOCALE",
    "clock_words",
    "day_words",
    "format_span",
    "gmt_offset",
    "short_day",
    "zone_city",
    "zone_label",
]


@functools.lru_cache(maxsize=32)
def _locale(name: str) -> Locale:
    """The parsed locale; raises ValueError (babel's UnknownLocaleError) for an unknown one."""
    return Locale.parse(name)


def day_words(moment: datetime, locale: str = DEFAULT_LOCALE) -> str:
    """``Thu, Jun 27, 2019`` (de_DE: ``Do., 27. Juni 2019``)."""
    return format_skeleton("yMMMEd", moment, locale=_locale(locale))


def short_day(day: date, locale: str = DEFAULT_LOCALE) -> str:
    """``Thu, Jun 27``: a day heading in a week of free times."""
    return format_skeleton("MMMEd", datetime.combine(day, time(12)), locale=_locale(locale))


def clock_words(moment: datetime, locale: str = DEFAULT_LOCALE) -> str:
    """``10:30 AM`` (de_DE: ``10:30``), in ``moment``'s own zone."""
    return format_time(moment, "short", tzinfo=moment.tzinfo, locale=_locale(locale))


def gmt_offset(moment: datetime, locale: str = DEFAULT_LOCALE) -> str:
    """``GMT-05:00``: ``moment``'s offset from UTC."""
    return get_timezone_gmt(moment, "long", locale=_locale(locale))


def zone_city(zone: ZoneInfo, locale: str = DEFAULT_LOCALE) -> str:
    """``New York`` for America/New_York (de_DE: ``Kalkutta`` for Asia/Kolkata); zones with no
    city (``UTC``, ``Etc/GMT+5``) keep their name."""
    if "/" not in zone.key or zone.key.startswith("Etc/"):
        return zone.key
    return get_timezone_location(zone, locale=_locale(locale), return_city=True)


def zone_label(zone: ZoneInfo, moment: datetime, locale: str = DEFAULT_LOCALE) -> str:
    """``Eastern Daylight Time (GMT-04:00)`` at ``moment``; the offset alone for a zone CLDR has
    no name for (``Etc/GMT+5``)."""
    local = moment.astimezone(zone)
    name = get_timezone_name(local, "long", locale=_locale(locale))
    offset = gmt_offset(local, locale)
    return offset if name == offset else f"{name} ({offset})"


def format_span(
    start: datetime, end: datetime, zone: ZoneInfo, locale: str = DEFAULT_LOCALE
) -> str:
    """``Thu, Jun 27, 2019, 10:30 AM – 10:45 AM, Eastern Daylight Time (GMT-04:00)``; the end
    repeats the day when it falls on another one."""
    start, end = start.astimezone(zone), end.astimezone(zone)
    first = f"{day_words(start, locale)}, {clock_words(start, locale)}"
    until = clock_words(end, locale)
    if end.date() != start.date():
        until = f"{day_words(end, locale)}, {until}"
    return f"{first} – {until}, {zone_label(zone, start, locale)}"
