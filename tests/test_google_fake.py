"""The fake Google server's own semantics, checked with plain HTTP (no client in between)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from calsync.testing.google_fake import FakeGoogle

EVENT = {
    "summary": "x",
    "start": {"dateTime": "2030-01-02T10:00:00Z"},
    "end": {"dateTime": "2030-01-02T11:00:00Z"},
}


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        yield server


def call(
    fake: FakeGoogle, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        fake.endpoint + path,
        data=data,
        method=method,
        headers={"Authorization": "Bearer t", "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def reason(answer: Any) -> str:
    return str(answer["error"]["errors"][0]["reason"])


def test_sync_token_expires_with_410_full_sync_required(fake: FakeGoogle) -> None:
    status, page = call(fake, "GET", "calendars/primary/events")
    assert status == 200 and "nextSyncToken" in page
    fake.expire_sync_tokens()
    status, answer = call(
        fake, "GET", f"calendars/primary/events?syncToken={page['nextSyncToken']}"
    )
    assert (status, reason(answer)) == (410, "fullSyncRequired")


def test_sync_token_with_a_forbidden_parameter_is_400(fake: FakeGoogle) -> None:
    _, page = call(fake, "GET", "calendars/primary/events")
    token = page["nextSyncToken"]
    status, _ = call(
        fake, "GET", f"calendars/primary/events?syncToken={token}&timeMin=2030-01-01T00:00:00Z"
    )
    assert status == 400


def test_next_sync_token_only_on_the_last_page(fake: FakeGoogle) -> None:
    fake.page_size = 2
    for _ in range(3):
        fake.owner_insert(EVENT)
    _, first = call(fake, "GET", "calendars/primary/events")
    assert "nextPageToken" in first and "nextSyncToken" not in first
    _, last = call(fake, "GET", f"calendars/primary/events?pageToken={first['nextPageToken']}")
    assert "nextSyncToken" in last and "nextPageToken" not in last
    assert len(first["items"]) + len(last["items"]) == 3


def test_etags_change_on_every_write_and_stale_if_match_is_412(fake: FakeGoogle) -> None:
    _, created = call(fake, "POST", "calendars/primary/events", EVENT)
    path = f"calendars/primary/events/{created['id']}"
    _, patched = call(fake, "PATCH", path, {"summary": "y"}, **{"If-Match": created["etag"]})
    assert patched["etag"] != created["etag"]
    status, _ = call(fake, "PATCH", path, {"summary": "z"}, **{"If-Match": created["etag"]})
    assert status == 412
    status, _ = call(fake, "DELETE", path, **{"If-Match": created["etag"]})
    assert status == 412
    assert call(fake, "DELETE", path, **{"If-Match": patched["etag"]})[0] == 204
    assert call(fake, "PATCH", path, {"summary": "z"})[0] == 410
    assert call(fake, "GET", "calendars/primary/events/nope")[0] == 404


def test_cancelled_items_in_a_delta_are_minimal(fake: FakeGoogle) -> None:
    event = fake.owner_insert({**EVENT, "description": "secret"})
    _, page = call(fake, "GET", "calendars/primary/events")
    fake.owner_delete(event["id"])
    _, delta = call(fake, "GET", f"calendars/primary/events?syncToken={page['nextSyncToken']}")
    (item,) = delta["items"]
    assert item["status"] == "cancelled" and "description" not in item
    _, listing = call(fake, "GET", "calendars/primary/events")
    assert listing["items"] == []


def test_ical_uid_is_unique(fake: FakeGoogle) -> None:
    assert call(fake, "POST", "calendars/primary/events", {**EVENT, "iCalUID": "a@b"})[0] == 200
    status, answer = call(fake, "POST", "calendars/primary/events", {**EVENT, "iCalUID": "a@b"})
    assert (status, reason(answer)) == (409, "duplicate")


def test_discovery_validation_rejects_a_misspelt_property(fake: FakeGoogle) -> None:
    status, answer = call(fake, "POST", "calendars/primary/events", {**EVENT, "sumary": "x"})
    assert status == 400 and "sumary" in answer["error"]["message"]
    nested = {**EVENT, "start": {"datetime": "2030-01-02T10:00:00Z"}}
    assert call(fake, "POST", "calendars/primary/events", nested)[0] == 400
    assert call(fake, "GET", "calendars/primary/events?sendUpdate=none")[0] == 400


def test_freebusy_reports_unknown_calendars_inside_the_answer(fake: FakeGoogle) -> None:
    body = {
        "timeMin": "2030-01-01T00:00:00Z",
        "timeMax": "2030-01-02T00:00:00Z",
        "items": [{"id": "primary"}, {"id": "nobody"}],
    }
    status, answer = call(fake, "POST", "freeBusy", body)
    assert status == 200
    assert answer["calendars"]["nobody"]["errors"][0]["reason"] == "notFound"
    assert "errors" not in answer["calendars"]["primary"]


def test_injected_faults_and_revoked_tokens(fake: FakeGoogle) -> None:
    fake.inject(429, "rateLimitExceeded")
    assert call(fake, "GET", "calendars/primary/events")[0] == 429
    assert call(fake, "GET", "calendars/primary/events")[0] == 200
    fake.revoked.add("t")
    assert call(fake, "GET", "calendars/primary/events")[0] == 401
