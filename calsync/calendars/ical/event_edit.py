"""Surgical edits of an event the owner may have edited in any client.

The owner's copy of a session can come back from Apple Calendar, Thunderbird, Outlook or
Google with their own properties, alarms, line ends and folding. Re-serializing it through
icalendar would reorder and reformat all of that, and a client may then show it as changed or
drop what it does not recognise. So these functions work on content lines: they unfold, replace
or insert only the property lines they must, fold only the lines they produced (with the
object's own line ends), and leave every other line byte for byte as it was. A property whose
new content equals the old one is not touched at all, which also makes the edits idempotent.

Glossary
--------
content line  one property as RFC 5545 defines it, after unfolding (``NAME;PARAMS:VALUE``).
raw value     the text after the colon, still escaped; the *unescaped* text is what people read.
own property  a property of the VEVENT itself, not of a VALARM inside it.

Every function raises ``InvalidCalendarData`` for text that is not a VCALENDAR with a VEVENT;
``with_times`` also for an object it must not move (recurring, or not the expected UID).
The link block and the VTIMEZONE come from ``calsync.calendars.ical.session_event``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.lines import fold, unfold
from calsync.calendars.ical.session_event import (
    check_link,
    description_with_link,
    escape_text,
    find_link_blocks,
    link_block,
    split_description,
    vtimezone_text,
    wall_time,
)
from calsync.calendars.ical.timezones import iana_zone, resolve_zone, to_utc, vtimezone_zones

__all__ = [
    "REDACTED_TOKEN",
    "description_outside_block",
    "event_times",
    "is_cancelled",
    "link_of",
    "redact_link_tokens",
    "sequence_of",
    "with_cancelled",
    "with_link",
    "with_times",
]

# A physical line with its line break; a lone CR counts as a break, as in ics_scan.
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_NAME = re.compile(r"[A-Za-z0-9-]+")
# One unit of an escaped TEXT value. An unknown escape such as "\:" stays as written, the way
# icalendar reads it, so the backslash is a unit of its own.
_TEXT_UNIT = re.compile(r"\\[\\;,nN]|.", re.DOTALL)
# A calsync manage link's token: ``/m/`` and secrets.token_urlsafe(24) (32 characters), also
# percent-encoded as a redirect parameter. Matched by shape, not by base_url: the base URL may
# have changed since the link was written, and the token works on any host that serves it.
_LINK_TOKEN = re.compile(r"(/|%2[fF])m(/|%2[fF])[A-Za-z0-9_-]{32,}")
REDACTED_TOKEN = "redacted"
_RECURRENCE = frozenset({"RRULE", "RDATE", "RECURRENCE-ID"})
_DURATION = re.compile(
    r"(?P<sign>[+-])?P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


# --- Public functions ----------------------------------------------------------------------


def with_link(data: str, *, link: str, booking_id: str) -> str:
    """``data`` with the link block in the DESCRIPTION of every VEVENT, URL set to ``link`` and
    X-CALSYNC-BOOKING to ``booking_id``.

    An existing block is replaced where it is (further blocks are removed), else appended; a
    missing DESCRIPTION is added. The text outside the block keeps even its escaping.
    Idempotent. Raises ValueError for an unusable link.
    """
    check_link(link)
    document = _Document.parse(data)
    plan = _Plan(document)
    for event in document.events:
        description = event.first("DESCRIPTION")
        if description is None:
            plan.set(
                event, "DESCRIPTION", "DESCRIPTION:" + escape_text(description_with_link("", link))
            )
        else:
            head, raw = _split_value(description.text)
            plan.set(event, "DESCRIPTION", head + _relink(raw, link))
        # Compared by value: Apple writes "URL;VALUE=URI:", which is the same URL.
        plan.set(event, "URL", f"URL:{link}", same=lambda raw: raw.strip() == link)
        plan.set(
            event,
            "X-CALSYNC-BOOKING",
            "X-CALSYNC-BOOKING:" + escape_text(booking_id),
            same=lambda raw: _unescape(raw) == booking_id,
        )
    return plan.render()


def link_of(data: str) -> tuple[str, str] | None:
    """``(booking_id, link)`` of a calsync event, or None for an event that is not ours.

    The booking id is X-CALSYNC-BOOKING; the link is the one in the link block, or URL where
    the owner deleted the block. None when either is missing.
    """
    for event in _Document.parse(data).events:
        booking = event.first("X-CALSYNC-BOOKING")
        if booking is None:
            continue
        _, link = split_description(event.text("DESCRIPTION") or "")
        url = event.first("URL")
        link = link or (_split_value(url.text)[1].strip() if url else None)
        return (_unescape(_split_value(booking.text)[1]), link) if link else None
    return None


def redact_link_tokens(data: str) -> str:
    """``data`` with the token of every manage link (``…/m/<token>``) replaced by
    ``REDACTED_TOKEN``: the copy calsync keeps of an event must not be a working link.

    The link block's markers, URL and X-CALSYNC-BOOKING stay, so ``link_of`` still finds a
    (redacted) link. Works on content lines (a token folded across lines is found) and
    rewrites only the lines that held a token; any text, even text that is not iCalendar,
    is accepted. Idempotent.
    """
    if not _LINK_TOKEN.search(unfold(data)):
        return data  # the usual case, found at C speed
    eol_match = re.search(r"\r\n|\n|\r", data)
    eol = eol_match[0] if eol_match else "\r\n"
    out = []
    for line in _content_lines(data):
        redacted = _LINK_TOKEN.sub(lambda m: f"{m[1]}m{m[2]}{REDACTED_TOKEN}", line.text)
        if redacted == line.text:
            out.append(line.raw)
        else:
            folded = fold(redacted, eol)
            out.append(folded if line.raw.endswith(("\n", "\r")) else folded[: -len(eol)])
    return "".join(out)


def description_outside_block(data: str) -> str:
    """The owner's text (unescaped) of the master VEVENT's DESCRIPTION, our blocks removed.

    This is what the owner wrote or kept, and what ``with_link`` preserves exactly.
    """
    return split_description(_Document.parse(data).master.text("DESCRIPTION") or "")[0]


def with_times(
    data: str,
    *,
    uid: str,
    start: datetime,
    end: datetime,
    timezone: str,
    sequence: int,
    now: datetime,
) -> str:
    """``data`` moved to [start, end) in ``timezone`` (an IANA name), with SEQUENCE and DTSTAMP.

    A DTEND stays a DTEND and a DURATION stays a DURATION (of exactly end - start). A
    VTIMEZONE for ``timezone`` is added unless the object has one with that TZID. Nothing else
    changes. Raises InvalidCalendarData for a recurring object or one whose UID is not ``uid``;
    ValueError for naive times, an empty span or an unknown zone.
    """
    _check_aware(start=start, end=end, now=now)
    if end <= start:
        raise ValueError(f"with_times needs start < end, got {start} and {end}")
    zone = iana_zone(timezone)
    if zone is None:
        raise ValueError(f"Not an IANA time zone: {timezone!r}")
    document = _Document.parse(data)
    event = document.single_event("move")
    if event.text("UID") != uid:
        raise InvalidCalendarData(
            f"This event has UID {event.text('UID')!r}, not {uid!r}: it is not the session's "
            "event, so calsync will not move it."
        )
    plan = _Plan(document)
    start_line, end_line = _time_line("DTSTART", start, zone), _time_line("DTEND", end, zone)
    plan.set(event, "DTSTART", start_line)
    if event.first("DURATION") is not None:
        plan.set(event, "DURATION", "DURATION:" + _format_duration(end - start))
    if event.first("DURATION") is None or event.first("DTEND") is not None:
        plan.set(event, "DTEND", end_line)
    _set_stamp(plan, event, sequence, now)
    uses_tzid = ";TZID=" in start_line or ";TZID=" in end_line
    if uses_tzid and timezone not in document.tzids():
        plan.insert_before(document.events[0].begin, vtimezone_text(timezone, start, end))
    return plan.render()


def with_cancelled(data: str, *, sequence: int, now: datetime, prefix: str = "Cancelled: ") -> str:
    """``data`` cancelled: STATUS:CANCELLED, TRANSP:TRANSPARENT (it no longer blocks time),
    SUMMARY starting with ``prefix`` once, SEQUENCE and DTSTAMP, in every VEVENT. Idempotent."""
    _check_aware(now=now)
    document = _Document.parse(data)
    plan = _Plan(document)
    for event in document.events:
        plan.set(event, "STATUS", "STATUS:CANCELLED")
        plan.set(event, "TRANSP", "TRANSP:TRANSPARENT")
        summary = event.first("SUMMARY")
        if summary is None:
            plan.set(event, "SUMMARY", "SUMMARY:" + escape_text(prefix.rstrip() or prefix))
        else:
            head, raw = _split_value(summary.text)
            text = _unescape(raw)
            if not (text.startswith(prefix) or text == prefix.rstrip()):
                plan.set(event, "SUMMARY", head + escape_text(prefix) + raw)
        _set_stamp(plan, event, sequence, now)
    return plan.render()


def is_cancelled(data: str) -> bool:
    """Whether the event as a whole is cancelled: STATUS:CANCELLED on the master VEVENT (a
    cancelled override cancels one occurrence only)."""
    status = _Document.parse(data).master.text("STATUS") or ""
    return status.strip().upper() == "CANCELLED"


def event_times(
    data: str, *, floating_zone: tzinfo | None = None
) -> tuple[datetime, datetime] | None:
    """The UTC [start, end) of a single (non-recurring) event; None for a recurring object or
    an event without DTSTART.

    TZIDs are read as in ``calsync.calendars.ical.timezones`` (IANA names through zoneinfo, others
    through the object's VTIMEZONE or the Windows table). Floating times and dates are read in
    ``floating_zone``. Raises InvalidCalendarData for a TZID or value that cannot be read, or a
    floating time without ``floating_zone``.
    """
    document = _Document.parse(data)
    if len(document.events) != 1 or document.events[0].recurring:
        return None
    event = document.events[0]
    start_line = event.first("DTSTART")
    if start_line is None:
        return None
    try:
        return _times(event, start_line, _ZoneReader(data, floating_zone))
    except (OverflowError, ValueError) as exc:
        # Dates past year 9999 or durations of millions of days: the owner's data, not ours.
        raise InvalidCalendarData(f"the event's times cannot be used: {exc}") from exc


def _times(event: _Event, start_line: _Line, zones: _ZoneReader) -> tuple[datetime, datetime]:
    start_wall = zones.wall(start_line.text)
    start = zones.instant(start_wall)
    end_line, duration_line = event.first("DTEND"), event.first("DURATION")
    if end_line is not None:
        return start, zones.instant(zones.wall(end_line.text))
    if duration_line is not None:
        nominal, exact = _parse_duration(_split_value(duration_line.text)[1])
        return start, zones.instant(start_wall + nominal) + exact
    # RFC 5545 §3.6.1: without DTEND or DURATION a date lasts one day, a date-time no time.
    is_date = re.fullmatch(r"\d{8}", _split_value(start_line.text)[1].strip()) is not None
    return start, zones.instant(start_wall + timedelta(days=1)) if is_date else start


def sequence_of(data: str) -> int:
    """The highest SEQUENCE of the object's VEVENTs (0 where absent): a new SEQUENCE must
    exceed it. Raises InvalidCalendarData for a SEQUENCE that is not an integer."""
    values = [event.text("SEQUENCE") or "0" for event in _Document.parse(data).events]
    try:
        return max(int(value.strip()) for value in values)
    except ValueError:
        raise InvalidCalendarData(f"SEQUENCE is not a number: {values!r}") from None


# --- Content lines -------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    raw: str  # the physical lines exactly as they were, line breaks included
    text: str  # the unfolded content line
    name: str  # the property name in upper case, "" for a line that has none


@dataclass(slots=True)
class _Event:
    """One VEVENT directly inside the VCALENDAR."""

    lines: list[_Line]
    begin: int  # index of BEGIN:VEVENT
    insert_at: int = 0  # where new properties go: before the first VALARM or END:VEVENT
    own: list[int] = field(default_factory=list)  # indices of its own property lines

    def all(self, name: str) -> list[int]:
        return [index for index in self.own if self.lines[index].name == name]

    def first(self, name: str) -> _Line | None:
        found = self.all(name)
        return self.lines[found[0]] if found else None

    def text(self, name: str) -> str | None:
        line = self.first(name)
        return None if line is None else _unescape(_split_value(line.text)[1])

    @property
    def recurring(self) -> bool:
        return any(self.lines[index].name in _RECURRENCE for index in self.own)


@dataclass(slots=True)
class _Document:
    lines: list[_Line]
    eol: str
    events: list[_Event]

    @classmethod
    def parse(cls, data: str) -> _Document:
        lines = _content_lines(data)
        first_break = re.search(r"\r\n|\n|\r", data)
        document = cls(lines, first_break[0] if first_break else "\r\n", [])
        document._structure()
        return document

    def _structure(self) -> None:
        stack: list[str] = []
        event: _Event | None = None
        seen_calendar = False
        for index, line in enumerate(self.lines):
            if not line.text.strip():
                continue
            value = _split_value(line.text)[1].strip().upper()
            if not stack and (seen_calendar or (line.name, value) != ("BEGIN", "VCALENDAR")):
                raise InvalidCalendarData(
                    "This is not one iCalendar object: expected BEGIN:VCALENDAR, found "
                    f"{line.text[:40]!r} at content line {index + 1}."
                )
            if line.name == "BEGIN":
                stack.append(value)
                if stack == ["VCALENDAR", "VEVENT"]:
                    event = _Event(self.lines, index)
                    self.events.append(event)
                elif event is not None and len(stack) == 3 and not event.insert_at:
                    event.insert_at = index
            elif line.name == "END":
                if stack[-1] != value:
                    raise InvalidCalendarData(
                        f"Broken iCalendar data: END:{value} at content line {index + 1} "
                        f"does not close BEGIN:{stack[-1]}."
                    )
                stack.pop()
                if event is not None and value == "VEVENT" and len(stack) == 1:
                    event.insert_at = event.insert_at or index
                    event = None
                seen_calendar = seen_calendar or not stack
            elif event is not None and len(stack) == 2:
                event.own.append(index)
        if stack or not seen_calendar:
            raise InvalidCalendarData("Broken iCalendar data: it ends before END:VCALENDAR.")
        if not self.events:
            raise InvalidCalendarData("This calendar object holds no event (no VEVENT).")

    @property
    def master(self) -> _Event:
        return next((e for e in self.events if not e.all("RECURRENCE-ID")), self.events[0])

    def single_event(self, action: str) -> _Event:
        if len(self.events) != 1 or self.events[0].recurring:
            raise InvalidCalendarData(
                f"This is a recurring event; calsync can only {action} single events, and its "
                "sessions are single events."
            )
        return self.events[0]

    def tzids(self) -> set[str]:
        """The TZIDs of the object's VTIMEZONE components."""
        found, inside = set(), False
        for line in self.lines:
            value = _split_value(line.text)[1].strip()
            if line.name in ("BEGIN", "END") and value.upper() == "VTIMEZONE":
                inside = line.name == "BEGIN"
            elif inside and line.name == "TZID":
                found.add(_unescape(value).strip('"'))
        return found


def _content_lines(data: str) -> list[_Line]:
    lines: list[_Line] = []
    for match in _PHYSICAL_LINE.finditer(data):
        physical = match[0]
        content = physical.rstrip("\r\n")
        if content[:1] in (" ", "\t") and lines:
            lines[-1].raw += physical
            lines[-1].text += content[1:]
            continue
        name = _NAME.match(content.lstrip("\ufeff"))
        lines.append(_Line(physical, content, name[0].upper() if name else ""))
    return lines


class _Plan:
    """Changes to a document's lines, rendered at the end so indices stay valid."""

    def __init__(self, document: _Document) -> None:
        self._document = document
        self._replaced: dict[int, str | None] = {}
        self._inserted: dict[int, list[str]] = {}

    def set(
        self,
        event: _Event,
        name: str,
        content: str,
        *,
        same: Callable[[str], bool] | None = None,
    ) -> None:
        """One ``name`` property with ``content`` in ``event``: the first replaced in place,
        further ones removed, else added to the event's own properties. The first is kept as
        it was if its content equals ``content``, or if ``same`` says so of its raw value."""
        indices = event.all(name)
        if not indices:
            self._inserted.setdefault(event.insert_at, []).append(self._fold(content))
            return
        old = self._document.lines[indices[0]].text
        if old != content and not (same is not None and same(_split_value(old)[1])):
            self._replaced[indices[0]] = self._fold(content)
        for index in indices[1:]:
            self._replaced[index] = None

    def insert_before(self, index: int, crlf_text: str) -> None:
        eol = self._document.eol
        self._inserted.setdefault(index, []).append(crlf_text.replace("\r\n", eol))

    def render(self) -> str:
        out: list[str] = []
        lines = self._document.lines
        for index, line in enumerate(lines):
            out.extend(self._inserted.get(index, ()))
            replaced = self._replaced.get(index, line.raw)
            if replaced is not None:
                out.append(replaced)
        return "".join(out)

    def _fold(self, content: str) -> str:
        return fold(content, self._document.eol)


# --- Values --------------------------------------------------------------------------------


def _split_value(text: str) -> tuple[str, str]:
    """(``NAME;PARAMS:``, raw value): the value follows the first colon outside quotes."""
    quoted = False
    for position, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return text[: position + 1], text[position + 1 :]
    return text, ""


def _params(head: str) -> dict[str, str]:
    """The parameters of ``NAME;PARAMS:`` by upper-case name (values unquoted)."""
    found: dict[str, str] = {}
    for match in re.finditer(r';([A-Za-z0-9-]+)=("[^"]*"|[^;:]*)', head):
        found.setdefault(match[1].upper(), match[2].strip('"'))
    return found


def _unescape(raw: str) -> str:
    return "".join(_unescape_unit(unit) for unit in _TEXT_UNIT.findall(raw))


def _unescape_unit(unit: str) -> str:
    if len(unit) == 1:
        return unit
    return "\n" if unit[1] in "nN" else unit[1]


def _relink(raw: str, link: str) -> str:
    """The raw DESCRIPTION value with one block for ``link``. Only the block's part of the raw
    text is rewritten: each escaped unit is one character of the unescaped text, so positions
    in the text map back to the raw value and the owner's escaping survives untouched."""
    units = _TEXT_UNIT.findall(raw)
    text = "".join(_unescape_unit(unit) for unit in units)
    offsets = [0]
    for unit in units:
        offsets.append(offsets[-1] + len(unit))
    blocks = find_link_blocks(text)
    if not blocks:
        return raw + escape_text(description_with_link(text, link)[len(text) :])
    first, *rest = blocks
    for block in reversed(rest):
        raw = raw[: offsets[block.separator]] + raw[offsets[block.end] :]
    return raw[: offsets[first.start]] + escape_text(link_block(link)) + raw[offsets[first.end] :]


def _time_line(name: str, instant: datetime, zone: tzinfo) -> str:
    wall = wall_time(instant, zone)
    if wall.tzinfo is UTC:
        return f"{name}:{wall:%Y%m%dT%H%M%S}Z"
    return f"{name};TZID={zone}:{wall:%Y%m%dT%H%M%S}"


def _set_stamp(plan: _Plan, event: _Event, sequence: int, now: datetime) -> None:
    plan.set(event, "SEQUENCE", f"SEQUENCE:{sequence}")
    plan.set(event, "DTSTAMP", f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%S}Z")


def _format_duration(span: timedelta) -> str:
    # Hours, not days: "P1D" is a nominal day (23 or 25 hours across a DST change).
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}H" if hours else "", f"{minutes}M" if minutes else ""]
    parts.append(f"{seconds}S" if seconds or not any(parts) else "")
    return "PT" + "".join(parts)


def _parse_duration(raw: str) -> tuple[timedelta, timedelta]:
    """(nominal days, exact rest) of a DURATION value (RFC 5545 §3.3.6)."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None or raw.strip() in ("P", "PT"):
        raise InvalidCalendarData(f"Not a DURATION value: {raw!r}")
    number = {key: int(value or 0) for key, value in match.groupdict("0").items() if key != "sign"}
    sign = -1 if match["sign"] == "-" else 1
    nominal = timedelta(days=sign * (7 * number["weeks"] + number["days"]))
    exact = timedelta(
        seconds=sign * (3600 * number["hours"] + 60 * number["minutes"] + number["seconds"])
    )
    return nominal, exact


def _check_aware(**values: datetime) -> None:
    for name, value in values.items():
        if value.tzinfo is None:
            raise ValueError(f"`{name}` must be an aware datetime, got {value!r}")


class _ZoneReader:
    """Reads DTSTART/DTEND values of one object into wall times and UTC instants."""

    def __init__(self, data: str, floating: tzinfo | None) -> None:
        self._data = data
        self._floating = floating
        self._defined: dict[str, tzinfo] | None = None

    def wall(self, text: str) -> datetime:
        """The value as an aware wall time (floating and dates in the floating zone)."""
        head, raw = _split_value(text)
        raw = raw.strip()
        try:
            if re.fullmatch(r"\d{8}", raw):
                value = datetime.combine(date.fromisoformat(raw), datetime.min.time())
                return value.replace(tzinfo=self._zone_for_floating(text))
            value = datetime.strptime(raw.rstrip("Zz"), "%Y%m%dT%H%M%S")
        except ValueError:
            raise InvalidCalendarData(f"Not a date or date-time: {text!r}") from None
        if raw[-1:] in "Zz":
            return value.replace(tzinfo=UTC)
        tzid = _params(head).get("TZID")
        if tzid is None:
            return value.replace(tzinfo=self._zone_for_floating(text))
        return value.replace(tzinfo=self._zone(tzid))

    @staticmethod
    def instant(wall: datetime) -> datetime:
        return to_utc(wall)

    def _zone(self, tzid: str) -> tzinfo:
        # IANA names go to zoneinfo (it knows their history); any other TZID is defined by
        # the object's own VTIMEZONE first, as RFC 5545 says, then by the name tables.
        zone: tzinfo | None = iana_zone(tzid)
        if zone is None:
            if self._defined is None:
                self._defined = vtimezone_zones(self._data)
            zone = self._defined.get(tzid) or resolve_zone(tzid)
        if zone is None:
            raise InvalidCalendarData(f"Unknown time zone {tzid!r} and no VTIMEZONE defines it.")
        return zone

    def _zone_for_floating(self, text: str) -> tzinfo:
        if self._floating is None:
            raise InvalidCalendarData(f"{text!r} is a floating time and no zone was given for it.")
        return self._floating
