"""The iTIP object of one session: the calendar part of an invite (RFC 5546, RFC 6047).

Glossary
--------
iTIP object   one VCALENDAR with a METHOD, one UID, sent by email. A receiving calendar
              applies it: REQUEST creates or updates the event, CANCEL removes it.
UID           the session's identity for its whole life: the owner's event and every object
              we ever send about the session share it, so updates replace instead of duplicate.
SEQUENCE      the revision of the session; receivers drop an object whose SEQUENCE is not
              higher than what they have, so the change engine raises it on every time change
              and cancel. Here it is only carried.
DTSTAMP       when the object was made (UTC, fresh for every object).
content line  ``NAME;PARAM=VALUE:value``, CRLF-terminated and folded at 75 octets.

The text is written line by line rather than through icalendar, whose 7.3 serializer escapes
TEXT wrongly and folds inside escapes; text escaping and the VTIMEZONE (a yearly
STANDARD/DAYLIGHT pair, the shape Outlook understands) come from
``calsync.calendars.ical.session_event``, so invites and the owner's events agree byte for byte in
what they share. A zone no yearly rule describes is written in UTC instead, as Outlook would
misread its VTIMEZONE.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from calsync.calendars.ical.lines import fold
from calsync.calendars.ical.session_event import (
    PRODID,
    Person,
    check_link,
    escape_text,
    vtimezone_text,
    wall_time,
)
from calsync.calendars.ical.timezones import iana_zone
from calsync.notify.values import Method, SessionNotice

__all__ = ["clean_text", "fold_line", "itip_object", "one_line"]

# Line and paragraph separators other than CR/LF: str.splitlines() and some parsers break
# lines at them, so they are turned into plain line breaks before anything else.
_OTHER_BREAKS = {0x85: "\n", 0x2028: "\n", 0x2029: "\n"}
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """``text`` made safe for any output: line breaks as ``\\n``, no other control characters
    (tabs stay), no lone surrogates (from JSON such as ``"\\ud800"``)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = re.sub(r"\r\n?", "\n", text.translate(_OTHER_BREAKS))
    return _CONTROLS.sub("", text)


def one_line(text: str) -> str:
    """``clean_text`` on one line: every run of whitespace (line breaks too) is one space."""
    return " ".join(clean_text(text).split())


def fold_line(line: str) -> str:
    """One content line, folded at 75 octets (``calendars.ical.lines.fold``), with its CRLF."""
    return fold(line)


def itip_object(
    method: Method | str,
    session: SessionNotice,
    *,
    organizer: Person,
    attendees: tuple[Person, ...],
    summary: str,
    description: str,
    url: str | None,
    now: datetime,
    rsvp: bool,
) -> str:
    """The VCALENDAR text (CRLF, folded) with ``method`` for ``session``.

    ``attendees`` get PARTSTAT=NEEDS-ACTION, and RSVP=TRUE when ``rsvp`` (after a time
    change). ``url`` (the customer's manage link, only in the customer's copy) becomes URL.
    ``now`` (aware) becomes DTSTAMP. STATUS is CONFIRMED for REQUEST, CANCELLED for CANCEL.

    Raises ValueError when ``method`` does not fit the session's status (a cancelled session
    is never sent as REQUEST), without attendees, for a naive ``now``, an unusable ``url`` or
    a zone zoneinfo does not know.
    """
    method = Method(method)
    if method is not session.method:
        raise ValueError(f"Session {session.uid!r} is {session.status}; it is not sent as {method}")
    if not attendees:
        raise ValueError(f"An iTIP {method} needs at least one ATTENDEE")
    if now.tzinfo is None:
        raise ValueError("itip_object needs an aware `now`")
    if url is not None:
        check_link(url)
    timezone, start, end = _times(session)

    head = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", "CALSCALE:GREGORIAN"]
    head.append(f"METHOD:{method}")
    event = [
        "BEGIN:VEVENT",
        f"UID:{_text(session.uid)}",
        f"SEQUENCE:{session.sequence}",
        f"DTSTAMP:{_utc(now)}",
        _date_time("DTSTART", start),
        _date_time("DTEND", end),
        f"SUMMARY:{_text(summary)}",
        f"DESCRIPTION:{_text(description)}",
    ]
    if url is not None:
        event.append(f"URL:{url}")
    event.append(f"ORGANIZER{_cn(organizer)}:mailto:{organizer.email}")
    for person in attendees:
        params = f"{_cn(person)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION"
        if rsvp and method is Method.REQUEST:
            params += ";RSVP=TRUE"
        event.append(f"ATTENDEE{params}:mailto:{person.email}")
    event += [
        "STATUS:" + ("CANCELLED" if method is Method.CANCEL else "CONFIRMED"),
        # A cancelled session no longer blocks the receiver's time.
        "TRANSP:" + ("TRANSPARENT" if method is Method.CANCEL else "OPAQUE"),
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    # The VTIMEZONE (CRLF text, folded already) goes between the header and the event.
    return "".join(map(fold_line, head)) + timezone + "".join(map(fold_line, event))


def _times(session: SessionNotice) -> tuple[str, datetime, datetime]:
    """(VTIMEZONE text or "", start, end): wall times in the session's zone where a TZID can
    express them and Outlook can read the zone, else UTC."""
    zone = iana_zone(session.timezone)
    if zone is None:
        raise ValueError(f"Not an IANA time zone: {session.timezone!r}")
    start, end = wall_time(session.start, zone), wall_time(session.end, zone)
    if start.tzinfo is UTC and end.tzinfo is UTC:
        return "", start, end
    timezone = vtimezone_text(session.timezone, session.start, session.end)
    if "RDATE" in timezone:
        # Irregular rules (e.g. Morocco's Ramadan changes): Outlook only understands one
        # yearly STANDARD/DAYLIGHT pair, so the times go out in UTC.
        return "", wall_time(session.start, UTC), wall_time(session.end, UTC)
    return timezone, start, end


def _date_time(name: str, moment: datetime) -> str:
    if moment.tzinfo is UTC:
        return f"{name}:{_utc(moment)}"
    tzid = str(moment.tzinfo)
    return f"{name};TZID={tzid}:{moment.strftime('%Y%m%dT%H%M%S')}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    return escape_text(clean_text(value))


_READ_AS_ESCAPE = re.compile(r"\\(?=[,;:\\])")


def _cn(person: Person) -> str:
    """``;CN="…"`` or "" for a person without a name.

    A parameter value cannot hold control characters or DQUOTE. A name is one line; DQUOTE
    becomes an apostrophe (RFC 6868's ``^'`` is shown raw by clients that lack it, which
    includes Outlook); a caret is written ``^^`` so that RFC 6868 readers don't take it for
    an escape. A backslash before ``,;:\\`` becomes a slash: parameters have no backslash
    escapes (RFC 5545), but icalendar and clients built like it unescape those pairs anyway,
    so a name "\\," would be read as ",".
    """
    name = _READ_AS_ESCAPE.sub("/", one_line(person.name).replace('"', "'"))
    name = name.replace("^", "^^")
    return f';CN="{name}"' if name else ""
