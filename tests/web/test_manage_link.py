"""The customer's manage page ``/m/<token>``: what a valid link shows, and that every link that
opens nothing (forged, truncated, revoked, expired) looks and answers exactly the same.

Real app, both databases, bookings written into a real Radicale calendar.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import statistics
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from calsync.bookings.packages import BookingRequest, book, get_booking, revoke_link
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.when import format_span
from calsync.store.db import Database
from calsync.store.models import Booking, utcnow
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits
from calsync.web.manage.routes import RedactManageTokens
from tests.support.servers import ServerProcess
from tests.web.test_api_bookings import (
    CUSTOMER_ZONE,
    TestClient,
    add_event_type,
    add_owner_and_calendar,
    at,
    next_monday,
    page_path,
)

SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-robots-tag": "noindex, nofollow",
    "x-frame-options": "DENY",
}


@dataclass
class Desk:
    """The app, and a way to book into the owner's Radicale calendar."""

    db: Database
    settings: Settings
    client: TestClient

    def book(self, *starts: datetime, name: str = "Zoë <i>Example</i>") -> tuple[str, str]:
        """Books ``starts`` for a customer in New York; returns (booking id, page path)."""
        request = BookingRequest(
            "coaching", name, "zoe@example.org", tuple(starts), "America/New_York"
        )
        result = book(self.db, self.settings, request)
        return result.booking.id, page_path(self.settings, result.manage_url)

    def state(self, booking_id: str) -> tuple[int, list[str]]:
        booking = get_booking(self.db, booking_id)
        return booking.version, [h.action for h in booking.history]


@pytest.fixture
def desk(
    db: Database, settings: Settings, radicale_server: ServerProcess, radicale_calendar: str
) -> Iterator[Desk]:
    add_event_type(db, add_owner_and_calendar(db, settings, radicale_calendar))
    # The page needs no key (the token is the capability); the timing test below sends far
    # more requests than the page's rate limits allow (they have tests of their own).
    app = create_app(settings, db=db, manage_limits=RateLimits.off())
    # One request id for all: the tests compare whole answers, which then carry the same one.
    with TestClient(app, headers={"X-Request-ID": "manage-link-tests"}) as client:
        yield Desk(db, settings, client)


NB = "\u202f"  # Babel (CLDR) en_US: a narrow no-break space before AM/PM


def expected_when(start: datetime) -> str:
    """The page's time format, written here with strftime to check it independently (Babel's
    en_US puts a narrow no-break space before AM/PM)."""
    local = start.astimezone(CUSTOMER_ZONE)
    end = (start + timedelta(hours=1)).astimezone(CUSTOMER_ZONE)
    offset = int((local.utcoffset() or timedelta(0)).total_seconds() // 3600)
    season = "Daylight" if local.dst() else "Standard"
    return (
        f"{local:%a, %b} {local.day}, {local.year}, {local:%-I:%M}\u202f{local:%p} – "
        f"{end:%-I:%M}\u202f{end:%p}, Eastern {season} Time (GMT{offset:+03d}:00)"
    )


def assert_secure_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    for directive in ("script-src 'self'", "style-src 'self'", "form-action 'self'"):
        assert directive in csp
    assert "http" not in csp and "unsafe" not in csp
    # No inline script or style (the CSP would refuse them), and every asset is our own.
    assert "<style" not in response.text and "<script>" not in response.text
    for link in re.findall(r'(?:src|href)="([^"]*)"', response.text):
        assert link.startswith(("/static/", "/m/", "mailto:")), link
    assert response.headers["content-type"] == "text/html; charset=utf-8"


# -- formatting -----------------------------------------------------------------------------------


def test_times_read_like_a_calendar_in_the_customers_zone() -> None:
    utc, new_york = ZoneInfo("UTC"), ZoneInfo("America/New_York")
    winter = datetime(2026, 12, 3, 15, 30, tzinfo=utc)
    assert format_span(winter, winter + timedelta(hours=1), new_york) == (
        f"Thu, Dec 3, 2026, 10:30{NB}AM – 11:30{NB}AM, Eastern Standard Time (GMT-05:00)"
    )
    summer = datetime(2019, 6, 27, 14, 30, tzinfo=utc)
    assert format_span(summer, summer + timedelta(minutes=15), new_york) == (
        f"Thu, Jun 27, 2019, 10:30{NB}AM – 10:45{NB}AM, Eastern Daylight Time (GMT-04:00)"
    )
    late = datetime(2026, 12, 3, 18, 0, tzinfo=utc)
    assert format_span(late, late + timedelta(hours=1), ZoneInfo("Asia/Kolkata")) == (
        f"Thu, Dec 3, 2026, 11:30{NB}PM – Fri, Dec 4, 2026, 12:30{NB}AM, "
        "India Standard Time (GMT+05:30)"
    )
    noon = datetime(2026, 12, 3, 12, 0, tzinfo=utc)
    assert format_span(noon, noon + timedelta(hours=1), utc) == (
        f"Thu, Dec 3, 2026, 12:00{NB}PM – 1:00{NB}PM, Coordinated Universal Time (GMT+00:00)"
    )


def test_times_can_be_written_in_another_locale() -> None:
    """The door Babel opens: the same session in German, as a booking's locale would ask."""
    utc = ZoneInfo("UTC")
    summer = datetime(2019, 6, 27, 14, 30, tzinfo=utc)
    assert format_span(
        summer, summer + timedelta(hours=12), ZoneInfo("Europe/Berlin"), "de_DE"
    ) == (
        "Do., 27. Juni 2019, 16:30 – Fr., 28. Juni 2019, 04:30, "
        "Mitteleuropäische Sommerzeit (GMT+02:00)"
    )


def test_the_access_log_sees_a_short_hash_instead_of_the_token() -> None:
    token = secrets.token_urlsafe(24)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/m/{token}?x=1", "1.1", 200),
        None,
    )
    assert RedactManageTokens().filter(record)
    line = record.getMessage()
    assert token not in line and token[:8] not in line
    assert '"GET /m/#' in line and "?x=1" in line


def test_the_running_app_keeps_sign_in_codes_out_of_the_access_log(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    access = logging.getLogger("uvicorn.access")
    paths = [
        "/oauth/google/callback?state=gAAAA&code=4/0Ab-secret",
        "/oauth/google/callback/?code=4/0Ab-secret&state=gAAAA",
    ]
    with TestClient(create_app(settings, db=db)), caplog.at_level(logging.INFO, "uvicorn.access"):
        # What uvicorn writes for each request, through the filter the app installs.
        for path in paths:
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 2
    assert not [line for line in lines if "4/0Ab-secret" in line or "gAAAA" in line]
    assert '"GET /oauth/google/callback?… HTTP/1.1" 200' in lines[0]


# -- a valid link ---------------------------------------------------------------------------------


def test_a_valid_link_shows_the_sessions_in_the_customers_zone_and_head_changes_nothing(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    monday = next_monday()
    starts = (at(monday, 9), at(monday + timedelta(days=3), 16, 0))
    booking_id, path = desk.book(*starts)
    token = path.removeprefix("/m/")
    before = desk.state(booking_id)

    with caplog.at_level(logging.DEBUG):
        # A forged Host header must not leak into the page.
        response = desk.client.get(path, headers={"Host": "evil.example"})
        head = desk.client.head(path)
    assert response.status_code == 200, response.text
    assert_secure_headers(response)
    page = response.text
    for number, start in enumerate(starts, start=1):
        assert f"Session {number} of 2" in page
        assert expected_when(start) in page
    assert page.count(">Booked<") == 2
    assert "<h1>Coaching</h1>" in page and "Coach Carter" in page
    assert "Times are shown in New York time." in page
    # The owner's policy text and the customer's name are text, never markup.
    assert "No refunds after that. &lt;b&gt;Really.&lt;/b&gt;" in page
    assert "Zoë &lt;i&gt;Example&lt;/i&gt;" in page and "<i>" not in page
    assert "You can cancel a session up to 1 day before it starts." in page
    assert "Each session can be rescheduled at most 2 times." in page
    assert "evil.example" not in page and "testserver" not in page

    assert head.status_code == 200 and head.content == b""
    assert head.headers == response.headers
    assert desk.state(booking_id) == before
    # Our own log lines name the token by a short hash only (the test client's own log shows
    # the URLs it requested).
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("calsync")]
    assert ours and not [line for line in ours if token in line]


def test_the_email_and_the_page_write_a_session_the_same_way(desk: Desk) -> None:
    """One spelling for the customer: the confirmation email and the manage page show the same
    session in the same words (notify/when.py serves both)."""
    monday = next_monday()
    start = at(monday, 9)
    booking_id, path = desk.book(start)
    page = html.unescape(desk.client.get(path).text)
    [stored] = [
        m
        for m in outbox.list_messages(desk.db)
        if m.booking_id == booking_id and m.recipient.endswith("<zoe@example.org>")
    ]
    email = message_from_bytes(
        outbox.unseal(outbox.sealing_box(desk.settings), stored.raw), policy=policy.default
    )
    assert isinstance(email, EmailMessage)
    body = email.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    when = format_span(start, start + timedelta(hours=1), CUSTOMER_ZONE)
    assert when == expected_when(start)
    assert when in text and when in page


# -- links that open nothing ----------------------------------------------------------------------


def test_forged_truncated_revoked_and_expired_links_get_one_and_the_same_404(desk: Desk) -> None:
    booking_id, path = desk.book(at(next_monday(), 9))
    token = path.removeprefix("/m/")
    answers: dict[str, httpx.Response] = {}

    def record(name: str, target: str) -> None:
        answers[name] = desk.client.get(target)
        head = desk.client.head(target)
        assert head.status_code == 404 and head.content == b"", name
        assert head.headers == answers[name].headers, name

    record("forged", "/m/" + secrets.token_urlsafe(24))
    record("same length, wrong letters", "/m/" + "A" * len(token))
    record("truncated by one", path[:-1])
    record("truncated to ten", path[:13])
    record("empty", "/m/")
    record("one too many", path + "A")
    record("with a trailing path", path + "/cancel")

    with desk.db.writing() as session:
        stored = session.get(Booking, booking_id)
        assert stored is not None and stored.token_expires_at is not None
        valid_until = stored.token_expires_at
        stored.token_expires_at = utcnow() - timedelta(seconds=1)
    record("expired", path)
    with desk.db.writing() as session:
        stored = session.get(Booking, booking_id)
        assert stored is not None
        stored.token_expires_at = valid_until
    assert desk.client.get(path).status_code == 200  # expiry was the only reason

    revoke_link(desk.db, booking_id)
    record("revoked", path)

    first = answers["forged"]
    assert first.status_code == 404
    assert "This link is not valid" in first.text
    assert_secure_headers(first)
    for name, answer in answers.items():
        assert (answer.status_code, answer.content) == (first.status_code, first.content), name
        assert answer.headers == first.headers, name
    assert token not in first.text


def test_refusing_a_token_takes_about_as_long_whatever_is_wrong_with_it(desk: Desk) -> None:
    """Coarse on purpose: each request goes through the whole ASGI stack, the test client and
    the database, whose jitter (scheduling, fsync, the PostgreSQL round trip) dwarfs the
    microseconds an attacker would look for, and 200 samples resolve nothing finer. What this
    catches is a gross difference: a path that skips the database lookup for a malformed
    token, answers from a cache, or renders something else for a revoked booking."""
    booking_id, path = desk.book(at(next_monday(), 9))
    revoke_link(desk.db, booking_id)
    targets = {
        "unknown": "/m/" + secrets.token_urlsafe(24),
        "truncated": path[:-5],
        "revoked": path,
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for target in targets.values():  # warm up (first-request costs, caches)
        for _ in range(10):
            desk.client.get(target)
    for _ in range(200):
        # Interleaved, so a slow moment of the machine hits every kind alike.
        for name, target in targets.items():
            began = clock.perf_counter()
            status = desk.client.get(target).status_code
            samples[name].append(clock.perf_counter() - began)
            assert status == 404
    medians = {name: statistics.median(times) for name, times in samples.items()}
    for a, b in ((x, y) for x in medians for y in medians if x < y):
        slower, faster = max(medians[a], medians[b]), min(medians[a], medians[b])
        assert slower < 2 * faster or slower - faster < 0.002, medians
    with desk.db.reading() as session:
        assert session.scalars(select(Booking.token_hash)).all() == [None]
