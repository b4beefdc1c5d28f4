"""The booking page for a person on a phone, with a keyboard alone, or with weak eyesight, and
its time zone: in headless Chromium against a live server at a 375 px wide phone viewport, in
the light and the dark colour scheme. Every step must fit the screen (no sideways scrolling),
label each control, keep text readable (contrast) and targets tappable, and the whole booking
must be possible with Tab, the arrow keys, Space and Enter in a sensible order. The zone is
the device's when the page's script runs, the owner's without it, and can be changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.bookings.event_types import save_event_type
from calsync.notify.when import clock_words
from calsync.store.db import Database
from calsync.sync.poller import Poller
from tests.support.accessibility import focused, page_problems, tab_to
from tests.support.browser import LiveServer, live_server
from tests.support.manage_shop import Shop
from tests.support.servers import ServerProcess
from tests.support.world import coaching

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
from playwright.sync_api import Browser, Page

from tests.e2e.test_book_browser import (
    PAGE_OFFER,
    Customer,
    browser_settings,
    chromium,
    package_starts,
    pick,
)

pytestmark = pytest.mark.slow
__all__ = ["chromium"]  # the module's browser, shared with the other booking page tests
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def shop(tmp_path: Path, radicale_server: ServerProcess, radicale_calendar: str) -> Iterator[Shop]:
    settings = browser_settings(tmp_path)
    db = Database(settings.database_url)
    db.migrate()
    shop = Shop(db, settings, radicale_calendar)
    save_event_type(db, coaching(booking_calendar_id=shop.calendar_id, page=PAGE_OFFER))
    Poller(db, settings).sync_now([shop.calendar_id])
    try:
        yield shop
    finally:
        db.dispose()


@pytest.fixture
def server(shop: Shop) -> Iterator[LiveServer]:
    with live_server(shop.settings, shop.db) as live:
        yield live


def fits(page: Page, step: str) -> None:
    assert page_problems(page) == {}, step


def press_enter_and_wait(page: Page) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_phone_user_books_a_package_with_the_keyboard_alone(
    chromium: Browser, server: LiveServer, scheme: str
) -> None:
    context = chromium.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        timezone_id="America/New_York",
        locale="en-US",
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{server.url}/b/coach")
        fits(page, "the owner's event types")
        tab_to(page, 'a[href$="/b/coach/coaching"]')
        press_enter_and_wait(page)

        fits(page, "the packages")
        tab_to(page, "input[name=package]")
        page.keyboard.press("ArrowDown")  # radios: the arrow keys choose
        assert page.locator("#package-3").is_checked()
        order = tab_to(page, "button.primary")
        assert [f["id"] for f in order] == ["tz", ""]  # the zone menu, then the button
        press_enter_and_wait(page)

        chosen: list[str] = []
        for number in (1, 2, 3):
            fits(page, f"the times of session {number}")
            tab_to(page, "input[name=pick][type=radio]")
            page.keyboard.press("Space")
            now = focused(page)
            assert now and now["type"] == "radio"
            assert page.locator(f'input[type=radio][value="{now["value"]}"]').is_checked()
            chosen.append(now["value"])
            tab_to(page, "button.primary")
            press_enter_and_wait(page)
        assert len(set(chosen)) == 3

        fits(page, "the details")
        tab_to(page, "#name")
        page.keyboard.type("Zoë Example")
        page.keyboard.press("Tab")
        assert (focused(page) or {})["id"] == "email"
        page.keyboard.type("zoe@example.org")
        order = tab_to(page, "button.primary")
        assert [f["id"] for f in order] == ["notes", ""]
        assert not [f for f in order if f["hidden"]]  # the honeypot is never reached
        press_enter_and_wait(page)

        assert page.locator("h2").inner_text() == "Your 3 sessions are confirmed"
        fits(page, "the result")
        tab_to(page, "#manage-link")
    finally:
        context.close()


def first_slot(page: Page) -> tuple[datetime, str]:
    radio = page.locator("input[name=pick][type=radio]").first
    label = page.locator(f'label[for="{radio.get_attribute("id")}"]').inner_text()
    return datetime.fromisoformat(radio.get_attribute("value") or ""), label.strip()


def test_the_zone_is_the_devices_changeable_and_the_owners_without_a_script(
    chromium: Browser, server: LiveServer
) -> None:
    chatham = ZoneInfo("Pacific/Chatham")  # +12:45/+13:45, not in the page's menu
    context = chromium.new_context(timezone_id=chatham.key, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{server.url}/b/coach/coaching")
        assert page.locator("#tz").input_value() == chatham.key
        page.get_by_role("button", name="Choose the times").click()
        start, label = first_slot(page)
        assert label == clock_words(start.astimezone(chatham))
        # Changed on the times step.
        page.locator("#tz").select_option("Europe/London")
        page.get_by_role("button", name="Show").click()
        start, label = first_slot(page)
        assert label == clock_words(start.astimezone(ZoneInfo("Europe/London")))
        assert "tz=Europe%2FLondon" in page.url
    finally:
        context.close()

    context = chromium.new_context(
        timezone_id=chatham.key, locale="en-US", java_script_enabled=False
    )
    page = context.new_page()
    try:
        page.goto(f"{server.url}/b/coach/coaching")
        assert page.locator("#tz").input_value() == "Europe/Berlin"  # the owner's
        page.get_by_role("button", name="Choose the times").click()
        start, label = first_slot(page)
        assert label == clock_words(start.astimezone(ZoneInfo("Europe/Berlin")))
    finally:
        context.close()


def test_a_time_taken_meanwhile_is_marked_the_others_kept_and_the_problem_focused(
    chromium: Browser, server: LiveServer, shop: Shop
) -> None:
    starts = package_starts()
    customer = Customer(chromium, "Pacific/Auckland")
    page = customer.page
    try:
        page.goto(f"{server.url}/b/coach/coaching")
        page.get_by_label("3 sessions: 120.00 EUR").check()
        page.get_by_role("button", name="Choose the times").click()
        for start in starts:
            pick(page, start)
            page.locator("button.primary").click()
        page.get_by_label("Your name").fill("Zoë Example")
        page.get_by_label("Your email address").fill("zoe@example.org")
        shop.book(starts[1], email="sam@example.org")  # someone else, meanwhile
        page.get_by_role("button", name="Book 3 sessions").click()

        problem = page.locator("#problem")
        assert "is not free any more" in problem.inner_text()
        assert page.evaluate("document.activeElement.id") == "problem"  # read out first
        chosen = page.locator("#chosen").inner_text()
        assert customer.span(starts[0]) in chosen and customer.span(starts[2]) in chosen
        taken = page.locator("#chosen li.taken")
        assert customer.span(starts[1]) in taken.inner_text() and "taken" in taken.inner_text()
        assert page_problems(page) == {}

        # Another time for that session, and the package is booked.
        later = starts[1] + timedelta(days=1)
        pick(page, later)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Your name").fill("Zoë Example")
        page.get_by_label("Your email address").fill("zoe@example.org")
        page.get_by_role("button", name="Book 3 sessions").click()
        assert page.locator("h2").inner_text() == "Your 3 sessions are confirmed"
        booked = page.locator("#booked").inner_text()
        for start in (starts[0], later, starts[2]):
            assert customer.span(start) in booked
    finally:
        customer.close(answered=(409,))
