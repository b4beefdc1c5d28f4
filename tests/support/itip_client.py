"""A receiving calendar client, as far as iMIP goes, for tests.

``check_itip`` is what a careful client checks before it trusts a calendar part: the object
parses with icalendar *and* with vobject (an independent parser, the one Radicale uses), lines
end in CRLF and are at most 75 octets, every TZID has its VTIMEZONE, one UID per object.

``apply_message`` does what a receiving client does with an invite email, against a real
CalDAV calendar: for each iTIP object in it, a REQUEST is stored (without METHOD) if its
SEQUENCE is higher than the stored one's, a CANCEL deletes the stored event if its SEQUENCE
is higher; anything else is ignored, exactly as receivers drop stale updates.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from xml.etree import ElementTree

import icalendar
import vobject

CALENDAR_TYPES = ("text/calendar", "application/ics")


@dataclass(frozen=True)
class CalendarPart:
    """One calendar part of an email: its content type, MIME ``method=``, text and place."""

    content_type: str
    mime_method: str | None
    text: str
    attachment: bool


@dataclass(frozen=True)
class Checked:
    """What ``check_itip`` read from one object."""

    method: str
    uid: str
    sequence: int
    status: str
    start: datetime  # UTC, read through the object's own VTIMEZONE
    end: datetime
    event: icalendar.Event


def calendar_parts(message: Message) -> list[CalendarPart]:
    """Every text/calendar and application/ics part, in order."""
    parts = []
    for part in message.walk():
        if part.get_content_type() in CALENDAR_TYPES:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts.append(
                CalendarPart(
                    part.get_content_type(),
                    part.get_param("method"),  # type: ignore[arg-type]
                    payload.decode("utf-8"),
                    part.get_content_disposition() == "attachment",
                )
            )
    return parts


def check_itip(text: str, *, stored: bool = False) -> Checked:
    """Parse one iTIP object (``stored``: an object as a calendar stores it, without METHOD)
    with both parsers and check the wire rules; AssertionError if anything is off."""
    raw = text.encode("utf-8")
    assert raw.endswith(b"END:VCALENDAR\r\n"), "the object ends with one CRLF, no blank line"
    lines = raw.split(b"\r\n")[:-1]
    assert b"\n" not in raw.replace(b"\r\n", b""), "only CRLF line ends"
    assert b"\r" not in raw.replace(b"\r\n", b""), "only CRLF line ends"
    for line in lines:
        assert line, "no blank lines"
        assert len(line) <= 75, f"line longer than 75 octets: {line!r}"
        line.decode("utf-8")  # folding never splits a UTF-8 sequence
    _check_folds(text)

    calendar = icalendar.Calendar.from_ical(text)
    assert not calendar.errors, calendar.errors
    (event,) = calendar.walk("VEVENT")
    assert not event.errors, event.errors
    tzids = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    for name in ("DTSTART", "DTEND"):
        prop = event[name]
        if "TZID" in prop.params:
            assert prop.params["TZID"] in tzids, f"{name} has no matching VTIMEZONE"
        else:
            assert prop.dt.tzinfo is not None and prop.dt.utcoffset().total_seconds() == 0, (
                "no floating times"
            )
    assert event["DTSTAMP"].dt.utcoffset().total_seconds() == 0, "DTSTAMP is UTC"

    independent = vobject.readOne(text)
    (vevent,) = independent.vevent_list
    assert str(vevent.uid.value) == str(event["UID"])
    assert vevent.summary.value == str(event["SUMMARY"])
    assert vevent.description.value == str(event["DESCRIPTION"])
    if stored:
        assert "METHOD" not in calendar
    else:
        assert independent.method.value == str(calendar["METHOD"]) in ("REQUEST", "CANCEL")
    # vobject reads TZID times through the object's own VTIMEZONE (dateutil's tzical).
    start = vevent.dtstart.value.astimezone(UTC)
    end = vevent.dtend.value.astimezone(UTC)
    assert start == event.start.astimezone(UTC) and end == event.end.astimezone(UTC)
    return Checked(
        method=str(calendar.get("METHOD", "")),
        uid=str(event["UID"]),
        sequence=int(event.get("SEQUENCE", 0)),
        status=str(event.get("STATUS", "")),
        start=start,
        end=end,
        event=event,
    )


# --- A client applying invites to a CalDAV calendar -------------------------------------------


def apply_message(calendar_url: str, message: EmailMessage) -> list[str]:
    """Apply every calendar part of ``message``; the outcome of each (see ``apply``)."""
    return [apply(calendar_url, part.text) for part in calendar_parts(message)]


def apply(calendar_url: str, text: str) -> str:
    """Apply one iTIP object: "created", "updated", "deleted" or "ignored"."""
    checked = check_itip(text)
    url = calendar_url + urllib.parse.quote(checked.uid, safe="") + ".ics"
    status, body = _http("GET", url)
    stored = _sequence(body) if status == 200 else None
    if stored is not None and checked.sequence <= stored:
        return "ignored"  # a stale or repeated object
    if checked.method == "CANCEL":
        if stored is None:
            return "ignored"
        status, _ = _http("DELETE", url)
        assert status in (200, 204), f"DELETE {url}: {status}"
        return "deleted"
    assert checked.method == "REQUEST", checked.method
    # What a client stores is the object without its METHOD (RFC 5546 §1.4).
    stored_text = re.sub(r"^METHOD:[^\r\n]*\r\n", "", text, flags=re.MULTILINE)
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    status, _ = _http("PUT", url, stored_text.encode("utf-8"), headers)
    assert status in (201, 204), f"PUT {url}: {status}"
    return "created" if stored is None else "updated"


def stored_events(calendar_url: str) -> dict[str, Checked]:
    """The events in the calendar by UID, read back from the server."""
    body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop>'
    body += b"</D:propfind>"
    status, answer = _http("PROPFIND", calendar_url, body, {"Depth": "1"})
    assert status == 207, f"PROPFIND {calendar_url}: {status}"
    base = urllib.parse.urlsplit(calendar_url)
    events: dict[str, Checked] = {}
    for href in ElementTree.fromstring(answer).iter("{DAV:}href"):
        path = href.text or ""
        if not path.endswith(".ics"):
            continue
        status, data = _http("GET", f"{base.scheme}://{base.netloc}{path}")
        assert status == 200
        checked = check_itip(data.decode("utf-8"), stored=True)
        events[checked.uid] = checked
    return events


def _check_folds(text: str) -> None:
    """No fold inside a TEXT escape: a backslash and what it escapes stay on one line."""
    for logical in re.split(r"\r\n(?! )", text):
        escaping = False
        for index, piece in enumerate(logical.split("\r\n ")):
            assert not (index and escaping), f"a fold splits an escape in {logical!r}"
            for char in piece:
                escaping = not escaping and char == "\\"


def _sequence(data: bytes) -> int:
    (event,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    return int(event.get("SEQUENCE", 0))


def _http(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
