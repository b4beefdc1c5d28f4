"""The customer's manage page over HTTP: reschedule and cancel through its forms, on both
databases, with the events on a real Radicale server.

Each flow goes the way a browser without JavaScript goes: GET the tab, GET the free times,
GET the confirm step, POST its form, follow the 303 to the outcome page. What must not change
anything (GET, HEAD, replays, tampered or foreign forms, forbidden actions) is checked against
the database and the calendar server.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from sqlalchemy import update

from calsync.bookings import changes
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings
from calsync.notify.when import clock_words, format_span, zone_label
from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
)
from calsync.store.db import Database
from calsync.store.models import Actor, Booking, Change, utcnow
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from tests.conftest import make_settings
from tests.support.manage_shop import ALWAYS, NEW_YORK, Booked, Form, Shop, get_form, post_form
from tests.support.servers import ServerProcess, put_event
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SAME_SITE = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
HOUR = timedelta(hours=1)


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    return Shop(db, settings, radicale_calendar)


def browser(shop: Shop, limits: RateLimits | None = None) -> TestClient:
    app = create_app(shop.settings, db=shop.db, manage_limits=limits or RateLimits.off())
    # One request id for all: the tests compare whole answers, which then carry the same one.
    return TestClient(app, follow_redirects=False, headers={"X-Request-ID": "manage-page-tests"})


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with browser(shop) as test_client:
        yield test_client


def send(
    client: TestClient, form: Form, *, headers: dict[str, str] | None = None, **changed: str
) -> httpx.Response:
    """POST ``form`` as a browser on our own site would, with ``changed`` fields replaced."""
    values = [(k, v) for k, v in form.values() if k not in changed]
    values += [(k, v) for k, v in changed.items() if v is not None]
    return client.post(
        form.action,
        content=urlencode(values),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **SAME_SITE,
            **(headers or {}),
        },
    )


def times_page(
    client: TestClient, booked: Booked, session_ids: list[int], day: datetime
) -> httpx.Response:
    params = [("session", str(sid)) for sid in session_ids] + [
        ("from", day.astimezone(NEW_YORK).date().isoformat())
    ]
    return client.get(f"{booked.path}/times", params=params)


def confirm_reschedule(
    client: TestClient, booked: Booked, moves: dict[int, datetime]
) -> httpx.Response:
    """The confirm step for ``moves``, reached through the times page's own form."""
    page = times_page(client, booked, list(moves), min(moves.values()))
    assert page.status_code == 200, page.text
    form = get_form(page.text, "/reschedule/review")
    for session_id, start in moves.items():
        offered = {datetime.fromisoformat(o.value): o for o in form.options(f"start-{session_id}")}
        assert start in offered, (start, sorted(offered))
        for option in form.options(f"start-{session_id}"):
            option.checked = option is offered[start]
    confirm = client.get(form.action, params=form.values())
    assert confirm.status_code == 200, confirm.text
    return confirm


def change_id(response: httpx.Response, booked: Booked) -> int:
    assert response.status_code == 303, response.text
    match = re.fullmatch(
        re.escape(booked.path) + r"/changes/(\d+)(\?tz=[^&]*)?", response.headers["location"]
    )
    assert match, response.headers["location"]
    return int(match.group(1))


# -- the flows ------------------------------------------------------------------------------------


def test_one_of_two_sessions_is_moved_through_the_forms(shop: Shop, client: TestClient) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday + timedelta(days=2), 14))
    first, second = booked.session_ids
    before = shop.event_times()

    tab = client.get(booked.path, params={"tab": "reschedule"})
    assert tab.status_code == 200
    picker = get_form(tab.text, "/times")
    assert [o.value for o in picker.options("session") if not o.disabled] == [
        str(first),
        str(second),
    ]
    assert "See available times" in tab.text

    target = at(monday + timedelta(days=1), 11)
    times = times_page(client, booked, [second], target)
    # Day by day in New York time: 11:00 in Berlin is 5:00 AM there (4:00 AM in the weeks
    # when only one of the two is on summer time), and the session's own time is not offered.
    assert f">{clock_words(target.astimezone(NEW_YORK))}<" in times.text
    assert zone_label(NEW_YORK, target) in times.text
    own = get_form(times.text, "/reschedule/review").options(f"start-{second}")
    assert at(monday + timedelta(days=2), 14) not in {datetime.fromisoformat(o.value) for o in own}

    confirm = confirm_reschedule(client, booked, {second: target})
    assert format_span(target, target + HOUR, NEW_YORK) in confirm.text
    assert (
        format_span(
            at(monday + timedelta(days=2), 14), at(monday + timedelta(days=2), 15), NEW_YORK
        )
        in confirm.text
    )
    assert "reason" not in confirm.text.lower()  # the policy does not ask for one

    done = send(client, post_form(confirm.text))
    number = change_id(done, booked)
    result = client.get(done.headers["location"])
    assert result.status_code == 200
    assert "Rescheduled" in result.text and "has been updated" in result.text
    assert format_span(target, target + HOUR, NEW_YORK) in result.text

    after = shop.event_times()
    assert set(after) == set(before)  # same UIDs, nothing added
    assert after[booked.uids[0]] == before[booked.uids[0]]
    start, sequence, _ = after[booked.uids[1]]
    assert start == target and sequence == before[booked.uids[1]][1] + 1
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.id == number and change.actor is Actor.CUSTOMER


def test_one_session_is_cancelled_with_its_refund(shop: Shop, client: TestClient) -> None:
    refund = Fee(FeeKind.PERCENT, Decimal("50"))
    shop.event_type(policy=ChangePolicy(cancel_refund=refund), price=Decimal("120"))
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11), at(monday, 13))
    before = shop.event_times()

    tab = client.get(booked.path, params={"tab": "cancel"})
    form = get_form(tab.text, "/cancel/review")
    for option in form.options("session"):
        option.checked = option.value == str(booked.session_ids[1])
    confirm = client.get(form.action, params=form.values())
    assert confirm.status_code == 200, confirm.text
    assert format_span(at(monday, 11), at(monday, 12), NEW_YORK) in confirm.text
    assert "Refund: <strong>20.00 EUR</strong>" in confirm.text  # 120 / 3 sessions × 50 %
    assert "Cancel this session" in confirm.text

    done = send(client, post_form(confirm.text))
    change_id(done, booked)
    result = client.get(done.headers["location"]).text
    assert "Cancelled" in result and "20.00 EUR" in result

    after = shop.event_times()
    assert after[booked.uids[1]][2] == "CANCELLED"
    assert after[booked.uids[1]][1] == before[booked.uids[1]][1] + 1
    assert {uid: after[uid] for uid in (booked.uids[0], booked.uids[2])} == {
        uid: before[uid] for uid in (booked.uids[0], booked.uids[2])
    }
    keep = client.get(booked.path).text
    assert keep.count(">Cancelled<") == 1 and keep.count(">Booked<") == 2


def test_the_same_post_sent_again_or_twice_at_once_changes_the_calendar_once(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    before = shop.event_times()
    form = post_form(
        confirm_reschedule(client, booked, {booked.session_ids[0]: at(monday, 15)}).text
    )

    first = send(client, form)
    again = send(client, form)  # reload after the POST, or the back button and send again
    assert change_id(again, booked) == change_id(first, booked)

    # A double click: the same form twice at the same moment, through two connections.
    form = post_form(
        confirm_reschedule(client, booked, {booked.session_ids[1]: at(monday, 16)}).text
    )
    answers: list[httpx.Response] = []
    with browser(shop) as other:
        threads = [
            threading.Thread(target=lambda c=c: answers.append(send(c, form)))
            for c in (client, other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len({change_id(answer, booked) for answer in answers}) == 1

    after = shop.event_times()
    for uid, start in zip(booked.uids, (at(monday, 15), at(monday, 16)), strict=True):
        assert after[uid][0] == start
        assert after[uid][1] == before[uid][1] + 1
    assert len(changes.changes_of(shop.db, booked.id)) == 2


def test_tampered_and_foreign_forms_are_refused_with_a_message_and_change_nothing(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    other = shop.book(at(monday, 13), email="sam@example.org")
    first = booked.session_ids[0]
    form = post_form(confirm_reschedule(client, booked, {first: at(monday, 15)}).text)
    field = f"start-{first}"
    yesterday = at(monday, 10) - timedelta(days=8)

    def refused(status: int, text: str, form: Form = form, **changed: str) -> None:
        state, events = shop.state(booked.id), shop.event_times()
        headers = {k: changed.pop(k) for k in list(changed) if k[0].isupper()}
        answer = send(client, form, headers=headers, **changed)
        assert answer.status_code == status, (changed, answer.text)
        assert text in answer.text, (changed, answer.text)
        assert "Traceback" not in answer.text
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert shop.state(booked.id) == state and shop.event_times() == events, changed

    # another booking's session, with a time that would be free for it
    refused(422, "not part of this booking", session=str(other.session_ids[0]))
    # times that were never offered, have passed, or are no times at all
    refused(422, "that time is not available", **{field: at(monday, 3).isoformat()})
    refused(422, "that time is not available", **{field: at(monday, 15, 30).isoformat()})
    refused(422, "that time has already passed", **{field: yesterday.isoformat()})
    refused(422, "that is not a time", **{field: "next tuesday"})
    refused(422, "Choose a new time", **{field: ""})
    refused(422, "Choose at least one session", session="")
    # where the form comes from
    refused(403, "did not come from your booking page", **{"Sec-Fetch-Site": "cross-site"})
    refused(403, "did not come from your booking page", **{"Origin": "https://evil.example"})
    refused(403, "could not be checked", csrf="x" * 43)
    refused(403, "could not be checked", csrf="")
    cancel_form = post_form(
        client.get(f"{booked.path}/cancel/review", params={"session": first}).text
    )
    # the cancel form's token is good for cancelling only
    refused(403, "could not be checked", csrf=dict(cancel_form.values())["csrf"])
    # what the change engine needs
    refused(400, "incomplete", key="")
    refused(400, "incomplete", version="one")

    # The form as it was works; its key used again with other choices does not.
    assert send(client, form).status_code == 303
    refused(409, "already sent with other choices", **{field: at(monday, 16).isoformat()})
    # A form from before that change (an older version of the booking) changes nothing.
    stale = post_form(confirm_reschedule(client, booked, {first: at(monday, 14)}).text)
    with shop.db.writing() as session:
        stored = session.get(Booking, booked.id)
        assert stored is not None
        stored.version += 1
    refused(409, "changed while you were choosing", form=stale)


def test_a_required_reason_is_asked_for_on_the_page_then_recorded(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type(policy=ChangePolicy(cancel=ActionRule(reason=ReasonRule.REQUIRED)))
    booked = shop.book(at(next_monday(), 9))
    confirm = client.get(f"{booked.path}/cancel/review", params={"session": booked.session_ids[0]})
    assert "Reason (required)" in confirm.text
    form = post_form(confirm.text)
    state = shop.state(booked.id)

    missing = send(client, form, reason="   ")
    assert missing.status_code == 422
    assert "a reason is required" in missing.text and 'aria-invalid="true"' in missing.text
    assert shop.state(booked.id) == state
    retry = post_form(missing.text)
    assert dict(retry.values())["key"] == dict(form.values())["key"]  # the same attempt

    done = send(client, retry, reason="Sick, sorry.")
    change_id(done, booked)
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.reason == "Sick, sorry."
    assert "Your reason: Sick, sorry." in client.get(done.headers["location"]).text


def test_a_time_taken_meanwhile_sends_the_customer_back_with_the_other_choices_kept(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    first, second = booked.session_ids
    moves = {first: at(monday, 14), second: at(monday, 16)}
    form = post_form(confirm_reschedule(client, booked, moves).text)
    # The owner books 16:00 in their own calendar app; calsync has not polled it yet.
    put_event(
        shop.calendar_url,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        "UID:dentist@example.org\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{at(monday, 16).astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{at(monday, 17).astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    state = shop.state(booked.id)

    taken = send(client, form)
    assert taken.status_code == 409, taken.text
    assert shop.state(booked.id) == state
    page = get_form(taken.text, "/reschedule/review")
    kept = [o for o in page.options(f"start-{first}") if o.checked]
    assert [datetime.fromisoformat(o.value) for o in kept] == [at(monday, 14)]
    assert not [o for o in page.options(f"start-{second}") if o.checked]
    offered = {datetime.fromisoformat(o.value) for o in page.options(f"start-{second}")}
    assert at(monday, 16) not in offered and at(monday, 15) in offered
    note = re.search(rf'<p class="problem" id="problem-{second}"[^>]*>(.*?)</p>', taken.text)
    assert note and "was just taken" in note.group(1)


def test_get_and_head_change_nothing_on_any_page(shop: Shop, client: TestClient) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    first = booked.session_ids[0]
    done = send(client, post_form(confirm_reschedule(client, booked, {first: at(monday, 15)}).text))
    result = done.headers["location"]
    other = shop.book(at(monday, 13), email="sam@example.org")
    send(
        client,
        post_form(confirm_reschedule(client, other, {other.session_ids[0]: at(monday, 14)}).text),
    )
    (foreign,) = changes.changes_of(shop.db, other.id)
    state, events = shop.state(booked.id), shop.event_times()
    recorded = len(changes.changes_of(shop.db, booked.id))

    pages = {
        booked.path: 200,
        f"{booked.path}?tab=reschedule": 200,
        f"{booked.path}?tab=cancel": 200,
        f"{booked.path}/times?session={first}&tz=Asia/Tokyo": 200,
        f"{booked.path}/reschedule/review?session={first}&start-{first}="
        + at(monday, 16).isoformat().replace("+", "%2B"): 200,
        f"{booked.path}/cancel/review?session={first}": 200,
        result: 200,
        f"{booked.path}/changes/{foreign.id}": 404,  # another booking's change
        f"{booked.path}/reschedule": 404,
        f"{booked.path}/cancel": 404,
    }
    for path, status in pages.items():
        got = client.get(path)
        head = client.head(path)
        assert got.status_code == status, (path, got.text)
        assert head.status_code == status and head.content == b"", path
        assert head.headers == got.headers, path
    assert (
        "Japan Standard Time"
        in client.get(f"{booked.path}/times?session={first}&tz=Asia/Tokyo").text
    )
    assert shop.state(booked.id) == state and shop.event_times() == events
    assert len(changes.changes_of(shop.db, booked.id)) == recorded


def test_what_the_policy_forbids_is_shown_disabled_with_its_reason(
    shop: Shop, client: TestClient
) -> None:
    policy = ChangePolicy(
        cancel=ActionRule(Permission.UNTIL, timedelta(hours=24)),
        reschedule=ActionRule(Permission.NEVER),
    )
    shop.event_type(policy=policy, hours=ALWAYS)
    soon = (utcnow() + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    booked = shop.book(soon, soon + timedelta(days=3))
    soon_id, later_id = booked.session_ids

    tab = client.get(booked.path, params={"tab": "reschedule"})
    assert tab.status_code == 200
    picker = get_form(tab.text, "/times")
    assert all(o.disabled for o in picker.options("session"))
    assert tab.text.count("Sessions cannot be rescheduled online; please contact us.") == 2
    assert re.search(r"<button[^>]*disabled[^>]*>See available times</button>", tab.text)

    tab = client.get(booked.path, params={"tab": "cancel"})
    options = {o.value: o for o in get_form(tab.text, "/cancel/review").options("session")}
    assert options[str(soon_id)].disabled and not options[str(later_id)].disabled
    why = re.search(rf'id="cancel-{soon_id}-why">([^<]*)<', tab.text)
    assert why and why.group(1) == "Sessions can be cancelled up to 1 day before they start."

    # Asking anyway (a tampered form) gets the booking page with the reason, not an error.
    state = shop.state(booked.id)
    asked = client.get(f"{booked.path}/cancel/review", params={"session": soon_id})
    assert asked.status_code == 422 and "up to 1 day before" in asked.text
    times = client.get(f"{booked.path}/times", params={"session": later_id})
    assert times.status_code == 422 and "cannot be rescheduled online" in times.text
    form = post_form(client.get(f"{booked.path}/cancel/review", params={"session": later_id}).text)
    answer = send(client, form, session=str(soon_id))
    assert answer.status_code == 422 and "up to 1 day before" in answer.text
    assert shop.state(booked.id) == state

    # Once cancelled, a session says so; a session moved as often as allowed says that.
    assert send(client, form).status_code == 303
    tab = client.get(booked.path, params={"tab": "cancel"}).text
    assert re.search(rf'id="cancel-{later_id}-why">This session is cancelled\.<', tab)
    assert "None of your sessions can be cancelled online now." in tab

    shop.event_type("limited", ChangePolicy(max_reschedules=1), hours=ALWAYS)
    limited = shop.book(soon + timedelta(days=1), slug="limited", email="kim@example.org")
    changes.reschedule(
        shop.db,
        shop.settings,
        limited.id,
        {limited.session_ids[0]: soon + timedelta(days=2)},
        actor=Actor.CUSTOMER,
    )
    tab = client.get(limited.path, params={"tab": "reschedule"}).text
    assert "This session has been rescheduled 1 time, the most allowed." in tab
    assert re.search(r'<button[^>]*disabled aria-describedby="reschedule-why"', tab)


def test_too_many_requests_get_a_friendly_429(shop: Shop) -> None:
    shop.event_type()
    booked = shop.book(at(next_monday(), 9))
    with browser(shop, RateLimits(reads_per_minute=3, changes_per_minute=1)) as client:
        assert [client.get(booked.path).status_code for _ in range(3)] == [200] * 3
        limited = client.get(booked.path)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "Too many requests" in limited.text and "wait a minute" in limited.text
        assert limited.headers["referrer-policy"] == "no-referrer"
        assert limited.headers["content-type"] == "text/html; charset=utf-8"
        # The address is over its budget whatever token it tries next.
        assert client.get("/m/" + "A" * 32).status_code == 429
        assert client.head(booked.path).status_code == 429

        form = Form("post", f"{booked.path}/cancel")
        assert send(client, form).status_code == 403  # counted, then refused (no token)
        state = shop.state(booked.id)
        assert send(client, form).status_code == 429
        assert shop.state(booked.id) == state


def test_the_outcome_page_says_while_a_change_is_pending_and_a_cancel_stands_an_owner_move(
    shop: Shop, client: TestClient, radicale_server: ServerProcess
) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    first, second = booked.session_ids

    # The calendar server is down: the cancel is recorded and applied later, exactly once.
    form = post_form(client.get(f"{booked.path}/cancel/review", params={"session": first}).text)
    before = shop.event_times()
    radicale_server.stop()
    try:
        done = send(client, form)
    finally:
        radicale_server.start()
    change_id(done, booked)
    pending = client.get(done.headers["location"]).text
    assert "being applied to the calendar of Coach Carter" in pending
    assert shop.event_times() == before
    with shop.db.writing() as session:
        session.execute(update(Change).values(next_attempt_at=utcnow()))
    assert changes.apply_pending(shop.db, shop.settings) == 1
    assert (
        "Done: the calendar of Coach Carter has been updated."
        in client.get(done.headers["location"]).text
    )
    assert shop.event_times()[booked.uids[0]][1:] == (before[booked.uids[0]][1] + 1, "CANCELLED")

    # The owner moves session 2 in their own calendar app while the customer cancels it: a
    # cancel stands whatever the time, so the event is marked cancelled where the owner put it.
    form = post_form(client.get(f"{booked.path}/cancel/review", params={"session": second}).text)
    owner_moves(shop, booked.uids[1], at(monday, 12))
    done = send(client, form)
    change_id(done, booked)
    assert (
        "Done: the calendar of Coach Carter has been updated."
        in client.get(done.headers["location"]).text
    )
    assert shop.event_times()[booked.uids[1]][::2] == (at(monday, 12), "CANCELLED")


def owner_moves(shop: Shop, uid: str, start: datetime) -> None:
    """Move an event on the server the way the owner's calendar app would."""
    provider = CalDAVProvider(shop.calendar_url)
    try:
        (item,) = [i for i in provider.changes(None, {}).upserted if uid in i.data]
    finally:
        provider.close()
    calendar = icalendar.Calendar.from_ical(item.data)
    (event,) = calendar.walk("VEVENT")
    for name, value in (("DTSTART", start), ("DTEND", start + HOUR)):
        del event[name]
        event.add(name, value)
    base = shop.calendar_url.split("/", 3)
    put_event(f"{base[0]}//{base[2]}{item.href}", calendar.to_ical().decode())


def test_a_database_that_cannot_be_used_gets_a_page_not_json(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/never-migrated.db")
    db = Database(settings.database_url)  # no tables: every query fails
    try:
        with TestClient(create_app(settings, db=db), raise_server_exceptions=False) as client:
            answer = client.get("/m/" + "A" * 32)
    finally:
        db.dispose()
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "Temporarily unavailable" in answer.text and "Nothing was changed" in answer.text
    assert "sqlite" not in answer.text.lower()


def test_odd_numbers_in_the_address_get_the_page_not_a_crash(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))
    for path, params in (
        (booked.path, {"session": "²"}),
        (f"{booked.path}/times", {"session": "²"}),
        (f"{booked.path}/times", {"session": "99999999999999999999"}),
        (f"{booked.path}/changes/²", {}),
        (f"{booked.path}/changes/99999999999999999999", {}),
    ):
        response = client.get(path, params=params)
        assert response.status_code < 500, (path, params, response.status_code)
