"""The manage page's words: times in the customer's zone, zone labels, the policy in sentences.

Times read the way a calendar app writes them, in English and without locale data:
``Thu, Jun 27, 2019, 10:30 AM – 10:45 AM, New York time (GMT-4:00, DST)``.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync.policy.change_policy import ActionRule, ChangePolicy, Permission, ReasonRule

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Offered in the zone menu besides the booking's own zones: one or two per populated offset.
COMMON_ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/Mexico_City",
    "America/New_York",
    "America/Toronto",
    "America/Halifax",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Atlantic/Azores",
    "UTC",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Dublin",
    "Africa/Lagos",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Warsaw",
    "Africa/Johannesburg",
    "Africa/Cairo",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Australia/Perth",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Pacific/Auckland",
)


def day_words(moment: datetime) -> str:
    """``Thu, Jun 27, 2019``."""
    return f"{WEEKDAYS[moment.weekday()]}, {MONTHS[moment.month - 1]} {moment.day}, {moment.year}"


def clock_words(moment: datetime) -> str:
    """``10:30 AM``."""
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def zone_city(name: str) -> str:
    """``America/New_York`` → ``New York``; ``UTC`` and ``Etc/…`` stay as they are."""
    if "/" not in name or name.startswith("Etc/"):
        return name
    return name.rsplit("/", 1)[1].replace("_", " ")


def gmt_offset(moment: datetime) -> str:
    """``GMT-5:00``; ``GMT`` at offset zero."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours}:{rest:02d}" if minutes else "GMT"


def zone_label(name: str, moment: datetime) -> str:
    """``New York time (GMT-5:00)``, with ``, DST`` while summer time is in force."""
    dst = ", DST" if moment.dst() else ""
    city = zone_city(name)
    return f"{city if city in ('UTC', 'GMT') else city + ' time'} ({gmt_offset(moment)}{dst})"


def format_span(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """``Thu, Dec 3, 2026, 10:30 AM – 11:30 AM, New York time (GMT-5:00)``."""
    start, end = start.astimezone(zone), end.astimezone(zone)
    until = (
        clock_words(end) if end.date() == start.date() else f"{day_words(end)}, {clock_words(end)}"
    )
    return f"{day_words(start)}, {clock_words(start)} – {until}, {zone_label(zone.key, start)}"


def money(amount: Decimal, currency: str) -> str:
    """``20.00 EUR``."""
    return f"{amount:.2f} {currency}"


@functools.lru_cache(maxsize=512)  # bounded: the name comes from the request
def usable_zone(name: str | None) -> ZoneInfo | None:
    """The zone called ``name`` (an IANA name, as browsers report it), or None."""
    if not name or len(name) > 64 or name == "localtime" or name.startswith(("/", ".")):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_choices(wanted: tuple[str, ...], now: datetime) -> list[tuple[str, str]]:
    """(name, label) for the zone menu: ``wanted`` and the common zones, by offset then name."""
    names = {name for name in (*wanted, *COMMON_ZONES) if usable_zone(name) is not None}

    def offset(name: str) -> timedelta:
        return now.astimezone(ZoneInfo(name)).utcoffset() or timedelta(0)

    ordered = sorted(names, key=lambda name: (offset(name), zone_city(name)))
    return [
        (name, f"{zone_city(name)} ({gmt_offset(now.astimezone(ZoneInfo(name)))})")
        for name in ordered
    ]


# -- the policy -----------------------------------------------------------------------------------


def duration_words(length: timedelta) -> str:
    minutes = int(length.total_seconds()) // 60

    def unit(count: int, name: str) -> str:
        return f"{count} {name}{'' if count == 1 else 's'}"

    if minutes and minutes % (24 * 60) == 0:
        return unit(minutes // (24 * 60), "day")
    hours, rest = divmod(minutes, 60)
    parts = ([unit(hours, "hour")] if hours else []) + ([unit(rest, "minute")] if rest else [])
    return " ".join(parts) or unit(0, "minute")


def _rule_line(verb: str, done: str, rule: ActionRule) -> str:
    if rule.permission is Permission.NEVER:
        return f"Sessions cannot be {done} online."
    if rule.permission is Permission.UNTIL and rule.notice is not None:
        line = f"You can {verb} a session up to {duration_words(rule.notice)} before it starts."
    else:
        line = f"You can {verb} a session any time before it starts."
    return line + (" You will be asked for a reason." if rule.reason is ReasonRule.REQUIRED else "")


def policy_lines(policy: ChangePolicy) -> list[str]:
    """The cancel/reschedule rules in words (fees are for the policy text to explain)."""
    lines = [_rule_line("cancel", "cancelled", policy.cancel)]
    limit = policy.max_reschedules
    if limit == 0:
        return [*lines, "Sessions cannot be rescheduled online."]
    lines.append(_rule_line("reschedule", "rescheduled", policy.reschedule))
    if limit is not None and policy.reschedule.permission is not Permission.NEVER:
        times = "once" if limit == 1 else f"{limit} times"
        lines.append(f"Each session can be rescheduled at most {times}.")
    return lines
