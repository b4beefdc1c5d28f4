"""The console's event-type form: its fields ↔ the admin API's ``EventTypeCreate``.

The form is flat HTML (no JavaScript): one text field per weekday for the weekly hours
("09:00-12:00, 13:00-17:00"; empty = closed), one line per date for the overrides
("2026-12-24: closed", "2026-12-31: 09:00-12:00"), one line per package ("3: 250.00"), and plain
fields for the rest. ``parse`` turns what was posted into the API's body and validates it with
the API's own pydantic model, so the rules and the messages are the API's
(``input_rules.py``, ``web/schemas.py``); each problem comes back under the form field that holds
it. ``values_of`` fills the form from a stored event type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from calsync.policy.change_policy import policy_from_data, policy_to_data
from calsync.policy.packages import offer_from_data, offer_to_data
from calsync.store.models import EventType
from calsync.web.api.event_type_schemas import EventTypeCreate
from calsync.web.errors import API_FIELD_NAMES, validation_problems

DAYS = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
]
PERMISSIONS = [("anytime", "Any time"), ("until", "Until a notice before"), ("never", "Never")]
REASONS = [("off", "Not asked"), ("optional", "Optional"), ("required", "Required")]
FEE_KINDS = [
    ("", "None"),
    ("fixed", "Fixed amount per session"),
    ("percent", "Percent of a session's value"),
]
HOURS_HINT = "write hours like 09:00-12:00, 13:00-17:00 (empty: closed)"
RANGE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
NUMBER_FIELDS = (
    "duration_minutes",
    "slot_step_minutes",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "horizon_days",
    "daily_cap",
)


@dataclass(frozen=True, slots=True)
class Parsed:
    body: EventTypeCreate | None
    problems: dict[str, str]


def _ranges(text: str) -> list[dict[str, str]] | None:
    """``09:00-12:00, 13:00-17:00`` as ranges; None when a part is not a range."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = RANGE.match(part)
        if match is None:
            return None
        start, end = (t.zfill(5) for t in match.groups())
        ranges.append({"start": start, "end": end})
    return ranges


def _number(text: str) -> int | str | None:
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) < 10 else text  # pydantic words the rest


def _field_of(api_field: str) -> str:
    """The form field an API problem belongs to."""
    parts = api_field.split(".")
    head = parts[0]
    if head == "weekly_hours" and len(parts) > 1:
        return f"hours-{parts[1]}"
    if head == "policy" and len(parts) > 1:
        if parts[1] in ("cancel", "reschedule") and len(parts) > 2:
            return f"{parts[1]}_{parts[2]}"
        if parts[1] in ("reschedule_fee", "cancel_refund"):
            return f"{parts[1]}_amount"
        return "policy_text" if parts[1] == "text" else parts[1]
    if head == "booking_page" and len(parts) > 1:
        return "packages" if parts[1] == "packages" else parts[1]
    return head


def parse(fields: Mapping[str, str], owner_email: str, calendar_ids: list[str]) -> Parsed:
    """The posted form as the API's body, or the problems by form field."""
    problems: dict[str, str] = {}
    text = {key: (fields.get(key) or "") for key in fields}

    def get(name: str) -> str:
        return text.get(name, "")

    weekly: dict[str, Any] = {}
    for day, label in DAYS:
        ranges = _ranges(get(f"hours-{day}"))
        if ranges is None:
            problems[f"hours-{day}"] = f"{label}: {HOURS_HINT}"
        elif ranges:
            weekly[day] = ranges
    overrides: dict[str, Any] = {}
    for line in filter(None, (raw.strip() for raw in get("date_overrides").splitlines())):
        day, _, hours = line.partition(":")
        ranges = [] if hours.strip().lower() in ("closed", "") else _ranges(hours)
        if ranges is None:
            problems["date_overrides"] = (
                f"{line!r}: write one date a line, like 2026-12-24: closed or "
                "2026-12-31: 09:00-12:00"
            )
            break
        overrides[day.strip()] = ranges
    packages = []
    for line in filter(None, (raw.strip() for raw in get("packages").splitlines())):
        sessions, _, price = line.partition(":")
        if not sessions.strip().isdigit() or not price.strip():
            problems["packages"] = f"{line!r}: write one package a line, like 3: 250.00"
            break
        packages.append({"sessions": int(sessions), "price": price.strip()})

    def fee(prefix: str) -> dict[str, str] | None:
        kind = get(f"{prefix}_kind")
        return {"kind": kind, "amount": get(f"{prefix}_amount").strip() or "0"} if kind else None

    def rule(prefix: str) -> dict[str, Any]:
        notice = _number(get(f"{prefix}_notice_minutes"))
        return {
            "permission": get(f"{prefix}_permission") or "anytime",
            "notice_minutes": notice if get(f"{prefix}_permission") == "until" else None,
            "reason": get(f"{prefix}_reason") or "off",
        }

    conflicts = [c for c in fields_list(fields, "conflict_calendar_ids") if c in calendar_ids]
    body: dict[str, Any] = {
        "owner_email": owner_email,
        "slug": get("slug").strip(),
        "title": get("title").strip(),
        "timezone": get("timezone").strip() or None,
        "weekly_hours": weekly,
        "date_overrides": overrides,
        "conflict_calendar_ids": [int(c) for c in conflicts],
        "booking_calendar_id": int(get("booking_calendar_id"))
        if get("booking_calendar_id") in calendar_ids
        else None,
        "price": get("price").strip() or "0",
        "currency": get("currency").strip().upper() or "EUR",
        "policy": {
            "cancel": rule("cancel"),
            "reschedule": rule("reschedule"),
            "max_reschedules": _number(get("max_reschedules")),
            "reschedule_fee": fee("reschedule_fee"),
            "cancel_refund": fee("cancel_refund"),
            "text": get("policy_text"),
        },
        "booking_page": {
            "public": get("public") == "yes",
            "packages": packages,
            "min_days_apart": _number(get("min_days_apart")) or 0,
            "one_per_day": get("one_per_day") == "yes",
            "max_stakeholders": _number(get("max_stakeholders")) or 0,
        },
    }
    for name in NUMBER_FIELDS:
        value = _number(get(name))
        if value is not None:
            body[name] = value
    if "duration_minutes" not in body:
        problems.setdefault("duration_minutes", "How long is a session? Give it in minutes.")
    try:
        parsed = EventTypeCreate.model_validate(body)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
        for api_field, message in validation_problems(errors):
            problems.setdefault(_field_of(api_field), f"{_label(api_field)} {message}")
        return Parsed(None, problems)
    return Parsed(parsed if not problems else None, problems)


def fields_list(fields: Mapping[str, str], name: str) -> list[str]:
    getter = getattr(fields, "getlist", None)
    return list(getter(name)) if getter else ([fields[name]] if name in fields else [])


def _label(api_field: str) -> str:
    """``policy.cancel.notice_minutes`` → ``Cancel notice (minutes)``: what the message is about."""
    words = api_field.replace("policy.", "").replace("booking_page.", "").split(".")
    named = [w for w in words if not w.isdigit()]
    text = " ".join(named).replace("_minutes", " (minutes)").replace("_", " ")
    return (text[:1].upper() + text[1:]).strip() + ":"


def service_problems(problems: list[tuple[str, str]]) -> dict[str, str]:
    """``InvalidInput``'s problems (service field names) under the form's fields."""
    found: dict[str, str] = {}
    for field, message in problems:
        api_field = API_FIELD_NAMES.get(field, field)
        found.setdefault(_field_of(api_field), f"{_label(api_field)} {message}")
    return found


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _hours_text(ranges: list[list[str]]) -> str:
    return ", ".join(f"{start}-{end}" for start, end in ranges)


def values_of(row: EventType | None, owner_timezone: str) -> dict[str, Any]:
    """The form's values: a stored event type's, or a new one's defaults."""
    if row is None:
        return {
            "timezone": owner_timezone,
            "duration_minutes": "60",
            "horizon_days": "60",
            "currency": "EUR",
            "price": "0",
            "hours-mon": "09:00-17:00",
            "hours-tue": "09:00-17:00",
            "hours-wed": "09:00-17:00",
            "hours-thu": "09:00-17:00",
            "hours-fri": "09:00-17:00",
            "cancel_permission": "anytime",
            "reschedule_permission": "anytime",
            "conflict_calendar_ids": [],
        }
    policy = policy_to_data(policy_from_data(row.policy))
    page = offer_to_data(offer_from_data(row.booking_page))
    values: dict[str, Any] = {
        "slug": row.slug,
        "title": row.title,
        "timezone": row.timezone,
        "duration_minutes": str(row.duration_minutes),
        "slot_step_minutes": str(row.slot_step_minutes),
        "buffer_before_minutes": str(row.buffer_before_minutes),
        "buffer_after_minutes": str(row.buffer_after_minutes),
        "minimum_notice_minutes": str(row.minimum_notice_minutes),
        "horizon_days": str(row.horizon_days),
        "daily_cap": "" if row.daily_cap is None else str(row.daily_cap),
        "conflict_calendar_ids": [str(c.id) for c in row.conflict_calendars],
        "booking_calendar_id": ""
        if row.booking_calendar_id is None
        else str(row.booking_calendar_id),
        "price": row.price,
        "currency": row.currency,
        "date_overrides": "\n".join(
            f"{day}: {_hours_text(ranges) or 'closed'}"
            for day, ranges in sorted(row.date_overrides.items())
        ),
        "max_reschedules": ""
        if policy.get("max_reschedules") is None
        else str(policy["max_reschedules"]),
        "policy_text": policy.get("text", ""),
        "public": "yes" if page.get("public") else "",
        "packages": "\n".join(f"{p['sessions']}: {p['price']}" for p in page.get("packages", [])),
        "min_days_apart": str(page.get("min_days_apart", 0)),
        "one_per_day": "yes" if page.get("one_per_day") else "",
        "max_stakeholders": str(page.get("max_stakeholders", 0)),
    }
    for day, _ in DAYS:
        values[f"hours-{day}"] = _hours_text(row.weekly_hours.get(day, []))
    for action in ("cancel", "reschedule"):
        rule = policy.get(action) or {}
        values[f"{action}_permission"] = rule.get("permission", "anytime")
        notice = rule.get("notice_minutes")
        values[f"{action}_notice_minutes"] = "" if notice is None else str(notice)
        values[f"{action}_reason"] = rule.get("reason", "off")
    for name in ("reschedule_fee", "cancel_refund"):
        fee = policy.get(name)
        values[f"{name}_kind"] = fee["kind"] if fee else ""
        values[f"{name}_amount"] = str(fee["amount"]) if fee else ""
    return values


def posted_values(fields: Mapping[str, str]) -> dict[str, Any]:
    """What was posted, to show the form again as the owner filled it in."""
    values: dict[str, Any] = {key: fields.get(key) or "" for key in fields}
    values["conflict_calendar_ids"] = fields_list(fields, "conflict_calendar_ids")
    return values
