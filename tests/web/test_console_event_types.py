"""The console's event-type pages over HTTP, on both databases, with a real Radicale calendar:
an event type created and edited through the form comes out of the admin API with every value
the form set; bad input is refused next to its field with the API's own message; the preview
lists the next free times; another owner's event type answers 404."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from calsync.config import Settings
from calsync.store.db import Database
from calsync.sync import connections as services
from calsync.web.app import create_app
from tests.support.console import console_client, csrf_of, signed_in
from tests.support.manage_shop import ALWAYS, OWNER, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SAME_SITE = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
API_KEY = "test-admin-key-0123456789abcdef"


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    return Shop(db, settings, radicale_calendar)


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with console_client(shop.settings, shop.db) as browser:
        signed_in(browser, shop.db, shop.settings, OWNER)
        yield browser


def api(shop: Shop) -> TestClient:
    keyed = shop.settings.model_copy(update={"admin_api_key": API_KEY})
    return TestClient(create_app(keyed, db=shop.db), headers={"Authorization": f"Bearer {API_KEY}"})


def full_form(shop: Shop, **changes: str | list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "Deep work coaching",
        "slug": "deep-work",
        "duration_minutes": "45",
        "slot_step_minutes": "15",
        "timezone": "Europe/Berlin",
        "hours-mon": "09:00-12:00, 13:00-17:00",
        "hours-tue": "",
        "hours-wed": "10:00-18:00",
        "hours-thu": "",
        "hours-fri": "09:00-12:00",
        "hours-sat": "",
        "hours-sun": "",
        "date_overrides": "2030-12-24: closed\n2030-12-31: 09:00-11:00",
        "buffer_before_minutes": "10",
        "buffer_after_minutes": "5",
        "minimum_notice_minutes": "120",
        "horizon_days": "30",
        "daily_cap": "4",
        "conflict_calendar_ids": [str(shop.calendar_id)],
        "booking_calendar_id": str(shop.calendar_id),
        "price": "80.00",
        "currency": "eur",
        "cancel_permission": "until",
        "cancel_notice_minutes": "1440",
        "cancel_reason": "required",
        "reschedule_permission": "anytime",
        "reschedule_notice_minutes": "",
        "reschedule_reason": "optional",
        "max_reschedules": "2",
        "reschedule_fee_kind": "fixed",
        "reschedule_fee_amount": "15.00",
        "cancel_refund_kind": "percent",
        "cancel_refund_amount": "50",
        "policy_text": "Cancel a day ahead.",
        "public": "yes",
        "packages": "1: 80.00\n3: 210.00",
        "min_days_apart": "1",
        "one_per_day": "yes",
        "max_stakeholders": "2",
    }
    fields.update(changes)
    return fields


def send(client: TestClient, path: str, fields: dict[str, Any]) -> Any:
    token = csrf_of(client.get("/console/event-types/new").text)
    return client.post(path, data={"csrf": token, **fields}, headers=SAME_SITE)


def test_an_event_type_made_in_the_console_is_the_one_the_api_reads(
    shop: Shop, client: TestClient
) -> None:
    assert "New event type" in client.get("/console/event-types").text
    created = send(client, "/console/event-types/new", full_form(shop))
    assert created.status_code == 303, created.text
    number = int(re.search(r"/event-types/(\d+)\?done=created", created.headers["location"])[1])
    with api(shop) as admin:
        read = admin.get(f"/api/event-types/{number}").json()
    assert read["title"] == "Deep work coaching" and read["duration_minutes"] == 45
    assert read["weekly_hours"] == {
        "mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
        "wed": [{"start": "10:00", "end": "18:00"}],
        "fri": [{"start": "09:00", "end": "12:00"}],
    }
    assert read["date_overrides"] == {
        "2030-12-24": [],
        "2030-12-31": [{"start": "09:00", "end": "11:00"}],
    }
    assert (read["buffer_before_minutes"], read["buffer_after_minutes"]) == (10, 5)
    assert (read["minimum_notice_minutes"], read["horizon_days"], read["daily_cap"]) == (
        120,
        30,
        4,
    )
    assert read["conflict_calendar_ids"] == [shop.calendar_id]
    assert read["booking_calendar_id"] == shop.calendar_id
    assert (read["price"], read["currency"]) == ("80.00", "EUR")
    assert read["policy"] == {
        "cancel": {"permission": "until", "notice_minutes": 1440, "reason": "required"},
        "reschedule": {"permission": "anytime", "notice_minutes": None, "reason": "optional"},
        "max_reschedules": 2,
        "reschedule_fee": {"kind": "fixed", "amount": "15.00"},
        "cancel_refund": {"kind": "percent", "amount": "50"},
        "text": "Cancel a day ahead.",
    }
    assert read["booking_page"]["public"] is True
    assert [p["sessions"] for p in read["booking_page"]["packages"]] == [1, 3]

    # The edit page shows it back, and saving it unchanged changes nothing.
    page = client.get(f"/console/event-types/{number}").text
    assert 'value="09:00-12:00, 13:00-17:00"' in page
    assert "2030-12-31: 09:00-11:00" in page and "3: 210.00" in page
    edited = send(
        client,
        f"/console/event-types/{number}",
        full_form(shop, **{"title": "Deep work", "hours-tue": "08:00-09:00"}),
    )
    assert edited.status_code == 303, edited.text
    with api(shop) as admin:
        again = admin.get(f"/api/event-types/{number}").json()
    assert again["title"] == "Deep work"
    assert again["weekly_hours"]["tue"] == [{"start": "08:00", "end": "09:00"}]
    assert again["policy"] == read["policy"]


def test_bad_input_is_refused_next_to_its_field_with_the_apis_words(
    shop: Shop, client: TestClient
) -> None:
    bad = full_form(
        shop,
        **{
            "duration_minutes": "0",
            "hours-mon": "9 to 5",
            "hours-wed": "18:00-10:00",
            "cancel_notice_minutes": "5",
            "reschedule_fee_amount": "lots",
            "slug": "Deep Work!",
        },
    )
    answer = send(client, "/console/event-types/new", bad)
    assert answer.status_code == 422
    text = answer.text
    assert 'id="duration_minutes-problem"' in text
    assert "Monday: write hours like 09:00-12:00" in text
    assert 'id="hours-wed-problem"' in text and "must be after the start (18:00)" in text
    assert 'id="reschedule_fee_amount-problem"' in text
    # What the owner typed is kept.
    assert 'value="9 to 5"' in text and 'value="lots"' in text
    with api(shop) as admin:
        assert admin.get("/api/event-types").json() == []
        # The API says the same thing about the same hours.
        body = {
            "owner_email": OWNER,
            "slug": "x",
            "title": "X",
            "duration_minutes": 30,
            "weekly_hours": {"wed": [{"start": "18:00", "end": "10:00"}]},
        }
        problem = admin.post("/api/event-types", json=body).json()["detail"][0]["message"]
    assert problem in text


def test_the_preview_shows_the_next_free_times(shop: Shop, client: TestClient) -> None:
    shop.event_type(hours=ALWAYS)
    monday = next_monday()
    shop.book(at(monday, 9))  # reads the calendar: the preview can be shown
    form = full_form(
        shop,
        **{f"hours-{d}": "09:00-10:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        date_overrides="",
        minimum_notice_minutes="0",
        buffer_before_minutes="0",
        buffer_after_minutes="0",
        duration_minutes="60",
        slot_step_minutes="60",
    )
    created = send(client, "/console/event-types/new", form)
    page = client.get(created.headers["location"]).text
    assert "Next free times" in page
    # Monday 09:00 is booked (same calendar), so it is not offered; Tuesday's is.
    tuesday = monday + timedelta(days=1)
    assert f"{tuesday:%a} {tuesday.day} {tuesday:%b %Y}, 09:00 – 10:00" in page
    assert f"{monday:%a} {monday.day} {monday:%b %Y}, 09:00 – 10:00" not in page


def test_another_owners_event_type_is_not_found(shop: Shop, client: TestClient) -> None:
    shop.event_type()
    services.add_owner(shop.db, name="Bea", email="bea@example.org", timezone="Europe/Paris")
    with api(shop) as admin:
        (mine,) = admin.get("/api/event-types").json()
    with console_client(shop.settings, shop.db) as bea:
        signed_in(bea, shop.db, shop.settings, "bea@example.org")
        assert bea.get(f"/console/event-types/{mine['id']}").status_code == 404
        assert "coaching" not in bea.get("/console/event-types").text
        token = csrf_of(bea.get("/console/event-types").text)
        answer = bea.post(
            f"/console/event-types/{mine['id']}",
            data={"csrf": token, **full_form(shop)},
            headers=SAME_SITE,
        )
        assert answer.status_code == 404
    with api(shop) as admin:
        assert admin.get(f"/api/event-types/{mine['id']}").json()["title"] == "Coaching"
