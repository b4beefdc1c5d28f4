"""The manage page's words: the zone menu, money, the policy in sentences.

Times in words are ``notify.when``'s, the same spelling as in the emails.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync.notify.when import gmt_offset, zone_city
from calsync.policy.change_policy import ActionRule, ChangePolicy, Permission, ReasonRule

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

    def city(name: str) -> str:
        return zone_city(ZoneInfo(name))

    ordered = sorted(names, key=lambda name: (offset(name), city(name)))
    return [
        (name, f"{city(name)} ({gmt_offset(now.astimezone(ZoneInfo(name)))})") for name in ordered
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
