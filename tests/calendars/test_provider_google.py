"""The Google provider keeps the provider contract against the fake, through the real client;
plus what is specific to Google: paging, 410, 412 races, rate limits, auth, freebusy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError

from calsync.calendars.base import Interval
from calsync.calendars.errors import (
    AuthFailed,
    Conflict,
    CursorExpired,
    GrantRevoked,
    ProviderError,
    Unavailable,
)
from calsync.calendars.google.provider import GoogleProvider, _busy_of
from calsync.calendars.ical.busy import BusyRules, busy_intervals
from calsync.testing.google_fake import FakeGoogle
from tests.support.provider_contract import ProviderContract, make_ics


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        yield server


def connect(fake: FakeGoogle, calendar_id: str = "primary", **kwargs: object) -> GoogleProvider:
    kwargs.setdefault("credentials", Credentials(token="test-token"))
    kwargs.setdefault("backoff_base", 0.001)
    return GoogleProvider(calendar_id, api_endpoint=fake.endpoint, **kwargs)  # type: ignore[arg-type]


class TestGoogleProvider(ProviderContract):
    @pytest.fixture
    def provider(self, fake: FakeGoogle) -> Iterator[GoogleProvider]:
        provider = connect(fake)
        provider.expire_cursors = fake.expire_sync_tokens  # type: ignore[attr-defined]
        yield provider
        provider.close()

    @pytest.fixture
    def unreachable(self, fake: FakeGoogle) -> GoogleProvider:
        endpoint = fake.endpoint
        fake.stop()  # nothing listens there any more: connection refused
        return GoogleProvider(
            "primary",
            credentials=Credentials(token="test-token"),
            api_endpoint=endpoint,
            max_tries=2,
            backoff_base=0.001,
        )


def booked(uid: str, start: str = "20300102T100000Z", **extra: str) -> str:
    lines = tuple(f"{k.replace('_', '-').upper()}:{v}" for k, v in extra.items())
    return make_ics(uid, start=start, extra=lines)


def test_paging_across_three_pages_with_a_change_between_pages(fake: FakeGoogle) -> None:
    fake.page_size = 2
    provider = connect(fake)
    items = [provider.create(f"u{i}", booked(f"u{i}")) for i in range(6)]
    changed: dict[str, str] = {}

    def owner_edits() -> None:  # between page 1 and page 2
        changed["etag"] = fake.owner_patch(items[0].href, {"summary": "owner"})["etag"]

    fake.before_page = owner_edits
    known: dict[str, str] = {}
    delta = provider.changes(None, known)
    assert sorted(i.href for i in delta.upserted) == sorted(i.href for i in items)
    pages = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/events")]
    assert len(pages) == 3
    known = {i.href: i.etag for i in delta.upserted}
    # The edit made while paging is not lost: the next poll has it.
    again = provider.changes(delta.cursor, known)
    assert [(i.href, i.etag) for i in again.upserted] == [(items[0].href, changed["etag"])]


def test_incremental_pages_keep_the_sync_token_and_no_filters(fake: FakeGoogle) -> None:
    fake.page_size = 2
    provider = connect(fake)
    cursor = provider.changes(None, {}).cursor
    for i in range(5):
        provider.create(f"u{i}", booked(f"u{i}"))
    delta = provider.changes(cursor, {})
    assert len(delta.upserted) == 5
    incremental = [r for r in fake.requests if "syncToken" in r.query]
    assert len(incremental) == 3
    assert {r.query["syncToken"] for r in incremental} == {cursor}
    for r in incremental:
        assert not set(r.query) & {"timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID"}


def test_410_midway_then_full_resync_loses_and_duplicates_nothing(fake: FakeGoogle) -> None:
    fake.page_size = 2
    provider = connect(fake)
    items = [provider.create(f"u{i}", booked(f"u{i}")) for i in range(5)]
    known: dict[str, str] = {}
    delta = provider.changes(None, known)
    known.update({i.href: i.etag for i in delta.upserted})
    for i in range(5, 9):
        provider.create(f"u{i}", booked(f"u{i}"))
    fake.owner_delete(items[1].href)
    fake.before_page = fake.expire_sync_tokens  # expires after the first incremental page
    with pytest.raises(CursorExpired):
        provider.changes(delta.cursor, known)
    full = provider.changes(None, known)
    assert full.full and full.removed == [items[1].href]
    hrefs_upserted = [i.href for i in full.upserted]
    assert len(hrefs_upserted) == len(set(hrefs_upserted)) == 4
    for href in full.removed:
        del known[href]
    known.update({i.href: i.etag for i in full.upserted})
    assert len(known) == 8
    assert provider.changes(full.cursor, known).upserted == []


def test_412_race_with_an_owner_edit(fake: FakeGoogle) -> None:
    provider = connect(fake)
    item = provider.create("race", booked("race"))
    fake.owner_patch(item.href, {"location": "Room 4"})
    with pytest.raises(Conflict):
        provider.update(item.href, booked("race", "20300102T120000Z"), item.etag)
    current = provider.get(item.href)  # re-read, re-apply: the owner's edit is kept
    etag = provider.update(item.href, booked("race", "20300102T120000Z"), current.etag)
    event = fake.event(item.href)
    assert event["location"] == "Room 4" and event["etag"] == etag
    assert event["start"]["dateTime"].startswith("2030-01-02T12:00")
    patch = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.headers["if-match"] for r in patch] == [item.etag, current.etag]


def test_a_burst_of_rate_limits_then_success(fake: FakeGoogle) -> None:
    provider = connect(fake, quota_user="owner-7")
    fake.inject(429, "rateLimitExceeded", 2)
    fake.inject(403, "userRateLimitExceeded", 1)
    fake.inject(403, "rateLimitExceeded", 1)
    provider.create("u", booked("u"))
    assert len(fake.requests) == 5
    assert all(r.query.get("quotaUser") == "owner-7" for r in fake.requests)
    assert len(provider.changes(None, {}).upserted) == 1


def test_waits_grow_exponentially_with_jitter_up_to_the_cap(fake: FakeGoogle) -> None:
    provider = connect(fake, max_tries=6, backoff_base=1.0)
    provider.call.backoff_max = 6.0
    naps: list[float] = []
    provider.call.sleep = naps.append  # recorded, not slept
    fake.inject(429, "rateLimitExceeded", 5)
    provider.create("u", booked("u"))
    assert len(naps) == 5
    planned = [min(6.0, 2.0**i) for i in range(5)]  # 1, 2, 4, 6, 6 seconds
    assert all(0.5 * p <= nap <= 1.5 * p for nap, p in zip(naps, planned, strict=True))
    assert len({round(nap / p, 9) for nap, p in zip(naps, planned, strict=True)}) > 1  # jitter


def test_rate_limit_that_never_ends_is_unavailable(fake: FakeGoogle) -> None:
    provider = connect(fake, max_tries=3)
    fake.inject(429, "rateLimitExceeded", 5)
    with pytest.raises(Unavailable):
        provider.changes(None, {})
    assert len(fake.requests) == 3


def test_server_errors_are_retried_then_unavailable(fake: FakeGoogle) -> None:
    provider = connect(fake, max_tries=2)
    fake.inject(500, "backendError", 1)
    assert provider.changes(None, {}).full
    fake.inject(503, "backendError", 2)
    with pytest.raises(Unavailable) as info:
        provider.changes(None, {})
    assert isinstance(info.value.__cause__, HttpError)


def test_quota_exceeded_is_not_retried(fake: FakeGoogle) -> None:
    provider = connect(fake)
    fake.inject(403, "quotaExceeded", 3)
    with pytest.raises(ProviderError, match="quota") as info:
        provider.changes(None, {})
    assert type(info.value) is ProviderError
    assert len(fake.requests) == 1


def test_other_4xx_is_not_retried(fake: FakeGoogle) -> None:
    provider = connect(fake)
    fake.inject(400, "badRequest", 3)
    with pytest.raises(ProviderError):
        provider.changes(None, {})
    assert len(fake.requests) == 1


def test_revoked_access_token_is_auth_failed(fake: FakeGoogle) -> None:
    fake.revoked.add("test-token")
    with pytest.raises(AuthFailed, match="reconnect"):
        connect(fake).changes(None, {})


def test_revoked_refresh_token_is_a_revoked_grant(fake: FakeGoogle) -> None:
    def credentials(refresh: str) -> Credentials:
        return Credentials(
            token=None,
            refresh_token=refresh,
            token_uri=fake.token_uri,
            client_id="id",
            client_secret="secret",
        )

    assert connect(fake, credentials=credentials("good")).changes(None, {}).full
    fake.revoked.add("bad")
    with pytest.raises(GrantRevoked, match="reconnect") as info:
        connect(fake, credentials=credentials("bad")).changes(None, {})
    assert "invalid_grant" in str(info.value)


def refreshing(fake: FakeGoogle, client_id: str = "id") -> Credentials:
    return Credentials(
        token=None,
        refresh_token="good",
        token_uri=fake.token_uri,
        client_id=client_id,
        client_secret="secret",
    )


def test_a_token_endpoint_outage_is_unavailable_not_a_revoked_grant(fake: FakeGoogle) -> None:
    # google-auth tries the token endpoint 3 times itself (waiting about 1 s and 2 s).
    fake.token_outages = 2
    assert connect(fake, credentials=refreshing(fake)).changes(None, {}).full
    fake.token_outages = 3
    with pytest.raises(Unavailable) as info:
        connect(fake, credentials=refreshing(fake)).changes(None, {})
    assert not isinstance(info.value, AuthFailed)  # the grant is fine: no reconnecting
    # Not retried again on top of google-auth's own tries (that would be 15 requests).
    assert fake.token_outages == 0 and fake.token_refreshes == 1


def test_a_refused_client_is_for_the_operator_not_a_revoked_grant(fake: FakeGoogle) -> None:
    fake.refused_clients.add("old-client")
    with pytest.raises(AuthFailed, match=r"google\.client_secret") as info:
        connect(fake, credentials=refreshing(fake, "old-client")).changes(None, {})
    assert not isinstance(info.value, GrantRevoked)  # no owner is asked to reconnect


def test_every_write_says_send_updates_none(fake: FakeGoogle) -> None:
    provider = connect(fake)
    item = provider.create("w", booked("w", x_calsync_booking="bk_1"))
    etag = provider.update(item.href, booked("w", "20300103T100000Z"), item.etag)
    provider.delete(item.href, etag)
    writes = fake.writes()
    assert [r.method for r in writes] == ["POST", "PATCH", "DELETE"]
    assert all(r.query.get("sendUpdates") == "none" for r in writes)
    assert writes[0].body["iCalUID"] == "w"
    assert writes[0].body["extendedProperties"]["private"]["calsyncBooking"] == "bk_1"


def test_an_insert_whose_answer_was_lost_is_taken_not_doubled(fake: FakeGoogle) -> None:
    provider = connect(fake)
    fake.inject(503, "backendError", after=True)  # Google saved it; its answer never came
    item = provider.create("lost", booked("lost", x_calsync_booking="bk_1"))
    live = [s.event for s in fake.calendars["primary"].events.values()]
    assert [(e["id"], e["iCalUID"]) for e in live] == [(item.href, "lost")]
    assert item.etag == live[0]["etag"]
    # Someone else's event with that UID is still a clash (nothing of ours to take).
    fake.owner_insert(
        {
            "iCalUID": "theirs",
            "summary": "Owner's",
            "start": {"dateTime": "2030-01-05T10:00:00Z"},
            "end": {"dateTime": "2030-01-05T11:00:00Z"},
        }
    )
    with pytest.raises(Conflict):
        provider.create("theirs", booked("theirs", x_calsync_booking="bk_2"))


def test_recurring_event_with_moved_and_cancelled_instances(fake: FakeGoogle) -> None:
    master = fake.owner_insert(
        {
            "summary": "Weekly",
            "iCalUID": "weekly@google.com",
            "start": {"dateTime": "2030-01-07T10:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-01-07T11:00:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        }
    )
    original = {"dateTime": "2030-01-14T10:00:00+01:00", "timeZone": "Europe/Berlin"}
    fake.owner_insert(
        {  # the second one moved to the afternoon
            "id": master["id"] + "_20300114T090000Z",
            "recurringEventId": master["id"],
            "iCalUID": "weekly@google.com",
            "originalStartTime": original,
            "start": {"dateTime": "2030-01-14T15:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-01-14T16:00:00+01:00", "timeZone": "Europe/Berlin"},
            "summary": "Weekly (moved)",
        }
    )
    provider = connect(fake)
    known: dict[str, str] = {}
    delta = provider.changes(None, known)
    known.update({i.href: i.etag for i in delta.upserted})
    fake.owner_insert(
        {  # the third one cancelled, after the first sync
            "id": master["id"] + "_20300121T090000Z",
            "recurringEventId": master["id"],
            "iCalUID": "weekly@google.com",
            "status": "cancelled",
            "originalStartTime": {
                "dateTime": "2030-01-21T10:00:00+01:00",
                "timeZone": "Europe/Berlin",
            },
        }
    )
    (item,) = provider.changes(delta.cursor, known).upserted
    assert item.href == master["id"]
    assert provider.get(master["id"]).etag == item.etag
    window = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))
    busy = busy_intervals(item.data, *window, BusyRules(timezone="Europe/Berlin"))
    assert [(b.start.isoformat(), b.end.isoformat()) for b in busy] == [
        ("2030-01-07T09:00:00+00:00", "2030-01-07T10:00:00+00:00"),
        ("2030-01-14T14:00:00+00:00", "2030-01-14T15:00:00+00:00"),
        ("2030-01-28T09:00:00+00:00", "2030-01-28T10:00:00+00:00"),
    ]
    fake.owner_delete(master["id"])
    assert provider.changes(delta.cursor, known).removed == [master["id"]]


def test_transparent_declined_and_all_day_events_in_busy_rules(fake: FakeGoogle) -> None:
    day = {"start": {"date": "2030-01-02"}, "end": {"date": "2030-01-03"}}
    fake.owner_insert({"summary": "free", "transparency": "transparent", **day})
    fake.owner_insert(
        {
            "summary": "declined",
            "attendees": [
                {"email": "owner@example.org", "responseStatus": "declined", "self": True}
            ],
            "start": {"dateTime": "2030-01-02T10:00:00Z"},
            "end": {"dateTime": "2030-01-02T11:00:00Z"},
        }
    )
    fake.owner_insert({"summary": "holiday", **day})
    rules = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({"owner@example.org"}))
    window = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 5, tzinfo=UTC))
    busy = [
        b
        for item in connect(fake).changes(None, {}).upserted
        for b in busy_intervals(item.data, *window, rules)
    ]
    assert [(b.start.isoformat(), b.end.isoformat()) for b in busy] == [
        ("2030-01-01T23:00:00+00:00", "2030-01-02T23:00:00+00:00")
    ]


def test_freebusy_splits_calendars_and_windows(fake: FakeGoogle) -> None:
    ids = [f"cal{i}@example.org" for i in range(120)]
    for cid in ids:
        fake.add_calendar(cid)
    fake.owner_insert(
        {
            "start": {"dateTime": "2030-05-01T10:00:00Z"},
            "end": {"dateTime": "2030-05-01T11:00:00Z"},
        },
        calendar_id="cal77@example.org",
    )
    provider = connect(fake)
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 8, 1, tzinfo=UTC)  # 212 days
    result = provider.busy_by_calendar(start, end, ids)
    queries = [r for r in fake.requests if r.path.endswith("/freeBusy")]
    assert len(queries) == 3 * 3  # 50 + 50 + 20 calendars, 90 + 90 + 32 days
    assert max(len(q.body["items"]) for q in queries) == 50
    assert result["cal77@example.org"] == [
        Interval(datetime(2030, 5, 1, 10, tzinfo=UTC), datetime(2030, 5, 1, 11, tzinfo=UTC))
    ]
    assert sum(len(v) for v in result.values()) == 1


def test_freebusy_error_for_one_calendar_is_not_free(fake: FakeGoogle) -> None:
    provider = connect(fake)
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
    with pytest.raises(Unavailable, match=r"nobody@example\.org.*notFound"):
        provider.busy_by_calendar(start, end, ["primary", "nobody@example.org"])


def test_no_third_party_exception_escapes(fake: FakeGoogle) -> None:
    provider = connect(fake)
    fake.stop()  # connection refused
    with pytest.raises(Unavailable) as info:
        GoogleProvider(
            "primary",
            credentials=Credentials(token="t"),
            api_endpoint=provider.service._baseUrl,
            max_tries=2,
            backoff_base=0.001,
        ).changes(None, {})
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    "answer",
    [
        {"calendars": {"primary": {"busy": [{"start": "2030-01-02T10:00:00Z"}]}}},
        {"calendars": {"primary": {"busy": [{"start": "soon", "end": "later"}]}}},
        {"calendars": {"primary": {"errors": "backendError"}}},
        {"calendars": ["primary"]},
        [],
    ],
)
def test_an_unreadable_free_busy_answer_is_unknown_not_free(answer: Any) -> None:
    # Shapes Google does not send (and the fake cannot be made to): read straight from dicts.
    with pytest.raises(Unavailable, match="calendar primary"):
        _busy_of(answer, "primary")


def test_a_free_busy_answer_without_a_busy_list_is_free() -> None:
    assert _busy_of({"calendars": {"primary": {"busy": None}}}, "primary") == []
    assert _busy_of({"calendars": {"primary": {}}}, "primary") == []
