"""The iCalendar object of one booked session, as calsync writes it into the owner's calendar.

Glossary
--------
session event  one booked session as calsync writes it: a VCALENDAR holding one VEVENT whose
               UID stays the same for the session's whole life (DESIGN §5.5).
link block     the manage link inside DESCRIPTION, between two marker lines (DESIGN §5.4), so
               that it can be found, replaced and never duplicated, while the owner's text
               around it stays as it was. It reads, in any calendar app::

                   -- Cancel or reschedule (calsync) --
                   https://book.example.org/m/AbC...
                   -- end calsync --

               It goes at the end of the description, after a blank line. The same link is
               also in URL, and the booking id in X-CALSYNC-BOOKING.
owner text     everything in DESCRIPTION outside the link block: ours at first (e.g.
               "Session 2 of 3"), the owner's to edit afterwards.
VTIMEZONE      the definition of the zone named by TZID, built here from zoneinfo: a yearly
               STANDARD/DAYLIGHT pair from RRULEs where the zone follows a yearly rule (the
               shape Outlook understands), else the list of transitions around the event.

``calsync.calendars.ical.event_edit`` changes such objects after the owner has edited them.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import icalendar

from calsync.calendars.ical.timezones import iana_zone, to_utc

__all__ = [
    "LINK_BLOCK_END",
    "LINK_BLOCK_START",
    "PRODID",
    "LinkBlock",
    "Person",
    "SessionEvent",
    "build_event",
    "check_link",
    "description_with_link",
    "escape_text",
    "find_link_blocks",
    "is_marker_line",
    "is_utc_zone",
    "link_block",
    "split_description",
    "vtimezone_text",
    "wall_time",
]

PRODID = "-//calsync//calsync//EN"

# The marker lines. Never change them: events already in owners' calendars carry them, and a
# changed marker would make calsync add a second block next to the old one.
LINK_BLOCK_START = "-- Cancel or reschedule (calsync) --"
LINK_BLOCK_END = "-- end calsync --"

# Zones whose times are written as UTC ("...Z"), which needs no VTIMEZONE at all.
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Etc/Zulu", "Universal", "Zulu"})

# Control characters, which a parameter value (such as CN) cannot hold.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Person:
    """An organizer or attendee: an email address and an optional display name."""

    email: str
    name: str = ""

    def __post_init__(self) -> None:
        if not self.email or "@" not in self.email or re.search(r"[\s\x00-\x1f\x7f]", self.email):
            raise ValueError(f"Not a usable email address: {self.email!r}")


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Everything calsync writes about one session. Times are aware; ``timezone`` is the
    IANA zone they are written in."""

    uid: str
    start: datetime
    end: datetime
    timezone: str
    summary: str
    organizer: Person
    attendees: tuple[Person, ...]  # the customer first, then stakeholders
    booking_id: str
    link: str
    sequence: int = 0
    description: str = ""
    status: str = "CONFIRMED"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("SessionEvent needs aware start and end times")
        if self.end <= self.start:
            raise ValueError(f"Session ends before it starts: {self.start} >= {self.end}")
        if iana_zone(self.timezone) is None:
            raise ValueError(f"Not an IANA time zone: {self.timezone!r}")
        check_link(self.link)


def build_event(session: SessionEvent, *, now: datetime) -> str:
    """The VCALENDAR text of ``session`` for the owner's calendar (CRLF, folded at 75 octets).

    ``now`` (aware) becomes DTSTAMP. Raises ValueError only for a naive ``now``; the session
    itself was checked when it was made.
    """
    if now.tzinfo is None:
        raise ValueError("build_event needs an aware `now`")
    zone = iana_zone(session.timezone)
    assert zone is not None  # checked by SessionEvent
    cal = icalendar.Calendar()
    cal.add("version", "2.0")
    cal.add("prodid", PRODID)
    start, end = wall_time(session.start, zone), wall_time(session.end, zone)
    if start.tzinfo is not UTC or end.tzinfo is not UTC:
        cal.add_component(
            icalendar.Timezone.from_ical(
                vtimezone_text(session.timezone, session.start, session.end)
            )
        )

    event = icalendar.Event()
    event.add("uid", session.uid)
    event.add("dtstamp", now.astimezone(UTC).replace(microsecond=0))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("sequence", session.sequence)
    event.add("status", session.status)
    event.add("transp", "OPAQUE")
    event.add("summary", _Text(session.summary))
    event.add("description", _Text(description_with_link(session.description, session.link)))
    event.add("url", session.link)
    event.add("x-calsync-booking", _Text(session.booking_id))
    event.add("organizer", _address(session.organizer))
    for position, person in enumerate(session.attendees):
        # In the organizer's own copy PARTSTAT is what the organizer knows: the customer
        # booked, so has accepted; stakeholders were only named and have not answered yet.
        status = "ACCEPTED" if position == 0 else "NEEDS-ACTION"
        attendee = _address(person)
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        attendee.params["PARTSTAT"] = status
        # calsync sends the invites itself; this stops the CalDAV server sending its own.
        attendee.params["SCHEDULE-AGENT"] = "CLIENT"
        event.add("attendee", attendee)
    cal.add_component(event)
    return bytes(cal.to_ical()).decode("utf-8")


class _Text(icalendar.vText):
    """A TEXT value escaped by ``escape_text``: icalendar 7.3's own escaping turns a
    backslash followed by "N" (as in "C:\\Notes") into a line break."""

    def to_ical(self) -> bytes:
        return escape_text(str(self)).encode("utf-8")


def escape_text(text: str) -> str:
    """``text`` as an RFC 5545 TEXT value. Line breaks of any kind become ``\\n``; other
    control characters, which TEXT cannot hold, are dropped."""
    text = re.sub(r"\r\n?", "\n", text)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _address(person: Person) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{person.email}")
    # Line breaks or other control characters in a parameter are invalid and confuse
    # clients; a name is one line, so they become spaces.
    name = " ".join(_CONTROL.sub(" ", person.name).split())
    if name:
        address.params["CN"] = name  # icalendar quotes it and escapes '"' per RFC 6868
    return address


def check_link(link: str) -> None:
    """Raise ValueError for a link that cannot be written as a URI value or a block line."""
    if not link or re.search(r"[\s\x00-\x1f\x7f]", link):
        raise ValueError(f"Not a usable link: {link!r}")


# --- The link block ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkBlock:
    """Where one link block sits in an (unescaped) description.

    ``text[start:end]`` is the block from its first marker through its last; ``text[
    separator:end]`` adds the line breaks (at most two) that separate it from the text above.
    """

    separator: int
    start: int
    end: int
    link: str | None


def link_block(link: str) -> str:
    """The block's text for ``link``, without a trailing line break."""
    check_link(link)
    return f"{LINK_BLOCK_START}\n{link}\n{LINK_BLOCK_END}"


def is_marker_line(line: str) -> bool:
    """Whether a description line is one of the two markers (clients may pad lines)."""
    return line.strip() in (LINK_BLOCK_START, LINK_BLOCK_END)


def find_link_blocks(text: str) -> list[LinkBlock]:
    """The link blocks of an unescaped description, in order.

    A block runs from a start-marker line to the next end-marker line; a start marker without
    an end (a client cut the text short) runs to the end of the text.
    """
    blocks: list[LinkBlock] = []
    position, open_at, link = 0, -1, None
    for line in text.split("\n"):
        stripped = line.strip()
        if open_at < 0 and stripped == LINK_BLOCK_START:
            open_at, link = position, None
        elif open_at >= 0 and stripped == LINK_BLOCK_END:
            blocks.append(_block(text, open_at, position + len(line), link))
            open_at = -1
        elif open_at >= 0 and link is None and stripped:
            link = stripped
        position += len(line) + 1
    if open_at >= 0:
        blocks.append(_block(text, open_at, len(text), link))
    return blocks


def _block(text: str, start: int, end: int, link: str | None) -> LinkBlock:
    separator = start
    while separator > 0 and start - separator < 2 and text[separator - 1] == "\n":
        separator -= 1
    return LinkBlock(separator=separator, start=start, end=end, link=link)


def description_with_link(text: str, link: str) -> str:
    """``text`` (unescaped) with exactly one link block for ``link``.

    An existing block is replaced where it is (further ones are removed); otherwise the block
    is appended after a blank line. The text outside the blocks is kept exactly.
    """
    blocks = find_link_blocks(text)
    if not blocks:
        return f"{text}\n\n{link_block(link)}" if text else link_block(link)
    first, *rest = blocks
    for block in reversed(rest):
        text = text[: block.separator] + text[block.end :]
    return text[: first.start] + link_block(link) + text[first.end :]


def split_description(text: str) -> tuple[str, str | None]:
    """The owner text of an unescaped description (every block and its separator removed),
    and the link of the first block (None without a block)."""
    blocks = find_link_blocks(text)
    for block in reversed(blocks):
        text = text[: block.separator] + text[block.end :]
    return text, blocks[0].link if blocks else None


# --- Times and zones -----------------------------------------------------------------------


def is_utc_zone(name: str) -> bool:
    """Whether times in zone ``name`` are written in UTC form, without TZID."""
    return name in _UTC_ZONES


def wall_time(instant: datetime, zone: tzinfo) -> datetime:
    """``instant`` as a wall time in ``zone``, or in UTC if a TZID cannot express it.

    RFC 5545 reads a wall time that occurs twice as its first occurrence, so an instant in
    the second pass of a repeated hour (DST ends) can only be written in UTC.
    """
    if zone is UTC or is_utc_zone(str(zone)):
        return instant.astimezone(UTC).replace(microsecond=0)
    wall = instant.astimezone(zone).replace(microsecond=0, fold=0)
    if to_utc(wall) != instant.astimezone(UTC).replace(microsecond=0):
        return instant.astimezone(UTC).replace(microsecond=0)
    return wall


def vtimezone_text(tzid: str, first: datetime, last: datetime) -> str:
    """A VTIMEZONE (CRLF text) for IANA zone ``tzid``: right from the year before ``first``
    (from its first change, for a zone with DST) until at least seven years after ``last``.
    Raises ValueError for a name zoneinfo does not know."""
    if iana_zone(tzid) is None:
        raise ValueError(f"Not an IANA time zone: {tzid!r}")
    first_year, last_year = first.astimezone(UTC).year - 1, last.astimezone(UTC).year
    # A yearly rule is accepted only if it matches every change in the window, and the window
    # spans the 7-year cycle of weekdays: three years would take Israel's "Friday before the
    # last Sunday" of March for "the last Friday", which differs in 2029.
    return _vtimezone_text(tzid, first_year, last_year + _RULE_CHECK_YEARS)


@dataclass(frozen=True, slots=True)
class _Transition:
    at: datetime  # the UTC instant of the change
    before: timedelta
    after: timedelta
    name: str
    daylight: bool

    @property
    def onset(self) -> datetime:
        # RFC 5545 §3.6.5: DTSTART is the local time of the onset in the offset *before* it
        # (TZOFFSETFROM). icalendar's Timezone.from_tzinfo writes the spring-forward onset in
        # the offset after it, an hour late for readers that follow the RFC (dateutil does).
        return (self.at + self.before).replace(tzinfo=None)

    @property
    def key(self) -> tuple[timedelta, timedelta, str, bool]:
        return self.before, self.after, self.name, self.daylight


# Years after the event over which a yearly rule is checked against zoneinfo.
_RULE_CHECK_YEARS = 7

_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@functools.lru_cache(maxsize=256)
def _vtimezone_text(tzid: str, first_year: int, last_year: int) -> str:
    zone = iana_zone(tzid)
    assert zone is not None
    low, high = datetime(first_year, 1, 1, tzinfo=UTC), datetime(last_year + 1, 1, 1, tzinfo=UTC)
    transitions = _transitions(zone, low, high)
    result = icalendar.Timezone()
    result.add("tzid", tzid)

    groups: dict[tuple[timedelta, timedelta, str, bool], list[_Transition]] = {}
    for transition in transitions:
        groups.setdefault(transition.key, []).append(transition)
    rules = {key: _yearly_rule(group, first_year, last_year) for key, group in groups.items()}
    if transitions and len(groups) == 2 and all(rules.values()):
        # The usual case: a yearly STANDARD/DAYLIGHT pair.
        for key, group in groups.items():
            result.add_component(_observance(group[0], rrule=rules[key]))
        return bytes(result.to_ical()).decode("utf-8")

    # No yearly rule fits (no DST, a zone that changed its rules, Morocco's Ramadan, ...):
    # the state at the start of the window, then every transition in it.
    local = low.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    initial = _Transition(low, offset, offset, local.tzname() or "", False)
    result.add_component(_observance(initial))
    for group in groups.values():
        result.add_component(_observance(group[0], rdates=[t.onset for t in group[1:]]))
    return bytes(result.to_ical()).decode("utf-8")


def _observance(
    transition: _Transition,
    *,
    rrule: icalendar.vRecur | None = None,
    rdates: list[datetime] | None = None,
) -> icalendar.Component:
    observance = (
        icalendar.TimezoneDaylight() if transition.daylight else icalendar.TimezoneStandard()
    )
    observance.add("dtstart", transition.onset)
    if rrule is not None:
        observance.add("rrule", rrule)
    if rdates:
        observance.add("rdate", rdates)
    observance.add("tzoffsetfrom", transition.before)
    observance.add("tzoffsetto", transition.after)
    if transition.name:
        observance.add("tzname", transition.name)
    return observance


def _transitions(zone: tzinfo, low: datetime, high: datetime) -> list[_Transition]:
    """Every change of UTC offset in [low, high): sampled every 6 hours (zones never change
    twice that fast), then located to the second by bisection."""
    step = 6 * 3600
    found: list[_Transition] = []
    moment = int(low.timestamp())
    previous = _offset(zone, moment)
    while moment < high.timestamp():
        current = _offset(zone, moment + step)
        if current != previous:
            before, after = moment, moment + step
            while after - before > 1:
                middle = (before + after) // 2
                if _offset(zone, middle) == previous:
                    before = middle
                else:
                    after = middle
            found.append(_transition(zone, after, previous, current))
        moment, previous = moment + step, current
    return found


def _offset(zone: tzinfo, timestamp: int) -> timedelta:
    return datetime.fromtimestamp(timestamp, zone).utcoffset() or timedelta(0)


def _transition(zone: tzinfo, timestamp: int, before: timedelta, after: timedelta) -> _Transition:
    new = datetime.fromtimestamp(timestamp, zone)
    old = datetime.fromtimestamp(timestamp - 1, zone)
    new_dst, old_dst = new.dst() or timedelta(0), old.dst() or timedelta(0)
    # DAYLIGHT is summer time. Europe/Dublin marks winter with a *negative* DST, so leaving
    # it (dst < 0 before) is going into summer time as well.
    daylight = new_dst > timedelta(0) or old_dst < timedelta(0)
    return _Transition(
        datetime.fromtimestamp(timestamp, UTC), before, after, new.tzname() or "", daylight
    )


def _yearly_rule(
    group: list[_Transition], first_year: int, last_year: int
) -> icalendar.vRecur | None:
    """A yearly RRULE (month, nth weekday, local time) matching every onset of ``group``, if
    there is one change a year in every year of the window."""
    onsets = [transition.onset for transition in group]
    if [onset.year for onset in onsets] != list(range(first_year, last_year + 1)):
        return None
    head = onsets[0]
    if any(
        (o.month, o.weekday(), o.time()) != (head.month, head.weekday(), head.time())
        for o in onsets
    ):
        return None
    from_start = {(o.day - 1) // 7 + 1 for o in onsets}
    from_end = {-((calendar.monthrange(o.year, o.month)[1] - o.day) // 7 + 1) for o in onsets}
    if from_end == {-1}:
        ordinal = -1  # "last Sunday" is the common rule; it also reads as "4th" in some years
    elif len(from_start) == 1:
        ordinal = from_start.pop()
    elif len(from_end) == 1:
        ordinal = from_end.pop()
    else:
        return None  # e.g. Israel's "Friday before the last Sunday"
    return icalendar.vRecur(
        freq="YEARLY", bymonth=head.month, byday=f"{ordinal}{_DAYS[head.weekday()]}"
    )
