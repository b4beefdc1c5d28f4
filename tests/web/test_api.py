"""The admin JSON API as a client uses it: the real app, a real database, a real CalDAV server.

Every answer is checked for what a person needs from it: the status, the field at fault and a
message saying what to change. No response and no log line may contain a password.
"""

from __future__ import annotations

import http.server
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.config import Settings
from calsync.store.db import Database
from calsync.web.api.event_type_schemas import AvailabilityOut
from calsync.web.app import create_app
from tests.conftest import make_settings
from tests.support.servers import PASSWORD, USER, ServerProcess

with warnings.catch_warnings():
    # Starlette warns when it finds httpx rather than httpx2; the tests work with either.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

API_KEY = "test-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
OWNER = {"name": "Ada Lovelace", "email": "ada@example.org", "timezone": "Europe/Berlin"}
WRONG_PASSWORD = "wrong-horse-battery-staple"


class Recorder:
    """Keeps every response's text, so a test can prove a secret never appeared in one."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.texts.append(f"{response.headers}\n{response.text}")

    def assert_never_shown(self, secret: str) -> None:
        assert self.texts, "no responses were recorded"
        assert not [text for text in self.texts if secret in text]


def client_for(settings: Settings, db: Database, recorder: Recorder | None = None) -> TestClient:
    client = TestClient(create_app(settings, db=db), headers=AUTH)
    if recorder is not None:
        client.event_hooks = {"request": [], "response": [recorder]}
    return client


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(settings: Settings, db: Database, recorder: Recorder) -> Iterator[TestClient]:
    """The app on both databases, with the key sent on every request."""
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    with client_for(keyed, db, recorder) as client:
        yield client


@pytest.fixture
def sqlite_api(tmp_path: Path, recorder: Recorder) -> Iterator[TestClient]:
    """The app on SQLite only, for behaviour that does not depend on the database."""
    settings = make_settings(f"sqlite:///{tmp_path}/api.db").model_copy(
        update={"admin_api_key": API_KEY}
    )
    db = Database(settings.database_url)
    db.migrate()
    with client_for(settings, db, recorder) as client:
        yield client
    db.dispose()


def problems(response: httpx.Response) -> dict[str, str]:
    """A 422's problems as {field: message}."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all(set(p) == {"field", "message"} for p in detail), detail
    return {p["field"]: p["message"] for p in detail}


def next_monday(weeks_ahead: int = 1) -> date:
    today = date.today()
    return today + timedelta(days=7 * weeks_ahead - today.weekday())


def event_type_body(**changes: Any) -> dict[str, Any]:
    body = {
        "owner_email": OWNER["email"],
        "slug": "intro-call",
        "title": "Intro call",
        "duration_minutes": 30,
        "slot_step_minutes": 15,
        "timezone": "Europe/Berlin",
        "weekly_hours": {
            "mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
            "sat": [{"start": "10:00", "end": "24:00"}],
        },
        "date_overrides": {"2026-12-24": [], "2026-12-31": [{"start": "10:00", "end": "12:00"}]},
        "buffer_before_minutes": 10,
        "buffer_after_minutes": 5,
        "minimum_notice_minutes": 120,
        "horizon_days": 30,
        "daily_cap": 4,
        "price": "90.00",
        "currency": "EUR",
        "policy": {
            "cancel": {"permission": "until", "notice_minutes": 1440, "reason": "required"},
            "reschedule": {"permission": "anytime", "notice_minutes": None, "reason": "optional"},
            "max_reschedules": 2,
            "reschedule_fee": {"kind": "fixed", "amount": "15.00"},
            "cancel_refund": {"kind": "percent", "amount": "50"},
            "text": "Cancel up to a day ahead.",
        },
    }
    return body | changes


# -- the key ------------------------------------------------------------------------------------


def test_every_api_route_needs_the_key_and_nothing_else_is_read_without_it(
    sqlite_api: TestClient,
) -> None:
    no_key = {"Authorization": ""}
    for method, path, extra in [
        ("GET", "/api/owners", {}),
        ("GET", "/api/no-such-route", {}),
        ("POST", "/api/owners", {"content": b"{not json"}),
        ("DELETE", "/api/calendars/1", {}),
    ]:
        for headers in (no_key, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = sqlite_api.request(method, path, headers=headers, **extra)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "Authorization: Bearer" in response.json()["detail"]
    # The key itself, with a lower-case scheme as some clients send it.
    assert sqlite_api.get("/api/owners").json() == []
    assert sqlite_api.get("/api/owners", headers={"Authorization": f"bearer {API_KEY}"}).is_success
    # Health and the API's description need no key (a browser cannot send one to the docs).
    assert sqlite_api.get("/healthz", headers=no_key).status_code == 200
    assert sqlite_api.get("/api/docs", headers=no_key).status_code == 200
    openapi = sqlite_api.get("/api/openapi.json", headers=no_key).json()
    assert openapi["components"]["securitySchemes"]["admin_api_key"]["scheme"] == "bearer"
    assert "/api/event-types/{event_type_id}/availability" in openapi["paths"]


def test_without_a_configured_key_the_api_refuses_everything(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/api.db")
    assert settings.admin_api_key is None
    db = Database(settings.database_url)
    db.migrate()
    with client_for(settings, db) as client:
        for headers in ({}, {"Authorization": "Bearer anything"}, {"Authorization": "Bearer "}):
            response = client.get("/api/owners", headers=headers)
            assert response.status_code == 503
            assert "admin_api_key" in response.json()["detail"]
            assert "CALSYNC_ADMIN_API_KEY" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200
    db.dispose()


# -- health -------------------------------------------------------------------------------------


def test_healthz_reports_the_database(api: TestClient, tmp_path: Path) -> None:
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {
        "status": "ok",
        "database": "ok",
        "migrations": "current",
    }
    unreachable = Database("postgresql+psycopg://calsync:s3cret@127.0.0.1:1/nothing")
    settings = make_settings(f"sqlite:///{tmp_path}/unused.db")
    with client_for(settings, unreachable) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "migrations": "unknown",
    }
    assert "s3cret" not in response.text and "127.0.0.1" not in response.text


def test_healthz_fails_until_the_database_is_migrated_for_this_version(
    settings: Settings, db: Database
) -> None:
    # What a deploy of new code before `calsync init` (or a rollback after it) looks like.
    def set_revision(revision: str) -> None:
        with db.engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")

    with db.engine.connect() as connection:
        newest = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    set_revision("0001")
    with client_for(settings, db) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "ok",
            "migrations": "not_current",
        }
        set_revision(str(newest))
        assert client.get("/healthz").json()["status"] == "ok"


# -- owners -------------------------------------------------------------------------------------


def test_owners_are_added_listed_and_read(api: TestClient) -> None:
    response = api.post("/api/owners", json=OWNER | {"email": "Ada@Example.org"})
    assert response.status_code == 201
    ada = response.json()
    assert ada["id"] > 0 and ada["email"] == "ada@example.org"
    # The booking page's owner slug, and the page listing their event types.
    assert ada["slug"] == "ada"
    assert ada["page_url"] == "http://127.0.0.1:8000/b/ada"
    assert ada["created_at"].endswith("+00:00")
    bob = api.post(
        "/api/owners", json={"name": "Bob", "email": "bob@example.org", "timezone": "UTC"}
    ).json()
    assert api.get("/api/owners").json() == [ada, bob]
    assert api.get(f"/api/owners/{bob['id']}").json() == bob

    assert api.get("/api/owners/9999").status_code == 404
    taken = api.post("/api/owners", json=OWNER)
    assert taken.status_code == 400 and "exists already" in taken.json()["detail"]
    assert problems(api.post("/api/owners", json=OWNER | {"timezone": "Europe/Berln"})) == {
        "timezone": "unknown time zone 'Europe/Berln': did you mean Europe/Berlin?"
    }
    assert set(problems(api.post("/api/owners", json={"email": "no-at-sign", "tz": "UTC"}))) == {
        "name",
        "email",
        "timezone",
        "tz",
    }
    assert problems(api.get("/api/owners/ada")) == {
        "owner_id": "must be a valid integer, unable to parse string as an integer"
    }


# -- calendars ----------------------------------------------------------------------------------


def test_a_calendar_is_connected_synced_and_removed_and_its_password_never_shown(
    api: TestClient,
    radicale_auth_server: ServerProcess,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api.post("/api/owners", json=OWNER)
    url = radicale_auth_server.new_calendar(display_name="Work")
    body = {
        "owner_email": OWNER["email"],
        "url": url,
        "username": USER,
        "password": PASSWORD,
        "role": "both",
    }
    response = api.post("/api/calendars", json=body)
    assert response.status_code == 201, response.text
    [created] = response.json()
    assert created["url"] == url and created["name"] == "Work" and created["role"] == "both"
    assert created["has_password"] is True and "password" not in created
    assert created["status"] == "new" and created["events"] == 0
    calendar_id = created["id"]

    # Until it has been synced, free times are not known (409, not a guess).
    event_type = api.post("/api/event-types", json=event_type_body()).json()
    unknown = api.get(f"/api/event-types/{event_type['id']}/availability")
    assert unknown.status_code == 409 and "not been synced" in unknown.json()["detail"]

    synced = api.post(f"/api/calendars/{calendar_id}/sync")
    assert synced.status_code == 200, synced.text
    assert synced.json() == {
        "calendar_id": calendar_id,
        "outcome": "ok",
        "full": True,
        "upserted": 0,
        "removed": 0,
        "problems": 0,
        "error": None,
    }
    [listed] = api.get("/api/calendars").json()
    assert listed["status"] == "ok" and listed["last_error"] is None
    assert listed["last_success_at"] is not None and listed["next_poll_at"] > listed["created_at"]
    assert api.get(f"/api/calendars/{calendar_id}").json() == listed
    assert api.get(f"/api/event-types/{event_type['id']}/availability").status_code == 200

    assert api.delete(f"/api/calendars/{calendar_id}").status_code == 204
    assert api.get(f"/api/calendars/{calendar_id}").status_code == 404
    assert api.delete(f"/api/calendars/{calendar_id}").status_code == 404
    assert api.post(f"/api/calendars/{calendar_id}/sync").status_code == 404
    assert api.get("/api/calendars").json() == []

    recorder.assert_never_shown(PASSWORD)
    assert PASSWORD not in caplog.text


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    """A plain web server: answers HTTP, but is no CalDAV server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_calendar_that_cannot_be_connected_is_explained(
    sqlite_api: TestClient,
    radicale_auth_server: ServerProcess,
    web_page: str,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sqlite_api.post("/api/owners", json=OWNER)
    body = {"owner_email": OWNER["email"], "username": USER, "password": WRONG_PASSWORD}

    wrong = sqlite_api.post(
        "/api/calendars", json=body | {"url": radicale_auth_server.new_calendar()}
    )
    assert wrong.status_code == 400 and "password" in wrong.json()["detail"].lower()

    not_caldav = sqlite_api.post("/api/calendars", json=body | {"url": web_page})
    assert not_caldav.status_code == 400 and "CalDAV" in not_caldav.json()["detail"]

    down = sqlite_api.post("/api/calendars", json=body | {"url": "http://127.0.0.1:9/cal/"})
    assert down.status_code == 502 and "reach" in down.json()["detail"]

    assert problems(
        sqlite_api.post("/api/calendars", json=body | {"url": web_page, "owner_email": "x@y.z"})
    ) == {"owner_email": "no owner with email x@y.z: add one with `calsync owner add`"}
    in_url = f"http://{USER}:{WRONG_PASSWORD}@127.0.0.1:9/cal/"
    assert set(problems(sqlite_api.post("/api/calendars", json=body | {"url": in_url}))) == {"url"}
    assert set(
        problems(
            sqlite_api.post(
                "/api/calendars",
                json=body | {"url": "ftp://x/", "role": "all", "timezone": "Nowhere"},
            )
        )
    ) == {"url", "role", "timezone"}

    assert sqlite_api.get("/api/calendars").json() == []
    recorder.assert_never_shown(WRONG_PASSWORD)
    assert WRONG_PASSWORD not in caplog.text


# -- event types --------------------------------------------------------------------------------


def test_event_types_are_created_read_patched_and_deleted(api: TestClient) -> None:
    api.post("/api/owners", json=OWNER)
    body = event_type_body()
    response = api.post("/api/event-types", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert {k: created[k] for k in body} == body
    assert created["owner_id"] > 0 and created["booking_calendar_id"] is None
    event_type_id = created["id"]
    assert api.get("/api/event-types").json() == [created]
    assert api.get(f"/api/event-types/{event_type_id}").json() == created

    # Only the fields given change; the policy is merged, not replaced.
    patch = {
        "title": "First call",
        "weekly_hours": {"tue": [{"start": "08:00", "end": "10:00"}]},
        "daily_cap": None,
        "policy": {"text": "Free to move.", "cancel": {"permission": "never"}},
    }
    patched = api.patch(f"/api/event-types/{event_type_id}", json=patch)
    assert patched.status_code == 200, patched.text
    expected = created | {
        "title": "First call",
        "weekly_hours": patch["weekly_hours"],
        "daily_cap": None,
        "policy": created["policy"]
        | {
            "text": "Free to move.",
            "cancel": {"permission": "never", "notice_minutes": None, "reason": "required"},
        },
    }
    assert {k: v for k, v in patched.json().items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }
    assert api.get(f"/api/event-types/{event_type_id}").json() == patched.json()
    assert problems(api.patch(f"/api/event-types/{event_type_id}", json={"slug": None})) == {
        "slug": "cannot be null; leave the field out to keep its value"
    }

    assert api.delete(f"/api/event-types/{event_type_id}").status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = api.request(method, f"/api/event-types/{event_type_id}", json={"title": "x"})
        assert gone.status_code == 404, method
        assert f"no event type {event_type_id}" in gone.json()["detail"]
    assert api.get("/api/event-types").json() == []


def test_event_type_problems_name_their_fields(api: TestClient) -> None:
    api.post("/api/owners", json=OWNER)
    assert api.post("/api/event-types", json=event_type_body()).status_code == 201

    found = problems(
        api.post(
            "/api/event-types",
            json=event_type_body(
                slug="second",
                timezone="Europe/Berln",
                weekly_hours={
                    "mon": [{"start": "17:00", "end": "09:00"}],
                    "tue": [{"start": "9.30", "end": "12:00"}],
                    "funday": [],
                },
                date_overrides={"2026-02-30": []},
                duration=30,
            ),
        )
    )
    assert found["timezone"] == "unknown time zone 'Europe/Berln': did you mean Europe/Berlin?"
    assert found["weekly_hours.mon.0.end"].startswith("must be after the start (17:00)")
    assert found["weekly_hours.tue.0.start"] == "'9.30' is not a time like 09:30 (24:00 ends a day)"
    assert "'mon'" in found["weekly_hours.funday"]
    assert "date_overrides.2026-02-30" in found
    assert found["duration"] == "is not a field of this request (check its spelling)"

    # What only the whole definition shows, named the same way.
    found = problems(
        api.post(
            "/api/event-types",
            json=event_type_body(
                slug="intro-call",
                weekly_hours={
                    "mon": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]
                },
                policy={"cancel": {"permission": "until"}},
                conflict_calendar_ids=[4242],
                horizon_days=1,
                minimum_notice_minutes=1440,
            ),
        )
    )
    assert "09:00–12:00 and 11:00–13:00 overlap" in found["weekly_hours"]
    assert found["policy.cancel.notice_minutes"] == "say how long before a session it ends"
    assert "calendar 4242" in found["conflict_calendar_ids"]
    assert "minimum notice" in found["horizon_days"]
    assert problems(api.post("/api/event-types", json=event_type_body())) == {
        "slug": "an event type with slug 'intro-call' exists already"
    }
    assert set(
        problems(api.post("/api/event-types", json=event_type_body(owner_email="x@y.z")))
    ) == {"owner_email"}


def test_availability_is_read_and_written_in_the_zone_asked_for(api: TestClient) -> None:
    api.post("/api/owners", json=OWNER)
    event_type = api.post(
        "/api/event-types",
        json=event_type_body(
            weekly_hours={"mon": [{"start": "09:00", "end": "17:00"}]},
            slot_step_minutes=60,
            duration_minutes=60,
            buffer_before_minutes=0,
            buffer_after_minutes=0,
            daily_cap=None,
        ),
    ).json()
    url = f"/api/event-types/{event_type['id']}/availability"
    monday = next_monday(weeks_ahead=2).isoformat()
    tuesday = (next_monday(weeks_ahead=2) + timedelta(days=1)).isoformat()

    # Dates are read in the event type's zone unless tz says otherwise.
    berlin = api.get(url, params={"start": monday, "end": tuesday}).json()
    assert berlin["timezone"] == "Europe/Berlin" and berlin["event_type_id"] == event_type["id"]
    assert len(berlin["slots"]) == 8
    assert berlin["slots"][0]["start"].startswith(f"{monday}T09:00:00+0")
    # Tokyo's Monday ends at 16:00 in Berlin (17:00 in summer): the last hour is Tokyo's Tuesday.
    tokyo = api.get(url, params={"start": monday, "end": tuesday, "tz": "Asia/Tokyo"}).json()
    assert tokyo["timezone"] == "Asia/Tokyo" and tokyo["start"] == f"{monday}T00:00:00+09:00"
    assert tokyo["slots"][0]["start"].endswith("+09:00")
    assert len(tokyo["slots"]) in (7, 8)  # 7 in winter (Berlin +01:00), 8 in summer
    # An unescaped '+' arrives as a space, and is understood.
    spaced = api.get(url, params={"start": f"{monday}T00:00 01:00", "end": tuesday})
    assert spaced.status_code == 200 and len(spaced.json()["slots"]) == 8
    assert api.get(url).status_code == 200  # default: the next seven days

    assert problems(api.get(url, params={"tz": "Mars/Olympus"})) == {
        "tz": "unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Berlin"
    }
    assert set(problems(api.get(url, params={"start": "2026-13-01", "end": "tomorrow"}))) == {
        "start",
        "end",
    }
    too_long = problems(api.get(url, params={"start": monday, "end": "2099-01-01"}))
    assert too_long == {"end": "ask for at most 30 days (the booking horizon) at a time"}
    assert problems(api.get(url, params={"start": tuesday, "end": monday})) == {
        "end": "must be after start"
    }
    assert api.get("/api/event-types/9999/availability").status_code == 404


def test_availability_answer_is_the_documented_model_byte_for_byte(api: TestClient) -> None:
    # The route writes its JSON by hand (for speed); it must stay what AvailabilityOut says.
    api.post("/api/owners", json=OWNER)
    event_type = api.post("/api/event-types", json=event_type_body()).json()
    url = f"/api/event-types/{event_type['id']}/availability"
    monday = next_monday(weeks_ahead=2)
    for tz in (None, "Asia/Kathmandu", "UTC"):
        params = {"start": monday.isoformat(), "end": (monday + timedelta(days=6)).isoformat()}
        answer = api.get(url, params=params | ({"tz": tz} if tz else {}))
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        model = AvailabilityOut.model_validate_json(answer.content)
        assert model.slots, "the week has free slots"
        assert answer.content == model.model_dump_json().encode()


def test_numbers_and_dates_out_of_range_are_field_errors_not_crashes(api: TestClient) -> None:
    too_big = "99999999999999999999"
    for path in (
        f"/api/calendars/{too_big}",
        f"/api/event-types/{too_big}",
        f"/api/owners/{too_big}",
    ):
        response = api.get(path)
        assert response.status_code == 422, (path, response.text)
    owner = api.post("/api/owners", json=OWNER)
    assert owner.status_code == 201
    created = api.post("/api/event-types", json=event_type_body())
    assert created.status_code == 201, created.text
    availability = f"/api/event-types/{created.json()['id']}/availability"
    for value in ("9999-12-31", "0001-01-01", "9999-12-31T23:00+00:00"):
        response = api.get(availability, params={"start": value})
        assert response.status_code == 422, (value, response.text)
        assert "start" in problems(response)
    booking = api.post(
        "/api/bookings",
        json={
            "event_type": 10**30,
            "customer_name": "Zoë",
            "customer_email": "zoe@example.org",
            "starts": ["2026-12-01T09:00:00+01:00"],
        },
    )
    assert booking.status_code == 422
    assert "event_type" in problems(booking)


def test_the_api_docs_load_nothing_from_the_internet(sqlite_api: TestClient) -> None:
    """An offline server still shows its API docs: every file the page loads is served here."""
    page = sqlite_api.get("/api/docs", headers={}).text
    assert "SwaggerUIBundle" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3  # the script, the styles, the icon
    assert re.findall(r"https?://", page) == []
    for url in assets:
        response = sqlite_api.get(url, headers={})
        assert response.status_code == 200, url
        assert len(response.content) > 100, url
    redirect = sqlite_api.get("/api/docs/oauth2-redirect", headers={})
    assert redirect.status_code == 200


def test_the_booking_page_offer_is_set_through_the_api_and_its_url_given(api: TestClient) -> None:
    api.post("/api/owners", json=OWNER)
    page = {
        "public": True,
        "packages": [{"sessions": 3, "price": "250.00"}, {"sessions": 1, "price": "90"}],
        "min_days_apart": 2,
        "one_per_day": False,
        "max_stakeholders": 1,
    }
    created = api.post("/api/event-types", json=event_type_body(booking_page=page)).json()
    assert created["booking_page"]["packages"] == [
        {"sessions": 1, "price": "90"},
        {"sessions": 3, "price": "250.00"},
    ]
    assert created["booking_page"]["min_days_apart"] == 2
    slug = OWNER["email"].split("@")[0].lower()
    assert created["page_url"] == f"http://127.0.0.1:8000/b/{slug}/intro-call"
    patched = api.patch(
        f"/api/event-types/{created['id']}", json={"booking_page": {"public": False}}
    ).json()
    # Replaced whole: what is left out takes its default.
    assert patched["booking_page"] == {
        "public": False,
        "packages": [],
        "min_days_apart": 0,
        "one_per_day": False,
        "max_stakeholders": 0,
    }
    bad = {"booking_page": {"packages": [{"sessions": 3, "price": "1"}] * 2}}
    assert "booking_page" in " ".join(
        problems(api.patch(f"/api/event-types/{created['id']}", json=bad))
    )
