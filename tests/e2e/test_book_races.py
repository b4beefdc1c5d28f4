"""Races on the booking page between real ``calsync web`` processes sharing one database, on
SQLite and on PostgreSQL: each customer's browser talks to its own process, and the submits
leave at the same moment (threads released by a barrier).

- Two customers whose packages share one slot: one books, the other is sent back to the times
  with that slot marked taken and their two other choices kept; one booking, three events.
- One form sent twice (a double click, or a reload) through both processes, the second while
  the first is still writing its events to the calendar (slowed by a relay on the way to the
  real Radicale server): one booking, three events, and both answers show the same link.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from calsync.config import Settings
from calsync.notify.when import format_span
from calsync.store.db import Database
from calsync.store.models import BookedSession, Booking
from tests.conftest import SECRET_KEY
from tests.support.manage_shop import Form, Shop
from tests.support.servers import ServerProcess
from tests.support.slowproxy import SlowProxy
from tests.support.web_process import ADMIN_KEY, WebProcess
from tests.support.world import at, next_monday
from tests.web.test_book_page import (
    AUCKLAND,
    HOUR,
    bookings,
    choose,
    details,
    open_page,
    send,
    the_form,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def relay(radicale_server: ServerProcess) -> Iterator[SlowProxy]:
    proxy = SlowProxy(radicale_server.port)
    yield proxy
    proxy.close()


@pytest.fixture
def shop(db: Database, settings: Settings, relay: SlowProxy, radicale_calendar: str) -> Shop:
    """The coaching page, its calendar reached through the relay (not slowed until asked)."""
    return open_page(db, settings, relay.url_for(radicale_calendar))


@pytest.fixture
def webs(
    database_url: str, shop: Shop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WebProcess, WebProcess]]:
    """Two web processes on the test's database (base URL http://127.0.0.1:8000 for both)."""
    env = os.environ | {
        "CALSYNC_DATABASE_URL": database_url,
        "CALSYNC_SECRET_KEY": SECRET_KEY,
        "CALSYNC_ADMIN_API_KEY": ADMIN_KEY,
    }
    cwd = tmp_path_factory.mktemp("webs")
    first = WebProcess.start(env, cwd, "web-1")
    try:
        second = WebProcess.start(env, cwd, "web-2")
    except BaseException:
        first.kill()
        raise
    try:
        yield first, second
    finally:
        for web in (first, second):
            web.kill()


def at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run ``calls`` in threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[httpx.Response | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def kept_picks(page: str) -> list[datetime]:
    form = the_form(page, "/times")
    return sorted(
        datetime.fromisoformat(c.value)
        for c in form.controls
        if c.name == "pick" and c.type == "hidden"
    )


def links_in(page: str) -> list[str]:
    return [f for f in page.split('"') if "/m/" in f]


def test_two_customers_sharing_a_slot_one_books_the_other_is_sent_back(
    shop: Shop, webs: tuple[WebProcess, WebProcess]
) -> None:
    monday = next_monday()
    shared = at(monday + timedelta(days=2), 11)
    zoe_starts = [at(monday, 9), shared, at(monday + timedelta(days=4), 9)]
    sam_starts = [at(monday, 13), shared, at(monday + timedelta(days=4), 15)]
    with (
        httpx.Client(base_url=webs[0].base, timeout=60) as zoe,
        httpx.Client(base_url=webs[1].base, timeout=60) as sam,
    ):
        zoe_form = details(choose(zoe, zoe_starts))
        sam_form = details(choose(sam, sam_starts))
        answers = at_once(
            lambda: send(zoe, zoe_form, name="Zoë", email="zoe@example.org"),
            lambda: send(sam, sam_form, name="Sam", email="sam@example.org"),
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 409], [r.text for r in answers]
    zoe_won = answers[0].status_code == 200
    winner_starts, loser_starts = (zoe_starts, sam_starts) if zoe_won else (sam_starts, zoe_starts)
    loser = answers[1] if zoe_won else answers[0]
    assert "Your 3 sessions are confirmed" in (answers[0] if zoe_won else answers[1]).text

    # Sent back to the times: the shared slot marked taken, the two others kept as chosen.
    assert "is not free any more" in loser.text
    taken = format_span(shared, shared + HOUR, AUCKLAND)
    assert f'<li class="session cancelled taken"><span class="when">{taken}</span>' in loser.text
    assert kept_picks(loser.text) == sorted(s for s in loser_starts if s != shared)
    # Other times of that day are offered, that one no longer.
    assert 'type="radio" name="pick"' in loser.text
    assert f'value="{shared.astimezone(UTC).isoformat()}"' not in loser.text

    assert bookings(shop.db) == 1
    assert sorted(e["DTSTART"].dt for e in shop.events().values()) == winner_starts


def test_a_form_sent_twice_books_once_even_while_the_first_is_writing(
    shop: Shop, webs: tuple[WebProcess, WebProcess], relay: SlowProxy
) -> None:
    monday = next_monday()
    starts = [at(monday, 9), at(monday + timedelta(days=1), 10), at(monday + timedelta(days=3), 14)]
    with (
        httpx.Client(base_url=webs[0].base, timeout=60) as first_tab,
        httpx.Client(base_url=webs[1].base, timeout=60) as second_tab,
    ):
        form: Form = details(choose(first_tab, starts))

        # At the same moment, through both processes.
        both = at_once(
            lambda: send(first_tab, form, name="Zoë", email="zoe@example.org"),
            lambda: send(second_tab, form, name="Zoë", email="zoe@example.org"),
        )
        assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
        assert links_in(both[0].text) == links_in(both[1].text) != []
        assert bookings(shop.db) == 1 and len(shop.events()) == 3

        # A new form; its second submit leaves once the first has stored the booking but
        # while the calendar (slowed to 1.5 s a request) still waits for its events.
        later = [s + timedelta(days=7) for s in starts]
        form = details(choose(first_tab, later))
        relay.delay = 1.5
        answers: dict[str, httpx.Response] = {}
        first = threading.Thread(
            target=lambda: answers.__setitem__(
                "first", send(first_tab, form, name="Zoë", email="zoe@example.org")
            )
        )
        first.start()
        try:
            assert wait_for_unwritten_booking(shop.db, form)
            answers["second"] = send(second_tab, form, name="Zoë", email="zoe@example.org")
            # It answered once the events were written (it waited for the first), not before.
            assert not wait_for_unwritten_booking(shop.db, form, timeout=0.5)
        finally:
            relay.delay = 0
            first.join(timeout=120)
    assert answers["first"].status_code == answers["second"].status_code == 200
    assert "Your 3 sessions are confirmed" in answers["second"].text
    assert links_in(answers["first"].text) == links_in(answers["second"].text) != []
    assert bookings(shop.db) == 2
    assert sorted(e["DTSTART"].dt for e in shop.events().values()) == sorted(starts + later)


def wait_for_unwritten_booking(db: Database, form: Form, timeout: float = 30) -> bool:
    """Whether the booking of ``form`` (its idempotency key) appears with events unwritten."""
    key = dict(form.values())["key"]
    deadline = time.monotonic() + timeout
    while True:
        with db.reading() as session:
            booking = session.scalars(select(Booking).where(Booking.idempotency_key == key)).first()
            if booking is not None:
                hrefs = session.scalars(
                    select(BookedSession.href).where(BookedSession.booking_id == booking.id)
                ).all()
                return any(h is None for h in hrefs)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
