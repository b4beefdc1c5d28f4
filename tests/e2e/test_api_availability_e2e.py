"""End to end through the admin API: an event the owner adds in their own calendar app takes
its slot away after the next poll, and deleting it gives the slot back; and a slot is the same
instant whichever zone it is asked for in.

Real parts: Radicale on loopback, the real app, SQLite and PostgreSQL.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from calsync.config import Settings
from calsync.store.db import Database
from calsync.web.app import create_app
from tests.support.servers import delete_event, put_event

with warnings.catch_warnings():
    # Starlette warns when it finds httpx rather than httpx2; the tests work with either.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

API_KEY = "e2e-admin-key-0123456789abcdef"
OWNER_EMAIL = "ada@example.org"
EVERY_DAY = {day: [{"start": "09:00", "end": "17:00"}] for day in ("mon", "tue", "wed", "thu")}
EVERY_DAY |= {day: [{"start": "09:00", "end": "17:00"}] for day in ("fri", "sat", "sun")}


def vevent(uid: str, start: datetime, minutes: int = 60) -> str:
    end = start + timedelta(minutes=minutes)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//owner's app//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Dentist\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def api(settings: Settings, db: Database) -> Iterator[TestClient]:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with TestClient(create_app(keyed, db=db), headers=headers) as client:
        yield client


def connect(api: TestClient, calendar_url: str) -> tuple[int, int]:
    """An owner, the calendar, and an event type of one-hour slots 09–17 UTC; their ids."""
    owner = {"name": "Ada", "email": OWNER_EMAIL, "timezone": "UTC"}
    assert api.post("/api/owners", json=owner).status_code == 201
    added = api.post("/api/calendars", json={"owner_email": OWNER_EMAIL, "url": calendar_url})
    assert added.status_code == 201, added.text
    [calendar] = added.json()
    event_type = api.post(
        "/api/event-types",
        json={
            "owner_email": OWNER_EMAIL,
            "slug": "consult",
            "title": "Consultation",
            "duration_minutes": 60,
            "timezone": "UTC",
            "weekly_hours": EVERY_DAY,
        },
    )
    assert event_type.status_code == 201, event_type.text
    return calendar["id"], event_type.json()["id"]


def sync(api: TestClient, calendar_id: int) -> dict[str, Any]:
    response = api.post(f"/api/calendars/{calendar_id}/sync")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["outcome"] == "ok" and result["error"] is None
    return result


def slot_starts(api: TestClient, event_type_id: int, **params: str) -> list[datetime]:
    response = api.get(f"/api/event-types/{event_type_id}/availability", params=params)
    assert response.status_code == 200, response.text
    return [datetime.fromisoformat(slot["start"]) for slot in response.json()["slots"]]


def test_an_event_takes_its_slot_after_the_next_poll_and_deleting_it_frees_it(
    api: TestClient, radicale_calendar: str
) -> None:
    calendar_id, event_type_id = connect(api, radicale_calendar)
    sync(api, calendar_id)
    day = date.today() + timedelta(days=3)
    window = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
    ten = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    all_day = [ten.replace(hour=hour) for hour in range(9, 17)]
    assert slot_starts(api, event_type_id, **window) == all_day

    written = put_event(radicale_calendar, vevent("dentist-1", ten))
    # The mirror is only as fresh as the last poll: the slot is still offered until then.
    assert slot_starts(api, event_type_id, **window) == all_day
    assert sync(api, calendar_id)["upserted"] == 1
    assert slot_starts(api, event_type_id, **window) == [s for s in all_day if s != ten]
    [calendar] = api.get("/api/calendars").json()
    assert calendar["events"] == 1

    delete_event(written.url)
    assert sync(api, calendar_id)["removed"] == 1
    assert slot_starts(api, event_type_id, **window) == all_day


def test_slots_are_the_same_instants_in_every_zone(api: TestClient, radicale_calendar: str) -> None:
    calendar_id, event_type_id = connect(api, radicale_calendar)
    day = date.today() + timedelta(days=4)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    put_event(radicale_calendar, vevent("meeting", midnight.replace(hour=13), minutes=90))
    sync(api, calendar_id)
    window = {"start": midnight.isoformat(), "end": (midnight + timedelta(days=1)).isoformat()}

    kiritimati = slot_starts(api, event_type_id, tz="Pacific/Kiritimati", **window)
    los_angeles = slot_starts(api, event_type_id, tz="America/Los_Angeles", **window)
    # Two zones 22 or 23 hours apart, often on different dates: the same instants.
    assert kiritimati == los_angeles
    assert [s.astimezone(UTC).hour for s in kiritimati] == [9, 10, 11, 12, 15, 16]
    assert {s.utcoffset() for s in kiritimati} == {timedelta(hours=14)}
    assert {s.utcoffset() for s in los_angeles} <= {timedelta(hours=-8), timedelta(hours=-7)}
    # Dates without a time are read in the zone asked for: Kiritimati's day runs from 10:00 UTC
    # the day before to 10:00 UTC.
    local = slot_starts(
        api,
        event_type_id,
        tz="Pacific/Kiritimati",
        start=day.isoformat(),
        end=(day + timedelta(days=1)).isoformat(),
    )
    assert local[0] == midnight - timedelta(hours=24) + timedelta(hours=10)
    assert local[-1] == midnight + timedelta(hours=9)
