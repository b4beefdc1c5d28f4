"""The part of a calendar object's text that busy time reads, cut out before the full parse.

Parsing is most of a first sync's CPU: icalendar builds a value (with parameters, escapes and a
case-insensitive dict) for every content line, and a typical object carries three times more
lines than busy time looks at: the title, the description, the location, the guests, the
alarms, timestamps, and a VTIMEZONE that only repeats an IANA zone calsync already knows. So
``busy_text`` keeps the lines ``busy_intervals`` reads and drops the rest, in one pass over the
unfolded lines, and the parse that follows does a third of the work. It also returns the
object's UID, read in the same pass, so nothing else scans the text again.

What is kept (everything else inside an event is dropped):

- every property of the VCALENDAR itself (``X-WR-TIMEZONE`` matters), and every line of a
  component that is neither an event, a to-do, a journal entry nor a time zone;
- inside VEVENT, VTODO and VJOURNAL: the times and rules (DTSTART, DTEND, DURATION, RRULE,
  RDATE, EXDATE, EXRULE, RECURRENCE-ID), what decides whether an occurrence blocks (STATUS,
  TRANSP, ORGANIZER, and the ATTENDEE lines that name one of the owner's addresses), and what
  ties overrides to their master (UID, SEQUENCE); their nested components (alarms) go;
- a VTIMEZONE whose TZID is not an IANA name (IANA zones are read from zoneinfo, never from
  the object's VTIMEZONE; see ``busy._ObjectReader._zone_for_tzid``);
- any line that does not even look like a property, so that broken text stays broken.

Text that does not start with ``BEGIN:VCALENDAR`` is returned as it is: the parser's error
about it must stay the same.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from calsync.calendars.ical.lines import unfolded_lines
from calsync.calendars.ical.scan import content_value, item_uid, unescape_text
from calsync.calendars.ical.timezones import iana_zone

__all__ = ["SlimObject", "busy_text"]

_NAME = re.compile(r"[A-Za-z0-9-]+(?=[;:])")
_ITEMS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})
_KEPT = frozenset(
    {
        "UID",
        "SEQUENCE",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "RDATE",
        "EXDATE",
        "EXRULE",
        "RECURRENCE-ID",
        "STATUS",
        "TRANSP",
        "ORGANIZER",
    }
)


# The event properties the parser-free path reads, and the calendar properties it allows.
_PLAIN = frozenset({"DTSTART", "DTEND", "STATUS", "TRANSP"})
_CALENDAR_PLAIN = frozenset({"VERSION", "PRODID", "CALSCALE", "METHOD", "X-WR-CALNAME"})


@dataclass(frozen=True, slots=True)
class SlimObject:
    """An object's text cut down to what busy time reads, and the UID of its first VEVENT.

    ``plain`` is set for the most common object, one event and nothing else: no recurrence,
    no ATTENDEE line naming the owner, no DURATION, no VTODO/VJOURNAL or other component, no
    X-WR-TIMEZONE, no VTIMEZONE calsync would have to read; it maps each of DTSTART, DTEND,
    STATUS and TRANSP present (once each) to its unfolded line, so busy time can be read
    without a parser (``busy._plain_busy``, which still hands anything unusual to the parser).
    """

    text: str
    uid: str | None
    plain: dict[str, str] | None = None


def busy_text(data: str, owner_addresses: Collection[str] = ()) -> SlimObject:
    """``data`` with only the lines busy time reads (see the module docstring), unfolded and
    joined by CRLF; ``owner_addresses`` (lower case, without ``mailto:``) pick the ATTENDEE
    lines to keep. Never raises: text it cannot follow is returned whole."""
    lines = unfolded_lines(data)
    first = next(lines, "")
    if first.strip().upper() != "BEGIN:VCALENDAR":
        return SlimObject(data, item_uid(data))
    kept = [first]
    uid: str | None = None
    # What disqualifies the object from the parser-free path (see SlimObject.plain).
    plain: dict[str, str] | None = {}
    events = 0
    # Where we are: the names of the open components below the VCALENDAR.
    stack: list[str] = []
    zone: list[str] | None = None  # the lines of the VTIMEZONE being read
    zone_id = ""
    for line in lines:
        match = _NAME.match(line)
        name = match[0].upper() if match else ""
        if name in ("BEGIN", "END"):
            component = line[len(name) + 1 :].strip().upper()
            if name == "BEGIN":
                stack.append(component)
            elif stack:
                stack.pop()
            if zone is not None:
                zone.append(line)
                if not stack:  # the VTIMEZONE ends: kept only when zoneinfo cannot stand in
                    if iana_zone(zone_id) is None:
                        kept += zone
                        plain = None
                    zone = None
                continue
            if name == "BEGIN" and len(stack) == 1:
                if component == "VEVENT":
                    events += 1
                elif component != "VTIMEZONE":
                    plain = None
            if name == "BEGIN" and stack == ["VTIMEZONE"]:
                zone, zone_id = [line], ""
                continue
            # An item's own BEGIN/END stays; its nested components (alarms) go.
            depth = len(stack) + (name == "END")
            if depth <= 1 or stack[0] not in _ITEMS:
                kept.append(line)
            continue
        if zone is not None:
            if name == "TZID" and len(stack) == 1:
                zone_id = line[5:].strip()
            zone.append(line)
            continue
        if not stack or stack[0] not in _ITEMS:
            kept.append(line)  # the calendar's own properties, or an unknown component
            if stack or (name not in _CALENDAR_PLAIN and line.strip()):
                plain = None
            continue
        if len(stack) > 1:
            continue  # inside an alarm
        if name == "UID" and uid is None and stack[0] == "VEVENT":
            uid = unescape_text(content_value(line))
        if name in _KEPT or not name:
            kept.append(line)
            if plain is not None:
                if name in _PLAIN and name not in plain:
                    plain[name] = line
                elif name not in ("UID", "SEQUENCE", "ORGANIZER"):
                    # Recurrence, a repeated or nameless line. (An organizer matters only
                    # next to the owner's ATTENDEE line, which disqualifies by itself.)
                    plain = None
        elif name == "ATTENDEE" and owner_addresses:
            lowered = line.lower()
            if any(address in lowered for address in owner_addresses):
                kept.append(line)
                plain = None
    if zone is not None:  # an unclosed VTIMEZONE: keep it, the parser will say what is wrong
        kept += zone
        plain = None
    last = next((line for line in reversed(kept) if line.strip()), "")
    if events != 1 or stack or last.strip().upper() != "END:VCALENDAR":
        plain = None
    return SlimObject("\r\n".join(kept) + "\r\n", uid, plain)
