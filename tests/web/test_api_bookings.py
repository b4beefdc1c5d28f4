"""``/api/bookings`` as a client uses it: the real app on both databases, a real Radicale.

An owner with one Radicale calendar (role both) sells one-hour coaching in Europe/Berlin; the
customer lives in New York, so every time the API writes must come back in New York's zone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from calsync.bookings.event_types import save_event_type
from calsync.config import Settings
from calsync.policy.change_policy import ActionRule, ChangePolicy, Permission
from calsync.store.db import Database
from calsync.store.models import CalendarRole
from calsync.sync import connections as services
from calsync.web.app import create_app
from tests.support.servers import ServerProcess, delete_event
from tests.support.world import OWNER, at, coaching, next_monday

with warnings.catch_warnings():
    # Starlette warns when it finds httpx rather than httpx2; the tests work with either.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

API_KEY = "test-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ZONE = ZoneInfo("Europe/Berlin")
CUSTOMER_ZONE = ZoneInfo("America/New_York")
POLICY_TEXT = "Cancel up to a day ahead.\nNo refunds after that. <b>Really.</b>"


def add_owner_and_calendar(
    db: Database, settings: Settings, url: str, role: CalendarRole = CalendarRole.BOTH
) -> int:
    """The owner (once) and a Radicale calendar of theirs; returns the calendar's id."""
    if not any(owner.email == OWNER for owner in services.list_owners(db)):
        services.add_owner(db, name="Coach Carter", email=OWNER, timezone="Europe/Berlin")
    (calendar,) = services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, url, role=role)
    )
    return calendar.id


def add_event_type(db: Database, booking_calendar_id: int) -> None:
    """Coaching: an hour, weekdays 9 to 17 in Berlin, cancel until a day ahead."""
    save_event_type(
        db,
        coaching(
            booking_calendar_id=booking_calendar_id,
            policy=ChangePolicy(
                cancel=ActionRule(Permission.UNTIL, timedelta(hours=24)),
                max_reschedules=2,
                text=POLICY_TEXT,
            ),
        ),
    )


def app_client(settings: Settings, db: Database) -> TestClient:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    return TestClient(create_app(keyed, db=db), headers=AUTH)


def booking_body(*starts: datetime, **changes: Any) -> dict[str, Any]:
    body = {
        "event_type": "coaching",
        "customer_name": "Zoë Example",
        "customer_email": "zoe@example.org",
        "customer_timezone": "America/New_York",
        "starts": [start.isoformat() for start in starts],
        "stakeholders": ["parent@example.org"],
    }
    return body | changes


def page_path(settings: Settings, manage_url: str) -> str:
    assert manage_url.startswith(f"{settings.base_url}/m/"), manage_url
    return manage_url.removeprefix(settings.base_url)


def problems(response: httpx.Response) -> dict[str, str]:
    """A 422's problems as {field: message}."""
    assert response.status_code == 422, response.text
    return {p["field"]: p["message"] for p in response.json()["detail"]}


@pytest.fixture
def api(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Iterator[TestClient]:
    add_event_type(db, add_owner_and_calendar(db, settings, radicale_calendar))
    with app_client(settings, db) as client:
        yield client


# -- booking, reading, relinking, revoking --------------------------------------------------------


def test_a_package_is_booked_read_relinked_and_revoked(api: TestClient, settings: Settings) -> None:
    monday = next_monday()
    starts = [at(monday, 9), at(monday, 11), at(monday + timedelta(days=2), 14)]
    response = api.post("/api/bookings", json=booking_body(*starts))
    assert response.status_code == 201, response.text
    booked = response.json()
    booking_id, first_url = booked["id"], booked["manage_url"]
    in_new_york = [s.astimezone(CUSTOMER_ZONE).isoformat() for s in starts]
    assert [s["start"] for s in booked["sessions"]] == in_new_york
    assert [s["position"] for s in booked["sessions"]] == [1, 2, 3]
    assert {s["status"] for s in booked["sessions"]} == {"booked"}
    assert booked["customer"] == {
        "name": "Zoë Example",
        "email": "zoe@example.org",
        "timezone": "America/New_York",
    }
    assert booked["stakeholders"] == ["parent@example.org"]

    shown = api.get(f"/api/bookings/{booking_id}").json()
    assert shown["manage_url"] == first_url
    assert [s["start"] for s in shown["sessions"]] == in_new_york
    assert [s["end"] for s in shown["sessions"]] == [
        (s + timedelta(hours=1)).astimezone(CUSTOMER_ZONE).isoformat() for s in starts
    ]
    assert [h["action"] for h in shown["history"]] == ["booked"]
    assert datetime.fromisoformat(shown["link_expires_at"]) > starts[-1]
    assert api.get(page_path(settings, first_url)).status_code == 200

    response = api.post(f"/api/bookings/{booking_id}/relink")
    assert response.status_code == 200, response.text
    second_url = response.json()["manage_url"]
    assert second_url != first_url
    assert api.get(page_path(settings, first_url)).status_code == 404
    assert api.get(page_path(settings, second_url)).status_code == 200
    shown = api.get(f"/api/bookings/{booking_id}").json()
    assert shown["manage_url"] == second_url
    assert [h["action"] for h in shown["history"]] == ["booked", "relinked"]

    response = api.post(f"/api/bookings/{booking_id}/revoke")
    assert response.status_code == 204 and response.content == b""
    assert api.get(page_path(settings, second_url)).status_code == 404
    shown = api.get(f"/api/bookings/{booking_id}").json()
    assert shown["manage_url"] is None and shown["link_expires_at"] is None
    assert [h["action"] for h in shown["history"]] == ["booked", "relinked", "link_revoked"]


def test_an_occupied_slot_is_a_409_naming_it(api: TestClient) -> None:
    monday = next_monday()
    assert api.post("/api/bookings", json=booking_body(at(monday, 10))).status_code == 201
    response = api.post(
        "/api/bookings",
        json=booking_body(at(monday, 12), at(monday, 10), customer_email="sam@example.org"),
    )
    assert response.status_code == 409, response.text
    answer = response.json()
    assert datetime.fromisoformat(answer["start"]) == at(monday, 10)
    assert "taken by another booking" in answer["detail"]
    assert "Pick another time" in answer["detail"]


# -- what the request gets wrong ------------------------------------------------------------------


def test_malformed_bookings_are_422_field_by_field(api: TestClient) -> None:
    monday = next_monday()
    response = api.post(
        "/api/bookings",
        json=booking_body(
            customer_email="not-an-email",
            customer_timezone="America/New_Yrok",
            starts=["2026-12-01T09:00", "next tuesday", 1767000000],
            stakeholders=["parent@example.org", "nobody"],
        ),
    )
    found = problems(response)
    assert set(found) == {
        "customer_email",
        "customer_timezone",
        "starts.0",
        "starts.1",
        "starts.2",
        "stakeholders.1",
    }
    assert "UTC offset" in found["starts.0"]
    assert "ISO-8601" in found["starts.1"]
    assert "America/New_York" in found["customer_timezone"]

    assert set(problems(api.post("/api/bookings", json=booking_body()))) == {"starts"}
    too_many = [at(monday, 9) + timedelta(days=7 * n) for n in range(21)]
    assert set(problems(api.post("/api/bookings", json=booking_body(*too_many)))) == {"starts"}
    twice = booking_body(at(monday, 9), at(monday, 9))
    assert "twice" in problems(api.post("/api/bookings", json=twice))["starts"]
    unknown = booking_body(at(monday, 9), event_type="no-such-type")
    assert "no-such-type" in problems(api.post("/api/bookings", json=unknown))["event_type"]
    for wrong in (True, 1.5, None, ""):
        assert set(problems(api.post("/api/bookings", json=booking_body(event_type=wrong)))) >= {
            "event_type"
        }
    extra = booking_body(at(monday, 9), price="0")
    assert "not a field" in problems(api.post("/api/bookings", json=extra))["price"]
    # Nothing of this was booked: 9:00 is still free.
    assert api.post("/api/bookings", json=booking_body(at(monday, 9))).status_code == 201


def test_unknown_bookings_are_404_and_every_route_needs_the_key(api: TestClient) -> None:
    for method, path in [
        ("GET", "/api/bookings/0123456789abcdef0123456789abcdef"),
        ("POST", "/api/bookings/0123456789abcdef0123456789abcdef/relink"),
        ("POST", "/api/bookings/0123456789abcdef0123456789abcdef/revoke"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert "no booking" in response.json()["detail"]
    monday = next_monday()
    for method, path, body in [
        ("POST", "/api/bookings", booking_body(at(monday, 9))),
        ("GET", "/api/bookings/x", None),
        ("POST", "/api/bookings/x/relink", None),
        ("POST", "/api/bookings/x/revoke", None),
    ]:
        response = api.request(method, path, json=body, headers={"Authorization": ""})
        assert response.status_code == 401, (method, path)
    # The refused POST booked nothing.
    assert api.post("/api/bookings", json=booking_body(at(monday, 9))).status_code == 201


# -- calendars that fail ----------------------------------------------------------------------


def test_a_calendar_that_cannot_be_read_is_409_and_one_that_refuses_events_502(
    db: Database, settings: Settings, radicale_server: ServerProcess
) -> None:
    # Busy time comes from a conflicts calendar; bookings go to a calendar of their own.
    conflicts = radicale_server.new_calendar()
    bookings_only = radicale_server.new_calendar()
    add_owner_and_calendar(db, settings, conflicts, CalendarRole.CONFLICTS)
    add_event_type(db, add_owner_and_calendar(db, settings, bookings_only, CalendarRole.BOOKINGS))
    monday = next_monday()
    with app_client(settings, db) as client:
        # The owner deletes the booking calendar on the server: writing the events fails.
        delete_event(bookings_only)
        response = client.post("/api/bookings", json=booking_body(at(monday, 9)))
        assert response.status_code == 502, response.text
        assert "Nothing was booked" in response.json()["detail"]

        radicale_server.stop()
        try:
            response = client.post("/api/bookings", json=booking_body(at(monday, 9)))
        finally:
            radicale_server.start()
        assert response.status_code == 409, response.text
        assert "nothing was booked" in response.json()["detail"]
