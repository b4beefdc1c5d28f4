"""Control characters and numbers the database cannot hold are refused where they arrive:
a 422 naming the field (a page in the customer's words on the manage page), never a 500, and
nothing is stored. Both databases: PostgreSQL refuses NUL in text and integers past 32 bits,
which SQLite takes silently.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.bookings import changes
from calsync.config import Settings
from calsync.policy.change_policy import ActionRule, ChangePolicy, ReasonRule
from calsync.store.db import Database
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.cli.test_cli import Cli
from tests.support.manage_shop import Shop, post_form
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday
from tests.web.test_api import API_KEY, OWNER, event_type_body
from tests.web.test_manage_page import send

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, (response.status_code, response.text)
    return {p["field"]: p["message"] for p in response.json()["detail"]}


@pytest.fixture
def api(settings: Settings, db: Database) -> Iterator[TestClient]:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    # A 500 is answered as the server would answer it, so the test sees the status.
    app = create_app(keyed, db=db)
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ada\x00Lovelace"),
        ("name", "Ada\nLovelace"),
        ("name", "Ada\x1b[31m"),
        ("email", "ada\x00@example.org"),
        ("timezone", "Europe/Berlin\x00"),
    ],
)
def test_an_owner_with_a_control_character_is_refused_naming_the_field(
    api: TestClient, field: str, value: str
) -> None:
    problems = fields(api.post("/api/owners", json=OWNER | {field: value}))
    assert list(problems) == [field]
    assert "control character" in problems[field] or "zone" in problems[field]
    assert api.get("/api/owners").json() == []


def test_numbers_past_what_the_database_holds_are_refused_naming_the_field(
    api: TestClient,
) -> None:
    assert api.post("/api/owners", json=OWNER).status_code == 201
    created = api.post("/api/event-types", json=event_type_body())
    assert created.status_code == 201, created.text
    before = created.json()
    path = f"/api/event-types/{before['id']}"

    for value in (3e38, 2**31, 10**40):
        problems = fields(api.patch(path, json={"daily_cap": value}))
        assert list(problems) == ["daily_cap"]
    for body in (
        {"booking_calendar_id": 2**40},
        {"conflict_calendar_ids": [1, 2**63]},
        {"policy": {"cancel": {"permission": "until", "notice_minutes": 10**12}}},
        {"policy": {"max_reschedules": 2**40}},
        {"policy": {"text": "Cancel up to a day ahead.\x00"}},
        {"currency": "E\x00R"},
        {"slug": "intro\x00call"},
    ):
        problems = fields(api.patch(path, json=body))
        assert len(problems) == 1, problems
        (name,) = problems
        assert name.split(".")[0] == next(iter(body)), (body, problems)
    assert api.get(path).json() == before

    big = event_type_body(slug="big", daily_cap=2**31)
    assert list(fields(api.post("/api/event-types", json=big))) == ["daily_cap"]
    assert len(api.get("/api/event-types").json()) == 1


def test_a_booking_id_with_a_control_character_is_not_a_500(api: TestClient) -> None:
    response = api.get("/api/bookings/ab%00cd")
    assert response.status_code in (404, 422), response.text
    response = api.post("/api/bookings/ab%00cd/cancel", json={"session_ids": [1]})
    assert response.status_code in (404, 422), response.text


# -- bookings and their changes, on a real calendar server ----------------------------------------


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    keyed = settings.model_copy(update={"admin_api_key": API_KEY})
    return Shop(db, keyed, radicale_calendar)


def test_changes_with_control_characters_or_huge_numbers_change_nothing(shop: Shop) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    first = booked.session_ids[0]
    path = f"/api/bookings/{booked.id}"
    state, events = shop.state(booked.id), shop.event_times()
    move = [{"session_id": first, "start": at(monday, 15).isoformat()}]
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("reschedule", {"moves": move, "idempotency_key": "key\x00one"}, "idempotency_key"),
        ("reschedule", {"moves": move, "reason": "Ill\x00"}, "reason"),
        ("reschedule", {"moves": move, "expected_version": 2**31}, "expected_version"),
        ("reschedule", {"moves": [move[0] | {"session_id": 2**40}]}, "moves.0.session_id"),
        ("cancel", {"session_ids": [first], "idempotency_key": "k\x00"}, "idempotency_key"),
        ("cancel", {"session_ids": [first], "reason": "\x07"}, "reason"),
        ("cancel", {"session_ids": [2**40]}, "session_ids.0"),
    ]
    book = {
        "event_type": "coaching",
        "customer_name": "Sam",
        "customer_email": "sam@example.org",
        "starts": [at(monday, 13).isoformat()],
    }
    app = create_app(shop.settings, db=shop.db)
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as api:
        for action, body, field in bad:
            assert list(fields(api.post(f"{path}/{action}", json=body))) == [field], body
        for changed, field in [
            ({"customer_name": "Sam\x00"}, "customer_name"),
            ({"event_type": "coach\x00ing"}, "event_type"),
            ({"event_type": 2**40}, "event_type"),
            ({"stakeholders": ["a\x00@example.org"]}, "stakeholders.0"),
        ]:
            assert list(fields(api.post("/api/bookings", json=book | changed))) == [field]
        # A reason over several lines is fine: TAB, LF and CR are kept.
        ok = api.post(f"{path}/cancel", json={"session_ids": [first], "reason": "Ill.\r\n\tSorry."})
        assert ok.status_code == 200, ok.text
    assert shop.state(booked.id)[0] == state[0] + 1
    assert shop.event_times()[booked.uids[1]] == events[booked.uids[1]]
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.reason == "Ill.\r\n\tSorry."


def test_a_reason_with_a_control_character_gets_the_page_back_not_a_500(shop: Shop) -> None:
    shop.event_type(policy=ChangePolicy(cancel=ActionRule(reason=ReasonRule.REQUIRED)))
    booked = shop.book(at(next_monday(), 9))
    app = create_app(shop.settings, db=shop.db, manage_limits=RateLimits.off())
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        confirm = client.get(
            f"{booked.path}/cancel/review", params={"session": booked.session_ids[0]}
        )
        form = post_form(confirm.text)
        state = shop.state(booked.id)

        refused = send(client, form, reason="Sick\x00, sorry.")
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("text/html")
        assert "control character" in refused.text and 'aria-invalid="true"' in refused.text
        assert shop.state(booked.id) == state
        assert changes.changes_of(shop.db, booked.id) == []

        # The same form, the reason written again, goes through.
        done = send(client, post_form(refused.text), reason="Sick,\r\nsorry.")
        assert done.status_code == 303, done.text
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.reason == "Sick,\nsorry."


# -- the CLI ------------------------------------------------------------------------------------


def test_the_cli_refuses_control_characters_and_numbers_past_the_database(
    tmp_path: Path, database_url: str
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Ada", "--email", "ada@example.org", "--timezone", "UTC")
    refused = cli.run("owner", "add", "--name", "Bo\x1b[2J", "--email", "bo@example.org")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "control character (U+001B)" in " ".join(refused.stderr.split())
    add = ("event-type", "add", "--owner", "ada@example.org", "--slug", "intro")
    add += ("--duration", "30", "--hours", "mon-fri 09:00-17:00")
    for option, value in [("--daily-cap", "3000000000"), ("--max-reschedules", str(2**40))]:
        result = cli.run(*add, option, value)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert option in result.stderr
    assert json.loads(cli.ok("owner", "list", "--json"))[0]["name"] == "Ada"
    assert len(json.loads(cli.ok("owner", "list", "--json"))) == 1
    assert json.loads(cli.ok("event-type", "list", "--json")) == []
