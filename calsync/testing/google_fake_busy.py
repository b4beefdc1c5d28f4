"""freeBusy for the Google fake: which time a calendar's events make busy, as Google says.

Independent of calsync's own expansion on purpose (the fake must not share the code it
tests): python-dateutil expands RRULE/EXRULE, RDATE/EXDATE are read here. Series are
expanded in their start's zone (DST-correct), with their exceptions (moved, cancelled);
all-day dates are days in the calendar's zone; cancelled, transparent and declined events
are free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

Event = dict[str, Any]
Span = tuple[datetime, datetime]


def rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def busy_spans(
    events: list[Event], time_zone: str, own: str, start: datetime, end: datetime
) -> list[Span]:
    """Busy spans (UTC, unmerged, unclipped) of a calendar's ``events`` (in creation order)
    that reach into [start, end); all-day dates are days in ``time_zone``.

    ``own`` is the calendar's address: an attendee with it (or ``self``) is the owner.
    """
    zone = ZoneInfo(time_zone)
    masters = {ev["id"]: ev for ev in events if not ev.get("recurringEventId")}
    exceptions: dict[str, list[Event]] = {}
    spans: list[Span] = []
    for ev in events:
        parent = ev.get("recurringEventId")
        if parent and masters.get(parent, {}).get("recurrence"):
            exceptions.setdefault(parent, []).append(ev)
        elif not parent and ev.get("recurrence"):
            continue  # a series: below, with its exceptions
        elif _blocks(ev, own):  # a single event, or an instance whose series is elsewhere
            spans.append(_span(ev, zone))
    for master in masters.values():
        if master.get("recurrence") and master.get("status") != "cancelled":
            spans += _series(master, exceptions.get(master["id"], []), zone, own, start, end)
    return spans


def _blocks(event: Event, own: str) -> bool:
    """Busy unless cancelled, transparent, or declined by the calendar's owner."""
    if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
        return False
    return not any(
        (a.get("self") or str(a.get("email", "")).lower() == own.lower())
        and a.get("responseStatus") == "declined"
        for a in event.get("attendees") or []
    )


def _when(value: dict[str, Any], zone: ZoneInfo) -> datetime:
    """A start/end/originalStartTime as an aware instant: an all-day ``date`` is midnight in
    ``zone`` (the calendar's); a ``dateTime`` without offset is read in its ``timeZone``."""
    if "dateTime" in value:
        at = rfc3339(value["dateTime"])
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(value["timeZone"]) if value.get("timeZone") else zone)
        return at.astimezone(UTC)
    return _midnight(date.fromisoformat(value["date"]), zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _span(event: Event, zone: ZoneInfo) -> Span:
    return _when(event["start"], zone), _when(event["end"], zone)


def _series(
    master: Event,
    exceptions: list[Event],
    zone: ZoneInfo,
    own: str,
    start: datetime,
    end: datetime,
) -> list[Span]:
    """Busy spans of a recurring series in [start, end): occurrences of the master's
    ``recurrence`` in its own time zone (wall times kept across DST), each replaced by its
    exception instance where there is one (a cancelled one removes it)."""
    all_day = "date" in master["start"]
    first, last = _span(master, zone)
    if all_day:  # occurrences are dates; each is busy midnight to midnight in ``zone``
        dtstart = datetime.combine(date.fromisoformat(master["start"]["date"]), time())
        days = date.fromisoformat(master["end"]["date"]) - dtstart.date()
        rules = _recurrence(master["recurrence"], dtstart, None)
        low = start.astimezone(zone).replace(tzinfo=None) - days - timedelta(days=1)
        high = end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
        keys: list[Any] = [o.date() for o in rules.between(low, high, inc=True)]

        def key_of(at: datetime) -> Any:
            return at.astimezone(zone).date()

        def occurrence(key: Any) -> Span:
            return _midnight(key, zone), _midnight(key + days, zone)

    else:  # occurrences keep the master's wall time in its start.timeZone
        tz = ZoneInfo(master["start"]["timeZone"]) if master["start"].get("timeZone") else zone
        length = last - first  # exact: both are UTC
        rules = _recurrence(master["recurrence"], first.astimezone(tz), tz)
        keys = [o.astimezone(UTC) for o in rules.between(start - length, end, inc=True)]

        def key_of(at: datetime) -> Any:
            return at

        def occurrence(key: Any) -> Span:
            return key, key + length

    exceptions = [e for e in exceptions if "originalStartTime" in e]
    replaced = {key_of(_when(e["originalStartTime"], zone)) for e in exceptions}
    spans = [occurrence(k) for k in keys if k not in replaced and _blocks(master, own)]
    base = {k: v for k, v in master.items() if k not in ("recurrence", "id")}
    for exc in exceptions:
        instance = {**base, **exc}  # an instance keeps what its exception does not change
        if exc.get("status") == "cancelled" or not _blocks(instance, own):
            continue
        if "start" in exc and "end" in exc:
            spans.append(_span(exc, zone))
        else:  # edited but not moved
            spans.append(occurrence(key_of(_when(exc["originalStartTime"], zone))))
    return spans


def _recurrence(lines: list[str], dtstart: datetime, tz: ZoneInfo | None) -> rruleset:
    """The occurrence set of Google's ``recurrence`` lines (iCalendar RRULE, EXRULE, RDATE,
    EXDATE). ``tz`` is the series' zone, None for an all-day series (naive dates)."""
    rules = rruleset()
    rules.rdate(dtstart)  # DTSTART is always the first instance (RFC 5545 3.8.5.3)
    for line in lines:
        name, params, value = _content_line(line)
        try:
            if name in ("RRULE", "EXRULE"):
                rule = rrulestr(_until(value, tz), dtstart=dtstart)
                if not isinstance(rule, rrule):  # one line parses to one rule, never a set
                    raise ValueError(f"not a single {name}")
                (rules.rrule if name == "RRULE" else rules.exrule)(rule)
            elif name in ("RDATE", "EXDATE"):
                for text in value.split(","):
                    at = _date_value(text, params, dtstart, tz)
                    (rules.rdate if name == "RDATE" else rules.exdate)(at)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"Invalid recurrence line {line!r}: {exc}") from exc
    return rules


def _content_line(line: str) -> tuple[str, dict[str, str], str]:
    """``NAME;PARAM=x;PARAM="y":value`` → (NAME, {PARAM: value}, value); quotes respected."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            head, value = line[:i], line[i + 1 :]
            break
    else:
        raise ValueError(f"Invalid recurrence line {line!r}")
    name, *rest = head.split(";")
    params = {}
    for param in rest:
        key, _, text = param.partition("=")
        params[key.strip().upper()] = text.strip().strip('"')
    return name.strip().upper(), params, value.strip()


def _until(rule: str, tz: ZoneInfo | None) -> str:
    """dateutil wants UNTIL in UTC for a zoned series and floating for an all-day one."""

    def fix(match: re.Match[str]) -> str:
        text = match.group(1).upper()
        if tz is None:  # all-day: compare dates
            if text.endswith("Z"):
                text = text[:8]
            return f"UNTIL={text[:8]}"
        if text.endswith("Z"):
            return f"UNTIL={text}"
        if len(text) == 8:  # a date: the whole day, in the series' zone
            local = datetime.combine(datetime.strptime(text, "%Y%m%d").date(), time.max)
        else:
            local = datetime.strptime(text, "%Y%m%dT%H%M%S")
        at = local.replace(tzinfo=tz).astimezone(UTC)
        return f"UNTIL={at:%Y%m%dT%H%M%SZ}"

    return re.sub(r"UNTIL=([0-9TZtz]+)", fix, rule)


def _date_value(
    text: str, params: dict[str, str], dtstart: datetime, tz: ZoneInfo | None
) -> datetime:
    """One RDATE/EXDATE value as the series counts occurrences: aware in ``tz``, or a naive
    midnight for an all-day series. A PERIOD counts by its start."""
    text = text.strip().upper().partition("/")[0]
    if len(text) == 8:
        day = datetime.strptime(text, "%Y%m%d").date()
        if tz is None:
            return datetime.combine(day, time())
        return datetime.combine(day, dtstart.timetz())
    if text.endswith("Z"):
        at = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    else:
        zone = params.get("TZID")
        at = datetime.strptime(text, "%Y%m%dT%H%M%S").replace(
            tzinfo=ZoneInfo(zone) if zone else (tz or UTC)
        )
    if tz is None:
        return datetime.combine(at.date(), time())
    return at.astimezone(tz)


def merged(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping and touching spans joined, as Google answers free/busy."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
