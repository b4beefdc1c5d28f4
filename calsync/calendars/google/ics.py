"""Google Calendar event JSON ⇄ iCalendar text, for the Google provider.

Glossary
--------
event       one Google event resource (a dict, as the API returns it).
master      the event without ``recurringEventId``: a single event, or a recurring series
            whose ``recurrence`` holds raw RRULE/RDATE/EXDATE lines.
exception   an event with ``recurringEventId`` and ``originalStartTime``: one instance of a
            series that was moved or edited (becomes a VEVENT with RECURRENCE-ID) or cancelled
            (becomes an EXDATE on the master).
group       a master and its exceptions: one calsync item, keyed by the master's event id.

What calsync writes survives a round trip: UID (``iCalUID``), DTSTART/DTEND, SUMMARY,
DESCRIPTION, STATUS, TRANSP, SEQUENCE, RRULE/RDATE/EXDATE, X-CALSYNC-BOOKING
(``extendedProperties.private.calsyncBooking``) and other X- properties (kept verbatim in
``extendedProperties.private.calsyncX``; Google limits a value to 1024 characters, longer
sets of X- lines are dropped with a warning). ATTENDEE and ORGANIZER are read from Google
(for busy rules: an owner who declined), never written: calsync sends invites itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.lines import fold, unfold
from calsync.calendars.ical.timezones import iana_zone

log = logging.getLogger(__name__)

BOOKING_KEY = "calsyncBooking"
X_LINES_KEY = "calsyncX"
_X_LIMIT = 1024
_BOOKING_PROP = "X-CALSYNC-BOOKING"

_PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "needsAction": "NEEDS-ACTION",
}
_STATUS_TO_ICS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}
_STATUS_FROM_ICS = {v: k for k, v in _STATUS_TO_ICS.items()}
_RECURRENCE_NAMES = ("RRULE", "RDATE", "EXDATE", "EXRULE")
_CONTENT_LINE = re.compile(r"^([A-Za-z0-9-]+)([;:].*)$")

Event = dict[str, Any]


# -- Google -> iCalendar ------------------------------------------------------------------------


def group_to_ics(master: Event, exceptions: Iterable[Event] = ()) -> str:
    """One VCALENDAR for a master event and its exceptions (moved, edited or cancelled)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//calsync//google//EN")
    cal.add("version", "2.0")
    exdates: list[str] = []
    overrides: list[icalendar.Event] = []
    for exc in exceptions:
        if exc.get("status") == "cancelled":
            exdates.append(_exdate_line(exc["originalStartTime"]))
        else:
            vevent = _vevent(exc, master)
            vevent.add("recurrence-id", _when(exc["originalStartTime"]))
            overrides.append(vevent)
    cal.add_component(_vevent(master, master))
    for vevent in overrides:
        cal.add_component(vevent)
    text: str = cal.to_ical().decode("utf-8")
    # Raw lines go into the master (the first VEVENT) verbatim: Google already speaks RFC 5545
    # in ``recurrence``, and the X- properties were stored as lines.
    raw = [line for line in master.get("recurrence", []) if _name(line) in _RECURRENCE_NAMES]
    raw += exdates
    raw += _x_lines(master)
    if raw:
        head, sep, tail = text.partition("END:VEVENT\r\n")
        text = head + "".join(fold(line) for line in raw) + sep + tail
    return text


def _vevent(event: Event, master: Event) -> icalendar.Event:
    vevent = icalendar.Event()
    vevent.add("uid", event.get("iCalUID") or master.get("iCalUID") or event["id"])
    stamp = event.get("updated") or event.get("created")
    vevent.add(
        "dtstamp", _rfc3339(stamp) if stamp else datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
    )
    vevent.add("dtstart", _when(event["start"]))
    if "end" in event:
        vevent.add("dtend", _when(event["end"]))
    if "summary" in event:
        vevent.add("summary", event["summary"])
    if "description" in event:
        vevent.add("description", event["description"])
    if "location" in event:
        vevent.add("location", event["location"])
    if event.get("status") in _STATUS_TO_ICS:
        vevent.add("status", _STATUS_TO_ICS[event["status"]])
    vevent.add("transp", "TRANSPARENT" if event.get("transparency") == "transparent" else "OPAQUE")
    if "sequence" in event:
        vevent.add("sequence", int(event["sequence"]))
    organizer = event.get("organizer", {}).get("email")
    if organizer:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    for attendee in event.get("attendees", []):
        if not attendee.get("email"):
            continue
        address = icalendar.vCalAddress(f"mailto:{attendee['email']}")
        address.params["PARTSTAT"] = _PARTSTAT.get(
            attendee.get("responseStatus", ""), "NEEDS-ACTION"
        )
        vevent.add("attendee", address)
    booking = event.get("extendedProperties", {}).get("private", {}).get(BOOKING_KEY)
    if booking:
        vevent.add(_BOOKING_PROP, booking)
    return vevent


def _when(value: dict[str, str]) -> date | datetime:
    """A Google start/end/originalStartTime as a date, or an aware datetime in its zone."""
    if "date" in value:
        return date.fromisoformat(value["date"])
    instant = _rfc3339(value["dateTime"])
    zone = iana_zone(value["timeZone"]) if value.get("timeZone") else None
    return instant.astimezone(zone) if zone else instant.astimezone(ZoneInfo("UTC"))


def _exdate_line(original: dict[str, str]) -> str:
    when = _when(original)
    if isinstance(when, datetime):
        return "EXDATE:" + when.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    return "EXDATE;VALUE=DATE:" + when.strftime("%Y%m%d")


def _x_lines(event: Event) -> list[str]:
    stored = event.get("extendedProperties", {}).get("private", {}).get(X_LINES_KEY, "")
    return [line for line in stored.split("\n") if line]


def _rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _name(line: str) -> str:
    match = _CONTENT_LINE.match(line)
    return match.group(1).upper() if match else ""


# -- iCalendar -> Google ------------------------------------------------------------------------


def ics_to_event(data: str) -> Event:
    """The Google event body for one item's text: its master VEVENT, without the event id.

    Raises InvalidCalendarData for text that is not one VCALENDAR with a VEVENT, or that holds
    overridden instances (calsync never writes those to Google).
    """
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:
        raise InvalidCalendarData(f"Not iCalendar text: {exc}") from exc
    vevents = cal.walk("VEVENT")
    masters = [v for v in vevents if "RECURRENCE-ID" not in v]
    if len(masters) != 1 or len(vevents) != 1:
        raise InvalidCalendarData("Google items are written as exactly one VEVENT")
    vevent = masters[0]
    body: Event = {"iCalUID": str(vevent["UID"])}
    body["start"] = _google_time(vevent.decoded("DTSTART"), vevent["DTSTART"])
    if "DTEND" in vevent:
        body["end"] = _google_time(vevent.decoded("DTEND"), vevent["DTEND"])
    elif "DURATION" in vevent:
        end = vevent.decoded("DTSTART") + vevent.decoded("DURATION")
        body["end"] = _google_time(end, vevent["DTSTART"])
    else:
        body["end"] = body["start"]
    for prop, key in (
        ("SUMMARY", "summary"),
        ("DESCRIPTION", "description"),
        ("LOCATION", "location"),
    ):
        if prop in vevent:
            body[key] = str(vevent[prop])
    status = str(vevent.get("STATUS", "")).upper()
    if status in _STATUS_FROM_ICS:
        body["status"] = _STATUS_FROM_ICS[status]
    transp = str(vevent.get("TRANSP", "OPAQUE")).upper()
    body["transparency"] = "transparent" if transp == "TRANSPARENT" else "opaque"
    if "SEQUENCE" in vevent:
        body["sequence"] = int(vevent.decoded("SEQUENCE"))
    private: dict[str, str] = {}
    if _BOOKING_PROP in vevent:
        private[BOOKING_KEY] = str(vevent[_BOOKING_PROP])
    recurrence, x_lines = _raw_lines(data)
    if recurrence:
        body["recurrence"] = recurrence
    stored = "\n".join(x_lines)
    if len(stored) > _X_LIMIT:
        log.warning("Dropping X- properties of %s: too long for Google", body["iCalUID"])
        stored = ""
    private[X_LINES_KEY] = stored
    body["extendedProperties"] = {"private": private}
    return body


def _google_time(value: date | datetime, prop: Any) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    zone = iana_zone(str(tzid)) if tzid else None
    if value.tzinfo is None:  # floating: Google needs a zone; read as UTC
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    if zone is not None:
        return {"dateTime": value.isoformat(), "timeZone": zone.key}
    return {"dateTime": value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")}


def _raw_lines(data: str) -> tuple[list[str], list[str]]:
    """Recurrence lines and unknown X- lines of the first VEVENT, unfolded, as written."""
    unfolded = unfold(data)
    recurrence: list[str] = []
    x_lines: list[str] = []
    inside = False
    for line in unfolded.splitlines():
        if line == "BEGIN:VEVENT":
            inside = True
        elif line == "END:VEVENT":
            break
        elif inside:
            name = _name(line)
            if name in _RECURRENCE_NAMES:
                recurrence.append(line)
            elif name.startswith("X-") and name != _BOOKING_PROP:
                x_lines.append(line)
    return recurrence, x_lines
