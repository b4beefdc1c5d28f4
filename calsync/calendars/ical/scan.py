"""A light scan of iCalendar text, without a full parse: for values asked of every item of
every sync (such as its UID), where parsing thousands of objects would dominate a poll."""

from __future__ import annotations

import re

from calsync.calendars.ical.lines import unfolded_lines

# For item_uid's scan: a property name.
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9-]+(?=[;:])")


def item_uid(data: str) -> str | None:
    """The UID of the first VEVENT in ``data``, or None if there is none.

    A light scan of the text instead of a full parse, because it is asked for every item of
    every sync. It does not validate: use ``parse_calendar`` for that. Never raises.
    """
    stack: list[str] = []
    for line in unfolded_lines(data):
        match = _PROPERTY_NAME.match(line)
        name = match[0].upper() if match else ""
        if name == "BEGIN":
            stack.append(content_value(line).strip().upper())
        elif name == "END":
            if stack:
                stack.pop()
        elif name == "UID" and stack[-1:] == ["VEVENT"] and stack[:1] == ["VCALENDAR"]:
            return unescape_text(content_value(line))
    return None


def content_value(line: str) -> str:
    """The raw value: what follows the first colon that is not inside a quoted parameter."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[position + 1 :]
    return ""


def unescape_text(value: str) -> str:
    """A TEXT value's escapes undone (RFC 5545 3.3.11): ``\\,`` ``\\;`` ``\\\\`` and ``\\n``."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], value)
