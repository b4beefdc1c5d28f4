"""The owner asks the customer to choose new times: the email, and the manage page it opens.

The policy here forbids what the request allows: rescheduling needs a day's notice, costs a
fee, needs a reason, and the session is inside the notice. Through the request's link the
customer moves the named session anyway, free, without a reason, through the page's own
forms; the event moves on a real Radicale server. Links that are forged, used, withdrawn or
expired are refused in words, and change nothing.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from calsync.bookings import changes, reschedule_requests
from calsync.bookings.packages import get_booking, relink
from calsync.bookings.reschedule_requests import RequestNotOpen, RequestState
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.when import format_span
from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
)
from calsync.store.db import Database
from calsync.store.models import Actor, HistoryAction, OutboxStatus, utcnow
from calsync.web.manage.routes import redact_tokens
from tests.support.manage_shop import ALWAYS, NEW_YORK, Booked, Shop, get_form, post_form
from tests.support.servers import ServerProcess
from tests.web.test_manage_page import browser, change_id, send

HOUR = timedelta(hours=1)
STRICT = ChangePolicy(
    reschedule=ActionRule(Permission.UNTIL, timedelta(hours=24), ReasonRule.REQUIRED),
    reschedule_fee=Fee(FeeKind.FIXED, Decimal("30")),
    max_reschedules=0,
)


@pytest.fixture
def shop(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Shop:
    return Shop(db, settings, radicale_calendar)


@pytest.fixture
def client(shop: Shop) -> Iterator[httpx.Client]:
    with browser(shop) as test_client:
        yield test_client


def soon() -> datetime:
    """A whole hour about three hours from now: inside the policy's day of notice."""
    return (utcnow() + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def request_email(db: Database, settings: Settings, booking_id: str) -> tuple[str, EmailMessage]:
    """The request email in the outbox: its status and the message."""
    (row,) = [
        r for r in outbox.list_messages(db) if r.booking_id == booking_id and "choose" in r.subject
    ]
    raw = outbox.unseal(outbox.sealing_box(settings), row.raw)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return row.status, message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def local_path(url: str, settings: Settings) -> str:
    return url.removeprefix(settings.base_url)


def test_the_customer_moves_the_requested_session_free_of_the_policy(
    shop: Shop, client: httpx.Client
) -> None:
    shop.event_type(policy=STRICT, hours=ALWAYS, price=Decimal("100"))
    first_start = soon()
    booked = shop.book(first_start, first_start + timedelta(days=3))
    first, second = booked.session_ids
    before = shop.event_times()

    # Without a request the policy holds: the first session is inside the notice.
    tab = client.get(booked.path, params={"tab": "reschedule"}).text
    assert "up to 1 day before they start" in tab

    issued = reschedule_requests.request_reschedule(
        shop.db, shop.settings, booked.id, [first], message="I am ill that day.\nSorry!"
    )
    assert issued.positions == (1,)

    # The email: to the customer only, ready at once, the session in their zone, the button.
    status, message = request_email(shop.db, shop.settings, booked.id)
    assert status is OutboxStatus.READY
    assert message["To"].addresses[0].addr_spec == "zoe@example.org"
    assert message["Subject"] == "Coach Carter asks you to choose a new time: Coaching"
    text, html = bodies(message)
    when = format_span(first_start, first_start + HOUR, NEW_YORK)
    assert f"Session 1 of 2: {when}" in text and when in html
    assert "I am ill that day." in text and "<br>Sorry!" in html
    assert issued.url in text
    assert re.search(r'<a href="([^"]+)"[^>]*>Choose new times</a>', html).group(1) == (
        issued.url.replace("&", "&amp;")
    )
    assert "no fee" in text.lower()
    query = parse_qs(urlsplit(issued.url).query)
    assert query["tab"] == ["reschedule"] and query["session"] == [str(first)]
    assert urlsplit(issued.url).path == booked.path

    # The link opens the Reschedule tab with exactly that session ticked, the other not movable.
    page = client.get(local_path(issued.url, shop.settings))
    assert page.status_code == 200, page.text
    assert "Coach Carter asked you to choose new times for Session 1." in page.text
    picker = get_form(page.text, "/times")
    options = {o.value: o for o in picker.options("session")}
    assert options[str(first)].checked and not options[str(first)].disabled
    assert options[str(second)].disabled
    assert "Coach Carter did not ask to move this session." in page.text

    # Through the page's own forms: the free times, the confirm step, the POST.
    times = client.get(picker.action, params=picker.values())
    assert times.status_code == 200, times.text
    form = get_form(times.text, "/reschedule/review")
    target = first_start + timedelta(days=1, hours=2)
    offered = {datetime.fromisoformat(o.value): o for o in form.options(f"start-{first}")}
    assert target in offered
    for option in form.options(f"start-{first}"):
        option.checked = option is offered[target]
    confirm = client.get(form.action, params=form.values())
    assert confirm.status_code == 200, confirm.text
    assert "Rescheduling fee" not in confirm.text and "30.00" not in confirm.text
    assert "<textarea" not in confirm.text  # no reason asked for
    done = send(client, post_form(confirm.text))
    number = change_id(done, booked)
    assert "request=" not in done.headers["location"]

    (change,) = changes.changes_of(shop.db, booked.id)
    assert change.id == number and change.actor is Actor.CUSTOMER and change.fee is None
    booking = get_booking(shop.db, booked.id)
    assert booking.sessions[0].start == target
    assert booking.sessions[0].reschedule_count == 0  # the owner asked: not counted
    actions = [h.action for h in booking.history]
    assert actions[-2:] == [HistoryAction.RESCHEDULE_REQUESTED, HistoryAction.RESCHEDULED]
    assert booking.history[-1].details["request"] == issued.id
    after = shop.event_times()
    assert after[booked.uids[0]][0] == target
    assert after[booked.uids[1]] == before[booked.uids[1]]
    (view,) = reschedule_requests.requests_of(shop.db, booked.id)
    assert view.state is RequestState.USED and view.change_id == number

    # The link works once; sending the form again answers with the same change.
    again = client.get(local_path(issued.url, shop.settings))
    assert again.status_code == 410
    assert "You already chose new times with this link." in again.text
    assert change_id(send(client, post_form(confirm.text)), booked) == number
    assert len(changes.changes_of(shop.db, booked.id)) == 1


def test_forged_withdrawn_expired_and_stretched_request_links_are_refused(
    shop: Shop, client: httpx.Client
) -> None:
    shop.event_type(policy=STRICT, hours=ALWAYS)
    start = soon()
    booked: Booked = shop.book(start, start + timedelta(days=3))
    first, second = booked.session_ids
    issued = reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [first])
    path = local_path(issued.url, shop.settings)
    token = parse_qs(urlsplit(issued.url).query)["request"][0]

    forged = client.get(booked.path, params={"tab": "reschedule", "request": token[:-2] + "xx"})
    assert forged.status_code == 410
    assert "This link to choose new times is not valid" in forged.text
    assert "asked you to choose" not in forged.text

    # A form stretched to a session the owner did not name is refused by the engine too.
    state = shop.state(booked.id)
    with pytest.raises(RequestNotOpen):
        changes.reschedule(
            shop.db,
            shop.settings,
            booked.id,
            {second: start + timedelta(days=4)},
            actor=Actor.CUSTOMER,
            request_token=token,
        )
    times = client.get(f"{booked.path}/times", params={"session": second, "request": token})
    assert times.status_code == 422 and "did not ask to move this session" in times.text
    assert shop.state(booked.id) == state

    # Withdrawn by the owner: the page says so, the tab keeps the usual rules.
    assert reschedule_requests.revoke_request(shop.db, booked.id) == [issued.id]
    withdrawn = client.get(path)
    assert withdrawn.status_code == 410
    assert "Coach Carter withdrew this request to choose new times." in withdrawn.text
    assert "up to 1 day before they start" in withdrawn.text

    # Expired: made fifteen days ago, open for fourteen.
    old = reschedule_requests.request_reschedule(
        shop.db, shop.settings, booked.id, [first], now=utcnow() - timedelta(days=15)
    )
    expired = client.get(local_path(old.url, shop.settings))
    assert expired.status_code == 410 and "has expired" in expired.text

    # A newer request replaces an open one; relinking the booking ends it with the old link.
    newer = reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [first])
    newest = reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [first])
    assert client.get(local_path(newer.url, shop.settings)).status_code == 410
    assert client.get(local_path(newest.url, shop.settings)).status_code == 200
    relink(shop.db, shop.settings, booked.id)
    states = {v.id: v.state for v in reschedule_requests.requests_of(shop.db, booked.id)}
    assert states[newest.id] is RequestState.REVOKED
    assert shop.state(booked.id)[3] == state[3]  # no session moved by any of this

    # The token never reaches the logs.
    logged = redact_tokens(f'"GET {path} HTTP/1.1" 200')
    assert token not in logged and "request=…" in logged


def test_what_cannot_be_requested_says_what_to_do(shop: Shop) -> None:
    shop.event_type(hours=ALWAYS)
    start = soon()
    booked = shop.book(start, start + timedelta(days=2))
    first, second = booked.session_ids
    changes.cancel(shop.db, shop.settings, booked.id, [second], actor=Actor.OWNER)
    with pytest.raises(Exception, match="session 2 is cancelled"):
        reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [second])
    with pytest.raises(Exception, match="is not part of booking"):
        reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [999_999])
    from calsync.bookings.packages import revoke_link

    revoke_link(shop.db, booked.id)
    with pytest.raises(Exception, match="calsync booking relink"):
        reschedule_requests.request_reschedule(shop.db, shop.settings, booked.id, [first])
    assert reschedule_requests.requests_of(shop.db, booked.id) == []
