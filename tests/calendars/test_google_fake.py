"""The fake Google server's own semantics, checked with plain HTTP (no client in between)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.parse
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


def busy(fake: FakeGoogle, calendar_id: str, low: str, high: str) -> list[tuple[str, str]]:
    body = {"timeMin": low, "timeMax": high, "items": [{"id": calendar_id}]}
    status, answer = call(fake, "POST", "freeBusy", body)
    assert status == 200, answer
    entry = answer["calendars"][calendar_id]
    assert "errors" not in entry, entry
    return [(b["start"], b["end"]) for b in entry["busy"]]


def berlin(wall: str) -> dict[str, str]:
    return {"dateTime": wall, "timeZone": "Europe/Berlin"}


def test_freebusy_expands_a_series_across_dst_with_its_exceptions(fake: FakeGoogle) -> None:
    # Mondays 09:00-10:00 Berlin; summer time ends on Sunday 2030-10-27.
    master = fake.owner_insert(
        {
            "summary": "Weekly",
            "start": berlin("2030-10-07T09:00:00+02:00"),
            "end": berlin("2030-10-07T10:00:00+02:00"),
            "recurrence": [
                "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20301111T235959Z",
                "EXDATE;TZID=Europe/Berlin:20301014T090000",
            ],
        }
    )
    instance = {"recurringEventId": master["id"], "summary": "Weekly"}
    fake.owner_insert(  # 21 October cancelled
        {
            **instance,
            "id": master["id"] + "_20301021T070000Z",
            "status": "cancelled",
            "originalStartTime": berlin("2030-10-21T09:00:00+02:00"),
        }
    )
    fake.owner_insert(  # 4 November moved to Tuesday afternoon
        {
            **instance,
            "id": master["id"] + "_20301104T080000Z",
            "originalStartTime": berlin("2030-11-04T09:00:00+01:00"),
            "start": berlin("2030-11-05T14:00:00+01:00"),
            "end": berlin("2030-11-05T15:00:00+01:00"),
        }
    )
    assert busy(fake, "primary", "2030-10-01T00:00:00Z", "2030-12-01T00:00:00Z") == [
        ("2030-10-07T07:00:00Z", "2030-10-07T08:00:00Z"),  # CEST
        ("2030-10-28T08:00:00Z", "2030-10-28T09:00:00Z"),  # CET: still 09:00 in Berlin
        ("2030-11-05T13:00:00Z", "2030-11-05T14:00:00Z"),  # the moved one
        ("2030-11-11T08:00:00Z", "2030-11-11T09:00:00Z"),
    ]
    # An occurrence that began before the window is clipped to it.
    assert busy(fake, "primary", "2030-10-28T08:30:00Z", "2030-10-29T00:00:00Z") == [
        ("2030-10-28T08:30:00Z", "2030-10-28T09:00:00Z")
    ]
    fake.owner_delete(master["id"])  # the series and its exceptions go
    assert busy(fake, "primary", "2030-10-01T00:00:00Z", "2030-12-01T00:00:00Z") == []


def test_freebusy_all_day_events_are_midnight_to_midnight_in_the_calendar_zone(
    fake: FakeGoogle,
) -> None:
    cid = "berlin@group.calendar.google.com"
    fake.add_calendar(cid, time_zone="Europe/Berlin")
    # The day summer time ends has 25 hours in Berlin.
    fake.owner_insert({"start": {"date": "2030-10-27"}, "end": {"date": "2030-10-28"}}, cid)
    fake.owner_insert(  # a holiday shown as free
        {
            "start": {"date": "2030-10-28"},
            "end": {"date": "2030-10-29"},
            "transparency": "transparent",
        },
        cid,
    )
    fake.owner_insert(  # an all-day series: three Tuesdays but the second
        {
            "start": {"date": "2030-10-29"},
            "end": {"date": "2030-10-30"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;VALUE=DATE:20301105"],
        },
        cid,
    )
    assert busy(fake, cid, "2030-10-20T00:00:00Z", "2030-11-30T00:00:00Z") == [
        ("2030-10-26T22:00:00Z", "2030-10-27T23:00:00Z"),
        ("2030-10-28T23:00:00Z", "2030-10-29T23:00:00Z"),
        ("2030-11-11T23:00:00Z", "2030-11-12T23:00:00Z"),
    ]


def test_freebusy_knows_the_primary_calendar_by_the_account_address(fake: FakeGoogle) -> None:
    fake.owner_insert(EVENT)
    assert busy(fake, fake.account, "2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z") == [
        ("2030-01-02T10:00:00Z", "2030-01-02T11:00:00Z")
    ]


def test_freebusy_merges_overlapping_and_touching_periods(fake: FakeGoogle) -> None:
    def at(start: str, end: str, **extra: Any) -> None:
        fake.owner_insert(
            {
                "start": {"dateTime": f"2030-01-02T{start}:00Z"},
                "end": {"dateTime": f"2030-01-02T{end}:00Z"},
                **extra,
            }
        )

    at("10:00", "11:00")
    at("10:30", "11:30")
    at("11:30", "12:00")  # touches the one before
    at("12:00", "13:00", transparency="transparent")  # free: does not bridge the gap
    at("13:00", "14:00")
    at(  # declined by the owner: free
        "14:00",
        "15:00",
        attendees=[{"email": fake.account, "self": True, "responseStatus": "declined"}],
    )
    at("16:00", "17:00", status="cancelled")
    assert busy(fake, "primary", "2030-01-02T10:15:00Z", "2030-01-03T00:00:00Z") == [
        ("2030-01-02T10:15:00Z", "2030-01-02T12:00:00Z"),
        ("2030-01-02T13:00:00Z", "2030-01-02T14:00:00Z"),
    ]


def test_injected_faults_and_revoked_tokens(fake: FakeGoogle) -> None:
    fake.inject(429, "rateLimitExceeded")
    assert call(fake, "GET", "calendars/primary/events")[0] == 429
    assert call(fake, "GET", "calendars/primary/events")[0] == 200
    fake.revoked.add("t")
    assert call(fake, "GET", "calendars/primary/events")[0] == 401


def test_the_calendar_list_names_the_account_and_filters_by_access_role(fake: FakeGoogle) -> None:
    fake.add_calendar("team@group.calendar.google.com", summary="Team", access_role="reader")
    status, page = call(fake, "GET", "users/me/calendarList")
    assert status == 200
    entries = {e["id"]: e for e in page["items"]}
    assert entries[fake.account]["primary"] is True
    assert entries["team@group.calendar.google.com"]["accessRole"] == "reader"
    status, page = call(fake, "GET", "users/me/calendarList?minAccessRole=writer")
    assert [e["id"] for e in page["items"]] == [fake.account]
    # The account's address reaches the primary calendar, as at Google.
    assert call(fake, "GET", f"calendars/{fake.account}/events")[0] == 200
    assert call(fake, "GET", "users/me/calendarList?bogus=1")[0] == 400


def consent(fake: FakeGoogle, **params: str) -> dict[str, str]:
    """Follow the consent screen as a browser would, and return the redirect's query."""
    query = urllib.parse.urlencode(
        {"response_type": "code", "client_id": "cid", "redirect_uri": "http://x/cb", **params}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(f"{fake.auth_uri}?{query}")
    assert answer.value.code == 302
    location = answer.value.headers["Location"]
    assert location.startswith("http://x/cb?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def exchange(fake: FakeGoogle, **form: str) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode({"grant_type": "authorization_code", **form}).encode()
    try:
        with urllib.request.urlopen(fake.token_uri, data=data) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_consent_code_is_good_once_for_its_client_redirect_and_verifier(
    fake: FakeGoogle,
) -> None:
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    answer = consent(fake, state="s1", code_challenge=challenge, code_challenge_method="S256")
    assert answer["state"] == "s1"
    good = {"code": answer["code"], "client_id": "cid", "redirect_uri": "http://x/cb"}
    assert exchange(fake, **good, code_verifier="wrong")[0] == 400  # and the code is spent
    answer = consent(fake, state="s2", code_challenge=challenge, code_challenge_method="S256")
    good["code"] = answer["code"]
    status, tokens = exchange(fake, **good, code_verifier=verifier)
    assert status == 200 and tokens["refresh_token"]
    assert exchange(fake, **good, code_verifier=verifier)[0] == 400


def test_a_refused_consent_comes_back_as_access_denied(fake: FakeGoogle) -> None:
    fake.consent = False
    answer = consent(fake, state="s")
    assert answer == {"state": "s", "error": "access_denied"}


def test_a_token_only_reaches_the_methods_its_scopes_cover(fake: FakeGoogle) -> None:
    events_only = "https://www.googleapis.com/auth/calendar.events"
    form = {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c"}
    data = urllib.parse.urlencode({**form, "scope": events_only}).encode()
    with urllib.request.urlopen(fake.token_uri, data=data) as answer:
        token = json.loads(answer.read())["access_token"]
    assert call(fake, "GET", "calendars/primary/events", Authorization=f"Bearer {token}")[0] == 200
    status, body = call(
        fake,
        "POST",
        "freeBusy",
        {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": []},
        Authorization=f"Bearer {token}",
    )
    assert (status, body["error"]["errors"][0]["reason"]) == (403, "insufficientPermissions")
