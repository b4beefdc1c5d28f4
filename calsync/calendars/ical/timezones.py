"""Time zones as calendars name them, and wall times turned into instants.

Calendars name zones in several dialects, and calsync has to read all of them:

IANA          ``Europe/Berlin``: what zoneinfo knows, what calsync stores.
Windows       ``W. Europe Standard Time``: Outlook and Exchange. Mapped with the CLDR table
              that icalendar ships (``icalendar.timezone.windows_to_olson``).
display name  ``(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``: older Outlook
              and Exchange exports. Matched by city, checked against the offset in brackets.
prefixed      ``/mozilla.org/20050126_1/Europe/Berlin`` (RFC 5545 "globally unique" TZIDs from
              Lightning, Evolution, libical) and ``tzone://Microsoft/Utc``.
VTIMEZONE     a zone defined inside the object itself, the RFC 5545 authority for its TZID.
              calsync uses it for every TZID that is not an IANA name (IANA names go to
              zoneinfo, which knows their history). It is built per object (see
              ``vtimezone_zones``) because icalendar caches such zones process-wide, keyed
              by TZID alone, so one object's "Customized Time Zone" would be read with the
              definition of whichever object came first.

Wall times become instants with ``to_utc``, which applies the RFC 5545 rules everywhere: a
wall time that occurs twice (DST ends) means its first occurrence, one that does not exist
(DST starts) is read with the UTC offset from before the gap.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

__all__ = ["iana_zone", "resolve_zone", "to_utc", "vtimezone_zones"]

# "(UTC+01:00) Amsterdam, Berlin, ..." and the older "(GMT-05:00) Eastern Time (US & Canada)".
_DISPLAY_NAME = re.compile(
    r"^\((?:UTC|GMT)\s*(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?\)\s*"
    r"(?P<places>.+)$",
    re.IGNORECASE,
)

# Display names that name no city. Keyed by casefolded text after the "(UTC±hh:mm)" part.
_DISPLAY_REGIONS = {
    "coordinated universal time": "UTC",
    "eastern time (us & canada)": "America/New_York",
    "central time (us & canada)": "America/Chicago",
    "mountain time (us & canada)": "America/Denver",
    "pacific time (us & canada)": "America/Los_Angeles",
    "atlantic time (canada)": "America/Halifax",
    "newfoundland": "America/St_Johns",
    "alaska": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "arizona": "America/Phoenix",
    "indiana (east)": "America/Indiana/Indianapolis",
}

_UTC_ALIASES = frozenset({"utc", "gmt", "z", "zulu", "universal", "coordinated universal time"})

# One VTIMEZONE block of the raw text; used as the cache key for zones built from it.
_VTIMEZONE_BLOCK = re.compile(
    r"^BEGIN:VTIMEZONE\r?$.*?^END:VTIMEZONE\r?$", re.MULTILINE | re.DOTALL | re.IGNORECASE
)


def iana_zone(name: str) -> ZoneInfo | None:
    """The zoneinfo zone whose IANA key is exactly ``name``, or None."""
    return _zoneinfo(name)


@functools.lru_cache(maxsize=1024)
def resolve_zone(name: str) -> ZoneInfo | None:
    """The IANA zone a calendar means by ``name``, or None when we cannot tell.

    Accepts IANA names (also in the wrong case), Windows names, Outlook display names
    such as ``(UTC+01:00) Amsterdam, Berlin, ...``, quoted names and vendor-prefixed names
    such as ``/mozilla.org/20050126_1/Europe/Berlin``. Never raises.
    """
    cleaned = name.strip().strip('"').strip()
    if not cleaned:
        return None
    bare = cleaned.strip("/")
    zone = _zoneinfo(bare) or _iana_casefold(bare)
    if zone is not None:
        return zone
    windows = WINDOWS_TO_OLSON.get(bare) or _windows_casefold().get(bare.casefold())
    if windows is not None:
        return _zoneinfo(windows)
    if bare.casefold() in _UTC_ALIASES:
        return _zoneinfo("UTC")
    if "/" in bare:
        return _zone_from_suffix(bare)
    return _zone_from_display_name(bare)


def to_utc(local: datetime) -> datetime:
    """The UTC instant of an aware wall time, by the RFC 5545 rules for gaps and overlaps.

    zoneinfo already reads ``fold=0`` that way. Zones built from a VTIMEZONE (dateutil's
    tzical) read a wall time inside a gap with the offset *after* the gap, so for those we
    detect the gap (the instant does not map back to the same wall time) and use the
    offset in force a day earlier, i.e. before the gap.
    """
    zone = local.tzinfo
    if zone is None:
        raise ValueError(f"to_utc needs an aware datetime, got {local!r}")
    local = local.replace(fold=0)
    instant = local.astimezone(UTC)
    if isinstance(zone, ZoneInfo | timezone):
        return instant
    wall = local.replace(tzinfo=None)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # Zone transitions are months apart, so one day earlier is safely before the gap.
    before = (instant - timedelta(days=1)).astimezone(zone).utcoffset()
    if before is None:  # pragma: no cover - only a broken tzinfo returns None here
        return instant
    return (wall - before).replace(tzinfo=UTC)


def vtimezone_zones(data: str) -> dict[str, tzinfo]:
    """The zones defined by the VTIMEZONE components of one object's raw text, by TZID.

    Each block is built once per process (cached by its exact text), so objects that
    carry the same Outlook VTIMEZONE cost one dictionary lookup. Blocks that cannot be
    turned into a zone are left out.
    """
    zones: dict[str, tzinfo] = {}
    for block in _VTIMEZONE_BLOCK.findall(data):
        built = _zone_from_vtimezone(block)
        if built is not None:
            zones[built[0]] = built[1]
    return zones


@functools.lru_cache(maxsize=512)
def _zone_from_vtimezone(block: str) -> tuple[str, tzinfo] | None:
    try:
        component = icalendar.Timezone.from_ical(block)
        if not isinstance(component, icalendar.Timezone):
            return None
        tzid = str(component["TZID"])
        # lookup_tzid=False: build from this definition, never from icalendar's global cache.
        return tzid, component.to_tz(lookup_tzid=False)
    except Exception:  # a broken VTIMEZONE, whatever the error, must not break its object
        return None


@functools.lru_cache(maxsize=1024)
def _zoneinfo(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: keys like "../x" or "/abs"; OSError: a directory such as "Europe".
        return None


def _iana_casefold(name: str) -> ZoneInfo | None:
    key = _iana_keys().get(name.casefold())
    return None if key is None else _zoneinfo(key)


@functools.cache
def _iana_keys() -> dict[str, str]:
    return {key.casefold(): key for key in sorted(available_timezones())}


@functools.cache
def _windows_casefold() -> dict[str, str]:
    return {windows.casefold(): olson for windows, olson in WINDOWS_TO_OLSON.items()}


@functools.cache
def _city_keys() -> dict[str, str]:
    """IANA keys by their last component in plain words: "buenos aires" -> "America/..."."""
    cities: dict[str, str] = {}
    for key in sorted(available_timezones()):
        if "/" in key and not key.startswith("Etc/"):
            cities.setdefault(key.rsplit("/", 1)[1].replace("_", " ").casefold(), key)
    return cities


def _zone_from_suffix(name: str) -> ZoneInfo | None:
    """ "/mozilla.org/20050126_1/Europe/Berlin" -> Europe/Berlin, longest suffix first."""
    parts = [part for part in name.split("/") if part]
    for first in range(1, len(parts)):
        suffix = "/".join(parts[first:])
        if "/" in suffix:
            zone = _zoneinfo(suffix) or _iana_casefold(suffix)
        else:
            # A single word is only trusted for UTC ("tzone://Microsoft/Utc"): words like
            # "EST" or "Berlin" after an unknown prefix could mean anything.
            zone = _zoneinfo("UTC") if suffix.casefold() in _UTC_ALIASES else None
        if zone is not None:
            return zone
    return None


def _zone_from_display_name(name: str) -> ZoneInfo | None:
    match = _DISPLAY_NAME.match(name)
    if match is None:
        return None
    offset = timedelta(0)
    if match["hours"] is not None:
        offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
        if match["sign"] == "-":
            offset = -offset
    places = match["places"].strip().casefold()
    region = _DISPLAY_REGIONS.get(places)
    if region is not None:
        return _zoneinfo(region)
    for place in re.split(r"[,:;/]| and ", places):
        key = _city_keys().get(place.strip().rstrip("."))
        zone = None if key is None else _zoneinfo(key)
        if zone is not None and _has_standard_offset(zone, offset):
            return zone
    return None


def _has_standard_offset(zone: ZoneInfo, offset: timedelta) -> bool:
    """Whether ``offset`` is the zone's standard (non-DST) offset this year.

    Guards the city match: "(UTC+10:00) Canberra" must not match a "Canberra" elsewhere,
    and a display name with a stale offset is better left unresolved.
    """
    year = datetime.now(UTC).year
    for month in (1, 7):
        moment = datetime(year, month, 1, tzinfo=zone)
        utcoffset, dst = moment.utcoffset(), moment.dst()
        if utcoffset is not None and utcoffset - (dst or timedelta(0)) == offset:
            return True
    return False
