"""Early expansion (``mirror.EarlyExpansion``): items expanded over a longer window while a
first sync reads the rest, then narrowed to the poll's window, must equal ``expand_item`` over
that window, for every object of the busy-time fixtures and windows that cut through them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from calsync.calendars.base import CalendarItem, Interval
from calsync.calendars.ical.busy import BusyRules
from calsync.sync import mirror

FIXTURES = Path(__file__).parents[1] / "calendars" / "fixtures" / "ics"
RULES = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({"owner@example.org"}))
OUTER = Interval(datetime(2023, 12, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
WINDOWS = [
    Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)),
    Interval(datetime(2024, 3, 5, 14, 30, tzinfo=UTC), datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
    Interval(datetime(2024, 3, 21, tzinfo=UTC), datetime(2024, 4, 9, tzinfo=UTC)),
    OUTER,
]


def items() -> list[CalendarItem]:
    return [
        CalendarItem(f"/cal/{path.name}", f'"{path.stem}"', path.read_text(encoding="utf-8"))
        for path in sorted(FIXTURES.glob("*.ics"))
    ]


@pytest.mark.parametrize("window", WINDOWS, ids=["march", "cut-mid-event", "spring", "whole"])
def test_narrowed_early_expansion_is_the_expansion_over_the_window(window: Interval) -> None:
    arrived = items()
    early = mirror.EarlyExpansion(OUTER, RULES)
    early.arrived(arrived)
    narrowed = [early.expand(item, window, RULES, calendar="test") for item in arrived]
    assert narrowed == [mirror.expand_item(i, window, RULES, calendar="test") for i in arrived]


def test_narrowing_is_what_makes_them_equal() -> None:
    # Not a vacuous check: over the whole early window, the fixtures have busy time outside
    # the March window, and intervals that cross the edges of the cut one.
    window = WINDOWS[0]
    outside = [
        interval
        for item in items()
        for interval in mirror.expand_item(item, OUTER, RULES, calendar="test").intervals
        if interval.end <= window.start or interval.start >= window.end
    ]
    assert outside
    cut = WINDOWS[1]
    crossing = [
        interval
        for item in items()
        for interval in mirror.expand_item(item, OUTER, RULES, calendar="test").intervals
        if interval.start < cut.start < interval.end or interval.start < cut.end < interval.end
    ]
    assert crossing


def test_an_item_or_window_it_did_not_expand_is_expanded_again() -> None:
    march = WINDOWS[0]
    wider = Interval(march.start, OUTER.end)
    # The fixture with the most busy time after March: what a wrong reuse would lose.
    item = max(
        items(),
        key=lambda i: len(
            mirror.expand_item(i, Interval(march.end, OUTER.end), RULES, calendar="t").intervals
        ),
    )
    early = mirror.EarlyExpansion(march, RULES)
    early.arrived([item])
    expected = mirror.expand_item(item, wider, RULES, calendar="t")
    assert any(interval.start >= march.end for interval in expected.intervals)
    assert early.expand(item, wider, RULES, calendar="t") == expected
    # Another item at the same href (changed meanwhile) is not the one expanded early.
    edited = CalendarItem(
        item.href, '"edited"', item.data.replace("END:VCALENDAR", "X-EDITED:1\r\nEND:VCALENDAR")
    )
    assert early.expand(edited, march, RULES, calendar="t").data == edited.data
