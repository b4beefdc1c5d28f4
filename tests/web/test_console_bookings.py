"""The console's booking pages over HTTP, on both databases, with the events on a real Radicale
server: the list and search, a booking in the owner's zone with its history, the owner moving
and cancelling sessions (the change engine, not bound by the policy), asking the customer to
reschedule, the link (relink, revoke), resending the confirmation, and another owner's
booking answering 404 to every page and form."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from calsync.bookings import changes, reschedule_requests
from calsync.bookings.packages import get_booking
from calsync.config import Settings
from calsync.policy.change_policy import ActionRule, ChangePolicy, Fee, FeeKind, Permission
from calsync.store.db import Database
from calsync.store.models import Actor, HistoryAction
from calsync.sync import connections as services
from tests.support.console import console_client, csrf_of, emails_to, signed_in
from tests.support.manage_shop import ALWAYS, OWNER, Booked, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

STRICT = ChangePolicy(
    reschedule=ActionRule(Permission.NEVER),
    cancel=ActionRule(Permission.NEVER),
    reschedule_fee=Fee(FeeKind.FIXED, Decimal("30")),
)
SAME_SITE = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}


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


def booking_form(client: TestClient, booked: Booked, action: str, **fields: str | list[str]):
    page = client.get(f"/console/bookings/{booked.id}")
    assert page.status_code == 200, page.text
    data: dict[str, str | list[str]] = {"csrf": csrf_of(page.text), **fields}
    return client.post(f"/console/bookings/{booked.id}/{action}", data=data, headers=SAME_SITE)


def test_the_list_finds_bookings_by_customer_and_shows_them_in_the_owners_zone(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type(hours=ALWAYS)
    monday = next_monday()
    zoe = shop.book(at(monday, 9), at(monday, 11))
    kim = shop.book(at(monday, 14), email="kim@example.org")
    listed = client.get("/console/bookings")
    assert listed.status_code == 200
    assert f"/console/bookings/{zoe.id}" in listed.text
    assert f"/console/bookings/{kim.id}" in listed.text
    found = client.get("/console/bookings", params={"customer": "KIM@"}).text
    assert f"/console/bookings/{kim.id}" in found and zoe.id not in found
    assert zoe.id not in client.get("/console/bookings", params={"when": "past"}).text

    page = client.get(f"/console/bookings/{zoe.id}").text
    # Berlin wall times (the owner's), though the customer lives in New York.
    assert f"{at(monday, 9):%a} {monday.day} {monday:%b %Y}, 09:00 – 10:00" in page
    assert "Times are in your zone, Europe/Berlin." in page
    booking = get_booking(shop.db, zoe.id)
    assert f'value="{shop.settings.base_url}{zoe.path}"' in page  # the link, to copy
    assert "booked" in page and booking.customer_email in page


def test_the_owner_moves_and_cancels_sessions_beyond_the_policy(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type(policy=STRICT, hours=ALWAYS, price=Decimal("100"))
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11), at(monday, 13))
    before = shop.event_times()
    version = str(get_booking(shop.db, booked.id).version)

    target = at(monday + timedelta(days=1), 10)
    moved = booking_form(
        client,
        booked,
        "reschedule",
        session="2",
        start=f"{monday + timedelta(days=1)}T10:00",
        reason="Room change",
        key="k1",
        version=version,
    )
    assert moved.status_code == 303, moved.text
    assert moved.headers["location"].endswith(f"/console/bookings/{booked.id}?done=moved")
    after = shop.event_times()
    assert after[booked.uids[1]][0] == target
    assert after[booked.uids[1]][1] == before[booked.uids[1]][1] + 1
    assert after[booked.uids[0]] == before[booked.uids[0]]
    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.actor is Actor.OWNER and change.fee is None and change.reason == "Room change"
    to_zoe = emails_to(shop.db, shop.settings, "zoe@example.org")
    assert any("Room change" in str(m.get_body(("plain",)).get_content()) for m in to_zoe)

    page = client.get(moved.headers["location"]).text
    assert "The session is moved" in page
    assert "Room change" in page and "reschedule" in page  # in the changes and history

    # The same form again (a double click) changes nothing more.
    again = booking_form(
        client,
        booked,
        "reschedule",
        session="2",
        start=f"{monday + timedelta(days=1)}T10:00",
        reason="Room change",
        key="k1",
        version=version,
    )
    assert again.status_code in (303, 409)
    assert len(changes.changes_of(shop.db, booked.id)) == 1

    # A time that breaks the hours is refused with the reason, unless forced.
    shop.event_type("weekdays", hours=("mon-fri 09:00-17:00",))
    narrow = shop.book(at(monday + timedelta(days=2), 9), slug="weekdays", email="kim@example.org")
    sunday = monday + timedelta(days=6)
    refused = booking_form(
        client, narrow, "reschedule", session="1", start=f"{sunday}T10:00", key="k2"
    )
    assert refused.status_code == 422
    assert "Move anyway" in refused.text and "outside" in refused.text
    forced = booking_form(
        client, narrow, "reschedule", session="1", start=f"{sunday}T10:00", key="k3", force="yes"
    )
    assert forced.status_code == 303
    assert shop.event_times()[narrow.uids[0]][0] == at(sunday, 10)

    cancelled = booking_form(client, booked, "cancel", session=["1", "3"], key="k4")
    assert cancelled.status_code == 303, cancelled.text
    statuses = [s.status.value for s in get_booking(shop.db, booked.id).sessions]
    assert statuses == ["cancelled", "rescheduled", "cancelled"]
    assert shop.event_times()[booked.uids[0]][2] == "CANCELLED"


def test_request_reschedule_link_and_confirmation_from_the_console(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type(policy=STRICT, hours=ALWAYS)
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11))

    asked = booking_form(
        client, booked, "request-reschedule", session="2", message="Sorry!", days="5"
    )
    assert asked.status_code == 303, asked.text
    (view,) = reschedule_requests.requests_of(shop.db, booked.id)
    assert view.positions == (2,) and view.message == "Sorry!"
    mails = emails_to(shop.db, shop.settings, "zoe@example.org")
    assert mails[-1]["Subject"] == "Coach Carter asks you to choose a new time: Coaching"
    page = client.get(f"/console/bookings/{booked.id}").text
    assert "asked the customer to choose new times" in page and "Withdraw" in page

    nothing = booking_form(client, booked, "request-reschedule", days="5")
    assert nothing.status_code == 422 and "Tick the sessions" in nothing.text

    withdrawn = client.post(
        f"/console/bookings/{booked.id}/requests/{view.id}/revoke",
        data={"csrf": csrf_of(page)},
        headers=SAME_SITE,
    )
    assert withdrawn.status_code == 303
    assert reschedule_requests.requests_of(shop.db, booked.id)[0].state.value == "revoked"

    count = len(emails_to(shop.db, shop.settings, "zoe@example.org"))
    assert booking_form(client, booked, "resend-confirmation").status_code == 303
    mails = emails_to(shop.db, shop.settings, "zoe@example.org")
    assert len(mails) == count + 1 and "confirmed" in str(mails[-1]["Subject"])

    old_path = booked.path
    assert booking_form(client, booked, "relink", email="yes").status_code == 303
    booking = get_booking(shop.db, booked.id)
    assert booking.history[-1].action is HistoryAction.RELINKED
    assert client.get(old_path).status_code == 404
    assert booking_form(client, booked, "revoke-link").status_code == 303
    assert "The link is revoked" in client.get(f"/console/bookings/{booked.id}").text
    refused = booking_form(client, booked, "resend-confirmation")
    assert refused.status_code == 422 and "sends the confirmation with a new one" in refused.text
    refused = booking_form(client, booked, "request-reschedule", session="1")
    assert refused.status_code == 422 and "issue a new link first" in refused.text


def test_another_owners_booking_is_not_found_and_stays_untouched(
    shop: Shop, client: TestClient
) -> None:
    shop.event_type(hours=ALWAYS)
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    services.add_owner(shop.db, name="Bea", email="bea@example.org", timezone="Europe/Paris")
    state = shop.state(booked.id)
    with console_client(shop.settings, shop.db) as bea:
        signed_in(bea, shop.db, shop.settings, "bea@example.org")
        assert bea.get(f"/console/bookings/{booked.id}").status_code == 404
        assert booked.id not in bea.get("/console/bookings", params={"when": "all"}).text
        token = csrf_of(bea.get("/console/bookings").text)
        for action, fields in [
            ("reschedule", {"session": "1", "start": f"{monday}T12:00"}),
            ("cancel", {"session": "1"}),
            ("request-reschedule", {"session": "1"}),
            ("relink", {}),
            ("revoke-link", {}),
            ("resend-confirmation", {}),
        ]:
            answer = bea.post(
                f"/console/bookings/{booked.id}/{action}",
                data={"csrf": token, **fields},
                headers=SAME_SITE,
            )
            assert answer.status_code == 404, (action, answer.text)
    assert shop.state(booked.id) == state
    assert reschedule_requests.requests_of(shop.db, booked.id) == []
    assert client.get(f"/console/bookings/{booked.id}").status_code == 200
