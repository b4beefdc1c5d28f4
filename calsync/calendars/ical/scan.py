"""A light scan of iCalendar text, without a full parse: for values asked of every item of
every sync (such as its UID), where parsing thousands of objects would dominate a poll."""

from __future__ import annotations

import re
from collections.abc import Iterator

# For item_uid's scan: the line breaks RFC 5545 allows, and a property name.
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9-]+(?=[;:])")


def item_uid(data: str) -> str | None:
    """The UID of the first VEVENT in ``data``, or None if there is none.

    A light scan of the text instead of a full parse, because it is asked for every item of
    every sync. It does not validate: use ``parse_calendar`` for that. Never raises.
    """
    stack: list[str] = []
    for line in _unfolded_lines(data):
        match = _PROPERTY_NAME.match(line)
        name = match[0].upper() if match else ""
        if name == "BEGIN":
            stack.append(_content_value(line).strip().upper())
        elif name == "END":
            if stack:
                stack.pop()
        elif name == "UID" and stack[-1:] == ["VEVENT"] and stack[:1] == ["VCALENDAR"]:
            return _unescape_text(_content_value(line))
    return None


def _unfolded_lines(data: str) -> Iterator[str]:
    """Content lines with RFC 5545 folding (CRLF or LF, then a space or tab) undone."""
    current: list[str] = []
    for raw in _LINE_BREAK.split(data):
        if raw[:1] in (" ", "\t") and current:
            current.append(raw[1:])
            continue
        if current:
            yield "".join(current)
        current = [raw]
    if current:
        yield "".join(current)


def _content_value(line: str) -> str:
    """The raw value: what follows the first colon that is not inside a quoted parameter."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[position + 1 :]
    return ""


def _unescape_text(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], value)
