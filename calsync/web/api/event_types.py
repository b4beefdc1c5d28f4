"""``/api/event-types``: what an owner sells and when, and its free slots.

The API speaks minutes and ``{"start", "end"}`` ranges; the services speak ``EventTypeSpec``
(timedeltas, ``TimeRange``). The translation both ways lives here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response

from calsync.bookings.event_types import (
    EventTypeSpec,
    InvalidInput,
    OpenTimes,
    delete_event_type,
    get_event_type,
    list_event_types,
    open_times,
    save_event_type,
    spec_of,
)
from calsync.policy.change_policy import ChangePolicy, policy_from_data, policy_to_data
from calsync.policy.hours import overrides_from_data, weekly_from_data
from calsync.store.models import EventType, utcnow
from calsync.sync import connections as services
from calsync.web.api.event_type_schemas import (
    AvailabilityOut,
    EventTypeCreate,
    EventTypeOut,
    EventTypeUpdate,
    PolicyModel,
    TimeRangeIn,
)
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.schemas import NOT_FOUND, DbId, failure, zone_problem

router = APIRouter(prefix="/event-types", tags=["event types"])

DEFAULT_WINDOW_DAYS = 7

# -- API body → spec ----------------------------------------------------------------------------


def _ranges(ranges: list[TimeRangeIn]) -> list[list[str]]:
    return [[r.start, r.end] for r in ranges]


def _spec_value(name: str, value: Any) -> tuple[str, Any]:
    """One API field as the ``EventTypeSpec`` field it sets, in the spec's types."""
    if name.endswith("_minutes"):
        return name.removesuffix("_minutes"), None if value is None else timedelta(minutes=value)
    if name == "weekly_hours":
        return name, weekly_from_data({day: _ranges(r) for day, r in value.items()})
    if name == "date_overrides":
        return name, overrides_from_data({d.isoformat(): _ranges(r) for d, r in value.items()})
    if name == "conflict_calendar_ids":
        return name, tuple(value)
    return name, value


def _spec_values(body: EventTypeCreate | EventTypeUpdate, names: Iterable[str]) -> dict[str, Any]:
    return dict(
        _spec_value(name, getattr(body, name))
        for name in names
        if name not in ("policy", "booking_page")
    )


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _patched_policy(current: ChangePolicy, patch: PolicyModel) -> ChangePolicy:
    changes = patch.model_dump(mode="json", exclude_unset=True)
    for action in ("cancel", "reschedule"):
        rule = changes.get(action) or {}
        if rule.get("permission", "until") != "until" and "notice_minutes" not in rule:
            # A notice only means something with 'until'; switching away drops the old one.
            rule["notice_minutes"] = None
    return policy_from_data(_merge(policy_to_data(current), changes))


def spec_from_body(body: EventTypeCreate, owner_timezone: str) -> EventTypeSpec:
    """The service's spec of a full event-type body (the API's POST, the console's form)."""
    return EventTypeSpec(
        **(
            _spec_values(body, EventTypeCreate.model_fields)
            | {"timezone": body.timezone or owner_timezone}
        ),
        policy=policy_from_data(body.policy.model_dump(mode="json")),
        page=body.booking_page.offer(),
    )


def _owner_problem(exc: services.NotFoundError) -> InvalidInput:
    # The owner is named in the body, so an unknown one is a field problem, not a missing URL.
    return InvalidInput([("owner_email", str(exc))])


# -- routes -------------------------------------------------------------------------------------


@router.post("", status_code=201)
def create_event_type(body: EventTypeCreate, db: DbDep, settings: SettingsDep) -> EventTypeOut:
    """Define an event type. 422 names every field with a problem."""
    try:
        owner = services.find_owner(db, body.owner_email)
        spec = spec_from_body(body, owner.timezone)
        saved = save_event_type(db, spec)
    except services.NotFoundError as exc:
        raise _owner_problem(exc) from None
    return EventTypeOut.from_row(saved, settings.base_url)


@router.get("")
def list_all_event_types(db: DbDep, settings: SettingsDep) -> list[EventTypeOut]:
    return [
        EventTypeOut.from_row(event_type, settings.base_url) for event_type in list_event_types(db)
    ]


@router.get("/{event_type_id}", responses=NOT_FOUND)
def get_one_event_type(event_type_id: DbId, db: DbDep, settings: SettingsDep) -> EventTypeOut:
    return EventTypeOut.from_row(get_event_type(db, event_type_id), settings.base_url)


@router.patch("/{event_type_id}", responses=NOT_FOUND)
def update_event_type(
    event_type_id: DbId, body: EventTypeUpdate, db: DbDep, settings: SettingsDep
) -> EventTypeOut:
    """Change only the fields given. ``policy`` is merged into the current policy; every other
    field (``weekly_hours`` included) is replaced whole."""
    current = spec_of(get_event_type(db, event_type_id))
    changes = _spec_values(body, body.model_fields_set)
    if body.policy is not None:
        changes["policy"] = _patched_policy(current.policy, body.policy)
    if body.booking_page is not None:
        changes["page"] = body.booking_page.offer()
    try:
        saved = save_event_type(db, dataclasses.replace(current, **changes), event_type_id)
    except services.NotFoundError as exc:
        raise _owner_problem(exc) from None
    return EventTypeOut.from_row(saved, settings.base_url)


@router.delete("/{event_type_id}", status_code=204, responses=NOT_FOUND)
def remove_event_type(event_type_id: DbId, db: DbDep) -> Response:
    delete_event_type(db, event_type_id)
    return Response(status_code=204)


# -- availability -------------------------------------------------------------------------------


def _fromisoformat(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        # An unescaped '+' in a query string arrives as a space: 09:00 01:00 → 09:00+01:00.
        head, space, tail = text.rpartition(" ")
        if not space:
            raise
        return datetime.fromisoformat(f"{head}+{tail}")


def _parse_instant(text: str, zone: ZoneInfo, name: str) -> datetime:
    """An ISO date (its midnight) or datetime; a date or naive time is read in ``zone``."""
    text = text.strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        else:
            parsed = _fromisoformat(text)
    except ValueError:
        example = "2026-12-01 or 2026-12-01T09:30+01:00"
        raise InvalidInput(
            [(name, f"{text!r} is not a date or time: use e.g. {example}")]
        ) from None
    if not 1900 <= parsed.year <= 9000:
        # Arithmetic near year 1 or 9999 overflows; no calendar needs such dates.
        raise InvalidInput([(name, "give a date between the years 1900 and 9000")])
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


@router.get(
    "/{event_type_id}/availability",
    response_model=AvailabilityOut,
    responses=NOT_FOUND | {409: failure("A conflict calendar has never been synced yet.")},
)
async def availability(
    request: Request,
    event_type_id: DbId,
    db: DbDep,
    start: Annotated[
        str | None,
        Query(
            description="ISO date or datetime (a date or naive time is read in tz); default: now."
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(description="Exclusive end, like start; default: 7 days after start."),
    ] = None,
    tz: Annotated[
        str | None,
        Query(
            description="IANA zone to read start/end in and write slots in; default: the "
            "event type's."
        ),
    ] = None,
) -> Response:
    """Free slots in [start, end), at most the booking horizon (``horizon_days``) long.

    409 while one of the event type's conflict calendars has never been synced.
    """
    problem = zone_problem(tz) if tz is not None else None
    if problem:
        raise InvalidInput([("tz", problem)])

    def window_of(event_type: EventType) -> tuple[datetime, datetime]:
        zone = ZoneInfo(tz or event_type.timezone)
        problems: list[tuple[str, str]] = []
        window: dict[str, datetime] = {}
        for name, text in (("start", start), ("end", end)):
            if text is not None:
                try:
                    window[name] = _parse_instant(text, zone, name)
                except InvalidInput as exc:
                    problems += exc.problems
        if problems:
            raise InvalidInput(problems)
        begin = window.get("start") or utcnow().replace(second=0, microsecond=0)
        finish = window.get("end") or begin + timedelta(
            days=min(DEFAULT_WINDOW_DAYS, event_type.horizon_days)
        )
        return begin, finish

    # On its own few threads: many at once would only fight over Python's lock (measured:
    # a third more CPU per request with 20 clients on 40 threads; README, Running at scale).
    limiter = request.app.state.availability_limiter
    found = await to_thread.run_sync(open_times, db, event_type_id, window_of, limiter=limiter)
    zone = ZoneInfo(tz or found.event_type.timezone)
    # Written here, not through AvailabilityOut: pydantic would call the instant serializer
    # once per field (half of this route's CPU for a 14-day window of slots). The bytes are
    # the same; tests/web/test_api.py compares them with the model's.
    return Response(availability_json(found, zone), media_type="application/json")


def availability_json(found: OpenTimes, zone: ZoneInfo) -> bytes:
    """``AvailabilityOut`` of ``found`` as compact JSON, the instants written in ``zone``."""
    answer = {
        "event_type_id": found.event_type.id,
        "timezone": zone.key,
        "start": found.start.astimezone(zone).isoformat(),
        "end": found.end.astimezone(zone).isoformat(),
        "slots": [
            {
                "start": s.start.astimezone(zone).isoformat(),
                "end": s.end.astimezone(zone).isoformat(),
            }
            for s in found.slots
        ],
    }
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
