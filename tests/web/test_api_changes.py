"""The owner moves and cancels sessions through the admin API: never bound by the customer's
policy, idempotent with a key, refused when the booking changed since ``expected_version``.

Real app on both databases, events on a real Radicale server.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from calsync.config import Settings
from calsync.policy.change_policy import ActionRule, ChangePolicy, Permission
from calsync.store.db import Database
from calsync.web.app import create_app
from tests.support.manage_shop import NEW_YORK, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

API_KEY = "test-admin-key-0123456789abcdef"
NEVER = ChangePolicy(cancel=ActionRule(Permission.NEVER), reschedule=ActionRule(Permission.NEVER))


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    return Shop(db, keyed, radicale_calendar)


@pytest.fixture
def api(shop: Shop) -> Iterator[TestClient]:
    app = create_app(shop.settings, db=shop.db)
    with TestClient(app, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def test_the_owner_moves_and_cancels_what_the_customer_may_not(shop: Shop, api: TestClient) -> None:
    shop.event_type(policy=NEVER)
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    first, second = booked.session_ids
    before = shop.event_times()
    # 20:00 is outside the working hours: the owner may put a session there, with force.
    late = at(monday + timedelta(days=1), 20)

    body = {
        "moves": [{"session_id": first, "start": late.isoformat()}],
        "reason": "Moved on the phone",
        "idempotency_key": "call-42",
        "expected_version": 1,
    }
    refused = api.post(f"/api/bookings/{booked.id}/reschedule", json=body)
    assert refused.status_code == 422, refused.text
    problem = refused.json()["detail"][0]
    assert problem["field"] == "moves" and "outside the working hours" in problem["message"]
    assert '"force": true' in problem["message"]
    assert shop.event_times() == before
    body["force"] = True
    response = api.post(f"/api/bookings/{booked.id}/reschedule", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    change = answer["change"]
    assert (change["kind"], change["status"], change["actor"]) == ("reschedule", "applied", "owner")
    (item,) = change["items"]
    assert item["session_id"] == first and item["applied"] is True
    assert datetime.fromisoformat(item["from"]["start"]) == at(monday, 9)
    assert item["to"]["start"] == late.astimezone(NEW_YORK).isoformat()
    assert answer["booking"]["version"] == 2 and answer["replayed"] is False
    assert answer["booking"]["sessions"][0]["status"] == "rescheduled"

    again = api.post(f"/api/bookings/{booked.id}/reschedule", json=body)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["change"]["id"] == change["id"]

    response = api.post(
        f"/api/bookings/{booked.id}/cancel", json={"session_ids": [second], "reason": "Ill"}
    )
    assert response.status_code == 200, response.text
    cancelled = response.json()["change"]
    assert cancelled["kind"] == "cancel" and cancelled["items"][0]["to"] is None

    after = shop.event_times()
    assert after[booked.uids[0]][:2] == (late, before[booked.uids[0]][1] + 1)
    assert after[booked.uids[1]][1:] == (before[booked.uids[1]][1] + 1, "CANCELLED")


def test_refused_changes_are_409_and_422_and_change_nothing(shop: Shop, api: TestClient) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    other = shop.book(at(monday, 13), email="sam@example.org")
    first = booked.session_ids[0]
    path = f"/api/bookings/{booked.id}"
    state, events = shop.state(booked.id), shop.event_times()

    def move(session_id: int, start: datetime, **extra: object) -> dict[str, object]:
        return {"moves": [{"session_id": session_id, "start": start.isoformat()}], **extra}

    stale = api.post(f"{path}/reschedule", json=move(first, at(monday, 15), expected_version=7))
    assert stale.status_code == 409 and "changed" in stale.json()["detail"]
    foreign = api.post(f"{path}/reschedule", json=move(other.session_ids[0], at(monday, 15)))
    assert foreign.status_code == 422
    assert foreign.json()["detail"][0]["field"] == "moves"
    assert "not part of this booking" in foreign.json()["detail"][0]["message"]
    twice = api.post(f"{path}/cancel", json={"session_ids": [first, first]})
    assert twice.status_code == 422 and twice.json()["detail"][0]["field"] == "session_ids"
    naive = api.post(
        f"{path}/reschedule", json={"moves": [{"session_id": first, "start": "2030-01-01T09:00"}]}
    )
    assert naive.status_code == 422 and naive.json()["detail"][0]["field"] == "moves.0.start"
    unknown = api.post("/api/bookings/nope/cancel", json={"session_ids": [first]})
    assert unknown.status_code == 404
    assert shop.state(booked.id) == state and shop.event_times() == events

    keyed = move(first, at(monday, 15), idempotency_key="k-1")
    assert api.post(f"{path}/reschedule", json=keyed).status_code == 200
    reused = api.post(f"{path}/reschedule", json=move(first, at(monday, 16), idempotency_key="k-1"))
    assert reused.status_code == 409 and "already sent" in reused.json()["detail"]
    gone = api.post(f"{path}/cancel", json={"session_ids": [booked.session_ids[1]]})
    assert gone.status_code == 200
    again = api.post(f"{path}/cancel", json={"session_ids": [booked.session_ids[1]]})
    assert again.status_code == 422 and again.json()["detail"][0]["field"] == "session_ids"
    assert "already cancelled" in again.json()["detail"][0]["message"]


def test_a_taken_start_is_a_409_naming_it_for_new_bookings(shop: Shop, api: TestClient) -> None:
    shop.event_type()
    monday = next_monday()
    shop.book(at(monday, 10))
    body = {
        "event_type": "coaching",
        "customer_name": "Sam",
        "customer_email": "sam@example.org",
        "starts": [at(monday, 10).isoformat()],
    }
    response = api.post("/api/bookings", json=body)
    assert response.status_code == 409, response.text
    assert datetime.fromisoformat(response.json()["start"]) == at(monday, 10)
    assert "session_id" not in response.json()


def test_bookings_are_listed_with_the_cli_filters(shop: Shop, api: TestClient) -> None:
    shop.event_type()
    monday = next_monday()
    first = shop.book(at(monday, 9))
    second = shop.book(at(monday, 13), email="sam@example.org")

    def ids(**query: str) -> list[str]:
        response = api.get("/api/bookings", params=query)
        assert response.status_code == 200, response.text
        return [b["id"] for b in response.json()]

    assert ids() == [first.id, second.id]
    assert ids(customer="sam") == [second.id]
    assert ids(event_type="coaching", when="upcoming") == [first.id, second.id]
    assert ids(when="past") == []
    listed = api.get("/api/bookings").json()[0]
    assert listed["manage_url"] and listed["sessions"][0]["status"] == "booked"
    assert api.get("/api/bookings", params={"when": "someday"}).status_code == 422
    assert api.get("/api/bookings", params={"owner": "nobody@example.org"}).status_code == 404


def test_a_booking_calendar_is_not_deleted_without_force(shop: Shop, api: TestClient) -> None:
    shop.event_type()
    booked = shop.book(at(next_monday(), 9))
    path = f"/api/calendars/{shop.calendar_id}"
    refused = api.delete(path)
    assert refused.status_code == 409, refused.text
    assert booked.id in refused.json()["detail"] and "?force=true" in refused.json()["detail"]
    assert api.get(path).status_code == 200
    assert api.delete(path, params={"force": "true"}).status_code == 204
    assert api.get(path).status_code == 404
