"""The manage page in headless Chromium against a live server, the way a customer uses it:
clicks on tabs, ticks, times and buttons, with the page's script running under its strict CSP.

After each flow the events are read back from the real Radicale server: moved sessions are at
the chosen instants with the same UIDs and SEQUENCE + 1; the others are untouched.
SQLite is enough here (the HTTP-level tests run both databases).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.notify.when import clock_words, format_span
from calsync.policy.change_policy import ActionRule, ChangePolicy, Permission, ReasonRule
from calsync.store.db import Database
from calsync.store.models import utcnow
from tests.conftest import make_settings
from tests.support.browser import LiveServer, launch_chromium, live_server, serving_settings
from tests.support.manage_shop import ALWAYS, NEW_YORK, Booked, Shop
from tests.support.servers import ServerProcess
from tests.support.world import at, next_monday

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

pytestmark = pytest.mark.slow
AUCKLAND = ZoneInfo("Pacific/Auckland")
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


@dataclass
class Scene:
    shop: Shop
    server: LiveServer
    chromium: Browser
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    def open(self, booked: Booked, zone: str = "America/New_York") -> Page:
        """The customer's link in a fresh browser whose clock is set to ``zone``."""
        context = self.chromium.new_context(timezone_id=zone, locale="en-US")
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        # A CSP violation or a script error shows up in the console: none is allowed.
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.goto(self.server.url + booked.path)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every page answered 4xx; the refusals (422, 409) are the page's
        # way to show a problem, so only those are expected.
        expected = any(f"status of {code} " in message.text for code in (409, 422))
        if message.type in ("error", "warning") and not expected:
            self.problems.append(message.text)


@pytest.fixture
def scene(
    tmp_path: Path, chromium: Browser, radicale_server: ServerProcess, radicale_calendar: str
) -> Iterator[Scene]:
    settings = serving_settings(make_settings(f"sqlite:///{tmp_path}/calsync.db"))
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
    try:
        with live_server(settings, db) as server:
            scene = Scene(shop, server, chromium)
            try:
                yield scene
            finally:
                for context in scene.contexts:
                    context.close()
            assert scene.problems == []
    finally:
        db.dispose()


def pick(page: Page, session_id: int, start: datetime) -> None:
    """Click the time ``start`` for the session, paging to later days until it shows."""
    value = start.astimezone(UTC).isoformat()
    radio = page.locator(f'input[name="start-{session_id}"][value="{value}"]')
    while radio.count() == 0:
        page.get_by_role("button", name="Later days").click()
    page.locator(f'label[for="{radio.get_attribute("id")}"]').click()
    assert radio.is_checked()


def slot_label(page: Page, session_id: int, start: datetime) -> str:
    value = start.astimezone(UTC).isoformat()
    radio = page.locator(f'input[name="start-{session_id}"][value="{value}"]')
    return page.locator(f'label[for="{radio.get_attribute("id")}"]').inner_text()


def test_two_of_three_sessions_are_rescheduled(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type()
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    booked = shop.book(at(monday, 9), at(monday, 11), at(wednesday, 10))
    first, _, third = booked.session_ids
    before = shop.event_times()
    page = scene.open(booked)
    assert page.locator("h1").inner_text() == "Coaching"
    assert page.get_by_text(format_span(at(monday, 9), at(monday, 10), NEW_YORK)).is_visible()

    page.get_by_role("link", name="Reschedule").click()
    page.get_by_label("Session 1 of 3").check()
    page.get_by_label("Session 3 of 3").check()
    page.get_by_role("button", name="See available times").click()

    # The script told the server this browser's zone: times are shown in New York time.
    assert page.locator("#tz").input_value() == "America/New_York"
    new_first, new_third = at(wednesday, 14), at(wednesday, 15)
    pick(page, first, new_first)
    assert slot_label(page, first, new_first) == clock_words(new_first.astimezone(NEW_YORK))
    # The time taken by session 1 is no longer offered to session 3.
    taken = page.locator(
        f'input[name="start-{third}"][value="{new_first.astimezone(UTC).isoformat()}"]'
    )
    assert taken.is_disabled()
    pick(page, third, new_third)
    page.get_by_role("button", name="Review the new times").click()

    changes = page.locator("ul.changes")
    assert format_span(new_first, new_first + timedelta(hours=1), NEW_YORK) in changes.inner_text()
    assert format_span(at(wednesday, 10), at(wednesday, 11), NEW_YORK) in changes.inner_text()
    page.get_by_role("button", name="Confirm new times").click()
    assert page.get_by_role("heading", name="Your sessions have been rescheduled").is_visible()
    assert "/changes/" in page.url

    after = shop.event_times()
    assert set(after) == set(before)
    for uid, start in ((booked.uids[0], new_first), (booked.uids[2], new_third)):
        assert after[uid][:2] == (start, before[uid][1] + 1)
    assert after[booked.uids[1]] == before[booked.uids[1]]


def test_one_session_is_cancelled(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), at(monday, 11), at(monday, 13))
    before = shop.event_times()
    page = scene.open(booked)

    page.get_by_role("link", name="Cancel").click()
    page.get_by_label("Session 2 of 3").check()
    page.get_by_role("button", name="Continue").click()
    assert (
        format_span(at(monday, 11), at(monday, 12), NEW_YORK)
        in page.locator("ul.changes").inner_text()
    )
    page.get_by_role("button", name="Cancel this session").click()
    assert page.get_by_role("heading", name="Cancelled").is_visible()

    after = shop.event_times()
    uid = booked.uids[1]
    assert after[uid] == (at(monday, 11), before[uid][1] + 1, "CANCELLED")
    assert [after[u] for u in booked.uids[::2]] == [before[u] for u in booked.uids[::2]]
    page.get_by_role("link", name="Back to your booking").click()
    assert page.locator("li.session.cancelled").count() == 1


def test_a_required_reason_is_asked_for_before_the_change_is_made(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type(policy=ChangePolicy(reschedule=ActionRule(reason=ReasonRule.REQUIRED)))
    monday = next_monday()
    booked = shop.book(at(monday, 9))
    before = shop.event_times()
    page = scene.open(booked)

    page.get_by_role("link", name="Reschedule").click()
    page.get_by_role("button", name="See available times").click()  # one session: no tick
    target = at(monday, 16)
    pick(page, booked.session_ids[0], target)
    page.get_by_role("button", name="Review the new time").click()
    page.get_by_role("button", name="Confirm new times").click()

    reason = page.get_by_label("Reason (required)")
    assert page.get_by_text("Please tell us why; a reason is required.").is_visible()
    assert reason.get_attribute("aria-invalid") == "true"
    assert reason.evaluate("element => element === document.activeElement")
    assert shop.event_times() == before
    reason.fill("A clash with work.")
    page.get_by_role("button", name="Confirm new times").click()
    assert page.get_by_role("heading", name="Rescheduled").is_visible()
    assert page.get_by_text("Your reason: A clash with work.").is_visible()
    uid = booked.uids[0]
    assert shop.event_times()[uid][:2] == (target, before[uid][1] + 1)


def test_rescheduling_within_24_hours_is_shown_disabled_with_the_reason(scene: Scene) -> None:
    shop = scene.shop
    policy = ChangePolicy(reschedule=ActionRule(Permission.UNTIL, timedelta(hours=24)))
    shop.event_type(policy=policy, hours=ALWAYS)
    soon = (utcnow() + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    booked = shop.book(soon, soon + timedelta(days=3))
    page = scene.open(booked)

    page.get_by_role("link", name="Reschedule").click()
    near, far = (page.get_by_label(f"Session {n} of 2") for n in (1, 2))
    assert near.is_disabled() and far.is_enabled()
    why = page.locator(f"#{near.get_attribute('aria-describedby')}")
    assert why.inner_text() == "Sessions can be rescheduled up to 1 day before they start."
    assert why.is_visible()
    assert page.get_by_role("button", name="See available times").is_enabled()


def test_a_customer_eleven_hours_ahead_picks_in_their_own_zone(scene: Scene) -> None:
    shop = scene.shop
    shop.event_type()
    monday = next_monday()
    booked = shop.book(at(monday, 9), zone="Pacific/Auckland")
    before = shop.event_times()
    page = scene.open(booked, zone="Pacific/Auckland")
    # Monday 9:00 in Berlin is Monday evening in Auckland.
    shown = format_span(at(monday, 9), at(monday, 10), AUCKLAND)
    assert "New Zealand" in shown and page.get_by_text(shown).is_visible()

    page.get_by_role("link", name="Reschedule").click()
    page.get_by_role("button", name="See available times").click()
    assert page.locator("#tz").input_value() == "Pacific/Auckland"
    target = at(monday + timedelta(days=1), 10)  # Tuesday 10:00 Berlin
    session_id = booked.session_ids[0]
    # The zone menu works without the script too: look at the times in Tokyo, then back.
    page.locator("#tz").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Show", exact=True).click()
    pick(page, session_id, target)
    assert slot_label(page, session_id, target) == clock_words(target.astimezone(TOKYO))
    page.locator("#tz").select_option("Pacific/Auckland")
    page.get_by_role("button", name="Show", exact=True).click()
    radio = page.locator(f'input[name="start-{session_id}"]:checked')
    assert radio.get_attribute("value") == target.astimezone(UTC).isoformat()  # still chosen
    local = target.astimezone(AUCKLAND)
    assert slot_label(page, session_id, target) == clock_words(local)
    page.get_by_role("button", name="Review the new time").click()
    assert (
        format_span(target, target + timedelta(hours=1), AUCKLAND)
        in page.locator("ul.changes").inner_text()
    )
    page.get_by_role("button", name="Confirm new times").click()
    assert page.get_by_role("heading", name="Rescheduled").is_visible()

    uid = booked.uids[0]
    start, sequence, _ = shop.event_times()[uid]
    assert start == target and sequence == before[uid][1] + 1
