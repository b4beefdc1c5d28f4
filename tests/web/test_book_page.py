"""The public booking page over HTTP (issue 15): a customer chooses a package, one time per
session, gives their details and books, through the page's own forms as a browser without
JavaScript would; on both databases, with the events on a real Radicale server and the
confirmation through a real SMTP server (aiosmtpd).

Whatever is refused must book nothing: no booking row and no event on the server. Races
between processes are in ``tests/e2e/test_book_races.py``, the browser in
``tests/e2e/test_book_browser*.py``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from calsync.bookings.event_types import EventTypeSpec, get_event_type, save_event_type, spec_of
from calsync.config import Settings
from calsync.notify.when import format_span, zone_label
from calsync.policy.hours import parse_weekly_hours
from calsync.policy.packages import PackageOffer, PageOffer
from calsync.store.db import Database
from calsync.store.models import Booking
from calsync.sync.poller import Poller
from calsync.web.app import create_app
from calsync.web.book import forms
from calsync.web.manage.rate_limit import RateLimits
from tests.bookings.test_secrets_at_rest import deliver, readable, with_smtp
from tests.notify.test_outbox import MailServer
from tests.support.manage_shop import OWNER, Form, Shop, forms_of, post_form
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SAME_SITE = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
AUCKLAND = ZoneInfo("Pacific/Auckland")  # 12 hours ahead of the owner in Berlin
PAGE = "/b/coach/coaching"
HOUR = timedelta(hours=1)


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shop(
    db: Database,
    settings: Settings,
    mail_server: MailServer,
    radicale_server: ServerProcess,
    radicale_calendar: str,
) -> Shop:
    return open_page(db, with_smtp(settings, mail_server), radicale_calendar)


def open_page(db: Database, settings: Settings, calendar_url: str) -> Shop:
    """The coach in Berlin, their calendar at ``calendar_url``, and the coaching page on:
    packages of 1 and 3 sessions at least a day apart, one stakeholder allowed."""
    shop = Shop(db, settings, calendar_url)
    save_event_type(
        db,
        EventTypeSpec(
            owner_email=OWNER,
            slug="coaching",
            title="Coaching",
            duration=HOUR,
            timezone="Europe/Berlin",
            weekly_hours=parse_weekly_hours(["mon-fri 09:00-17:00"]),
            booking_calendar_id=shop.calendar_id,
            price=Decimal(50),
            page=PageOffer(
                public=True,
                packages=(PackageOffer(1, Decimal(50)), PackageOffer(3, Decimal(120))),
                min_days_apart=1,
                max_stakeholders=1,
            ),
        ),
    )
    Poller(db, shop.settings).sync_now([shop.calendar_id])  # free times need a synced calendar
    return shop


def browser(shop: Shop) -> TestClient:
    app = create_app(shop.settings, db=shop.db, manage_limits=RateLimits.off())
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with browser(shop) as test_client:
        yield test_client


def bookings(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Booking)) or 0


def the_form(page: str, action_suffix: str) -> Form:
    (form,) = [f for f in forms_of(page) if f.action.endswith(action_suffix)]
    return form


def choose(
    client: httpx.Client,
    starts: list[datetime],
    *,
    size: int | None = None,
    zone: str = "Pacific/Auckland",
) -> httpx.Response:
    """Through the package and times steps, one time per session; returns the details step."""
    package = client.get(PAGE, params={"tz": zone})
    assert package.status_code == 200, package.text
    form = the_form(package.text, "/times")
    for option in form.options("package"):
        option.checked = option.value == str(size or len(starts))
    page = client.get(form.action, params=form.values())
    for start in starts:
        assert page.status_code == 200, page.text
        form = the_form(page.text, "/times")
        offered = {datetime.fromisoformat(o.value): o for o in form.options("pick")}
        if start not in offered:  # a later week: what "Later days" shows
            day = start.astimezone(ZoneInfo(zone)).date().isoformat()
            page = client.get(form.action, params=[*form.values(), ("from", day)])
            form = the_form(page.text, "/times")
            offered = {datetime.fromisoformat(o.value): o for o in form.options("pick")}
        assert start in offered, (start, sorted(offered)[:5])
        offered[start].checked = True
        page = client.get(form.action, params=form.values())
    return page


def send(client: httpx.Client, form: Form, **changed: str | None) -> httpx.Response:
    values = [(k, v) for k, v in form.values() if k not in changed]
    values += [(k, v) for k, v in changed.items() if v is not None]
    return client.post(
        form.action,
        content=urlencode(values),
        headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
    )


def details(page: httpx.Response) -> Form:
    assert page.status_code == 200, page.text
    return post_form(page.text)


def three_days() -> list[datetime]:
    monday = next_monday()
    return [
        at(monday, 9),
        at(monday + timedelta(days=1), 10),
        at(monday + timedelta(days=3), 14),
    ]


def test_a_package_of_three_is_booked_in_the_customers_zone_and_the_link_manages_it(
    shop: Shop, client: TestClient, mail_server: MailServer
) -> None:
    starts = three_days()
    page = choose(client, starts)
    assert "Price: <strong>120.00 EUR</strong>" in page.text
    assert "Nothing is charged on this page" in page.text  # until payments are configured
    form = details(page)
    # The running list shows every chosen time in the customer's zone.
    page_text = client.get(form.action.removesuffix("/book") + "/times", params=form.values()).text
    for start in starts:
        assert format_span(start, start + HOUR, AUCKLAND) in page_text

    done = send(
        client,
        form,
        name="Zoë Example",
        email="zoe@example.org",
        stakeholder="parent@example.org",
        notes="First time",
    )
    assert done.status_code == 200, done.text
    assert "Your 3 sessions are confirmed" in done.text
    (link,) = [f for f in done.text.split('"') if f.startswith("http://127.0.0.1:8000/m/")]
    for start in starts:
        assert format_span(start, start + HOUR, AUCKLAND) in done.text

    # On the owner's calendar at the right instants.
    events = shop.events()
    assert sorted(e["DTSTART"].dt for e in events.values()) == starts
    assert all(link in readable(e.to_ical()) for e in events.values())
    assert all(
        "Notes from Zoë Example: First time" in str(e["DESCRIPTION"]) for e in events.values()
    )

    # The customer's email: every session with its zone label, and the link.
    assert deliver(shop.db, shop.settings) == 3  # customer, owner and the stakeholder
    assert any("parent@" in str(m["To"]) for m in mail_server.inbox.received)
    (mail,) = [m for m in mail_server.inbox.received if "zoe@" in str(m["To"])]
    assert str(mail["Subject"]) == "Your 3 sessions are confirmed: Coaching"
    body = readable(mail.as_bytes())
    assert link in body
    assert zone_label(AUCKLAND, starts[0]) in " ".join(body.split())

    # The link opens the manage page for exactly those sessions.
    manage = client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert manage.status_code == 200
    for start in starts:
        assert format_span(start, start + HOUR, AUCKLAND) in manage.text
    assert manage.text.count('<li class="session') == 3
    assert bookings(shop.db) == 1


def test_a_double_submit_books_once(shop: Shop, client: TestClient) -> None:
    form = details(choose(client, three_days()))
    first = send(client, form, name="Zoë", email="zoe@example.org")
    second = send(client, form, name="Zoë", email="zoe@example.org")
    assert first.status_code == second.status_code == 200, second.text
    assert "Your 3 sessions are confirmed" in second.text
    link = [f for f in first.text.split('"') if "/m/" in f]
    assert link and link == [f for f in second.text.split('"') if "/m/" in f]
    assert bookings(shop.db) == 1
    assert len(shop.events()) == 3


def test_bad_input_gets_a_clear_message_and_books_nothing(shop: Shop, client: TestClient) -> None:
    monday = next_monday()
    form = details(choose(client, three_days()))
    good = {"name": "Zoë", "email": "zoe@example.org"}

    def refused(status: int, words: str, response: httpx.Response) -> None:
        assert response.status_code == status, (status, response.text)
        assert words in " ".join(response.text.split()), response.text
        assert bookings(shop.db) == 0 and shop.events() == {}

    def picks(*starts: datetime) -> list[tuple[str, str]]:
        return [("pick", s.astimezone(ZoneInfo("UTC")).isoformat()) for s in starts]

    def with_picks(starts: list[datetime], size: str = "3", **changed: str) -> httpx.Response:
        values = [(k, v) for k, v in form.values() if k not in ("pick", "package", *changed)]
        values += [*picks(*starts), ("package", size), *good.items(), *changed.items()]
        values = [(k, v) for k, v in values if not (k in good and k in changed and v == good[k])]
        return client.post(
            form.action,
            content=urlencode(values),
            headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
        )

    def kept(response: httpx.Response) -> list[datetime]:
        """The choices the times step keeps (it sends them on as hidden fields)."""
        form = the_form(response.text, "/times")
        return [
            datetime.fromisoformat(c.value)
            for c in form.controls
            if c.name == "pick" and c.type == "hidden"
        ]

    # A slot outside the working hours (a Saturday), and one in the past: never offered, so
    # not "taken"; the other choices are kept.
    saturday = at(monday + timedelta(days=5), 10)
    others = [at(monday, 9), at(monday + timedelta(days=2), 9)]
    answer = with_picks([*others, saturday])
    refused(422, "cannot be booked: it is outside the hours offered", answer)
    assert sorted(kept(answer)) == others and "taken</span>" not in answer.text
    past = at(monday - timedelta(days=14), 10)
    answer = with_picks([past, *others])
    refused(422, "cannot be booked: it is in the past", answer)
    assert sorted(kept(answer)) == others
    # Too many sessions for the package, a package not offered.
    four = [*three_days(), at(monday + timedelta(days=4), 9)]
    refused(422, "one time for each of its sessions", with_picks(four))
    refused(422, "Choose one of the packages", with_picks(four, size="4"))
    # The spacing rule (at least a day apart): the times that keep it are kept.
    answer = with_picks([at(monday, 9), at(monday, 11), at(monday + timedelta(days=2), 9)])
    refused(422, "at least 1 day apart", answer)
    assert sorted(kept(answer)) == others
    # Over-long and header-injecting names and emails.
    refused(422, "too long", send(client, form, name="Z" * 201, email="zoe@example.org"))
    refused(422, "too long", send(client, form, name="Zoë", email="z" * 310 + "@example.org"))
    refused(422, "too long", send(client, form, notes="n" * 2001, **good))
    refused(
        422,
        "must not contain",
        send(client, form, name="Zoë\r\nBcc: evil@example.org", email="zoe@example.org"),
    )
    refused(
        422,
        "must not contain",
        send(client, form, name="Zoë", email="zoe@example.org\r\nBcc: evil@example.org"),
    )
    refused(
        422,
        "not an email address",
        send(client, form, name="Zoë", email="zoe@example.org", stakeholder="not-an-address"),
    )
    refused(422, "like name@example.org", send(client, form, name="Zoë", email="zoe@example..org"))
    # No CSRF token, a forged one, a filled honeypot, no idempotency key.
    refused(403, "could not be checked", send(client, form, csrf=None, **good))
    refused(403, "could not be checked", send(client, form, csrf="x" * 43, **good))
    refused(400, "Nothing was booked", send(client, form, website="http://spam.example", **good))
    refused(400, "incomplete", send(client, form, key=None, **good))
    # Another site's form.
    refused(
        403,
        "did not come from",
        client.post(
            form.action,
            content=urlencode([*form.values(), *good.items()]),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "https://evil.example",
            },
        ),
    )
    # This form sent to another event type's page: its token is this page's only.
    save_event_type(
        shop.db,
        dataclasses.replace(spec_of(get_event_type(shop.db, "coaching")), slug="intro"),
    )
    assert client.get("/b/coach/intro").status_code == 200
    refused(
        403,
        "could not be checked",
        client.post(
            form.action.replace("/coaching/", "/intro/"),
            content=urlencode([*form.values(), *good.items()]),
            headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
        ),
    )
    # A forged event type or owner, and a page switched off.
    forged = form.action.replace("/coaching/", "/nope/")
    refused(
        404,
        "not available",
        client.post(
            forged,
            content=urlencode([*form.values(), *good.items()]),
            headers={"Content-Type": "application/x-www-form-urlencoded", **SAME_SITE},
        ),
    )
    assert client.get("/b/coach/nope").status_code == 404
    assert client.get("/b/nobody/coaching").status_code == 404
    current = get_event_type(shop.db, "coaching")
    switched_off = dataclasses.replace(spec_of(current), page=PageOffer(public=False))
    save_event_type(shop.db, switched_off, current.id)
    assert client.get(PAGE).status_code == 404
    listed = client.get("/b/coach")
    assert "/b/coach/intro" in listed.text and PAGE not in listed.text
    refused(404, "not available", send(client, form, **good))
    intro = get_event_type(shop.db, "intro")
    save_event_type(shop.db, dataclasses.replace(spec_of(intro), page=PageOffer()), intro.id)
    assert client.get("/b/coach").status_code == 404  # no page on: no list either


def test_the_page_is_embeddable_only_by_the_sites_the_owner_names(shop: Shop) -> None:
    with browser(shop) as client:
        headers = client.get(PAGE).headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    web = shop.settings.web.model_copy(update={"frame_ancestors": ["https://coach.example"]})
    shop.settings = shop.settings.model_copy(update={"web": web})
    with browser(shop) as client:
        page = client.get(PAGE)
        missing = client.get("/b/coach/nope")
        manage = client.get("/m/not-a-token")
    for answer in (page, missing):
        assert "frame-ancestors https://coach.example;" in (
            answer.headers["content-security-policy"] + ";"
        )
        assert "x-frame-options" not in answer.headers
    # The manage page's URL is a secret: it is never embeddable.
    assert "frame-ancestors 'none'" in manage.headers["content-security-policy"]


def test_requests_are_rate_limited_per_address_and_per_owner(shop: Shop) -> None:
    app = create_app(shop.settings, db=shop.db, manage_limits=RateLimits(3, 1))

    def views(address: str, count: int) -> list[int]:
        with TestClient(app, follow_redirects=False, client=(address, 50000)) as client:
            return [client.get(PAGE).status_code for _ in range(count)]

    assert views("10.0.0.1", 5) == [200, 200, 200, 429, 429]
    # One address over its budget does not use up the owner's page for everyone: the owner's
    # budget is ten addresses' (30 views), counted only for requests an address may make.
    assert [views(f"10.0.1.{n}", 3) for n in range(9)] == [[200] * 3] * 9
    assert views("10.0.2.1", 2) == [429, 429]  # 3 + 27 = 30: the owner's minute is used up


@pytest.mark.parametrize(
    ("address", "deliverable"),
    [
        ("zoe@example.org", True),
        ("Zoë.Example+coaching@bücher.example", True),
        ("zoe@mail.example.co.uk", True),
        ("zoe@localhost", False),
        ("zoe@example..org", False),
        ("zoe@-example.org", False),
        ("zoe@exa_mple.org", False),
        ("zoe@example.c", False),
        ("zoe@10.0.0.1", False),
        (".zoe@example.org", False),
        ("zo..e@example.org", False),
        ("z" * 65 + "@example.org", False),
        ("zoe@" + "a" * 64 + ".org", False),
    ],
)
def test_an_email_address_is_checked_for_its_form_only(address: str, deliverable: bool) -> None:
    assert forms.deliverable_form(address) is deliverable
