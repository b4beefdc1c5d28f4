"""Benchmark: ``free_slots`` over a 60-day window against 10,000 busy spans.

Two scenarios, each 5 calendars × 2,000 events (seeded, so every run sees the same data):

dense  all 10,000 events inside the 60-day window, one every ~43 minutes per calendar (10–30
       minutes long): a stress test. No calendar ever leaves the 50 minutes a 30-minute slot
       with its 10-minute buffers needs, so every candidate is blocked and the figure is the
       cost of proving that.
year   the 10,000 events spread over a year (one every ~4.4 hours per calendar), of which the
       60-day window sees about a sixth: the shape of a year of expanded calendars.

The five calendars' events arrive shuffled together, as merged provider results would, so the
engine pays for a full sort. The baseline is the obvious method: every candidate slot against
every span (stopping at the first conflict). Both share ``working_periods``, so the ratio is
about the conflict check alone. Figures only: nothing here asserts anything about speed.

Run: ``python -m bench availability``
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from time import perf_counter

from calsync.policy.availability import free_slots, working_periods
from calsync.policy.types import AvailabilityRules, Slot, Span, TimeRange

SEED = 20260302
CALENDARS = 5
EVENTS_PER_CALENDAR = 2_000
CALLS = 20
BASELINE_CALLS = 3
WINDOW = timedelta(days=60)
MINUTE = timedelta(minutes=1)

# Monday 08:00 in Berlin; the window crosses the change to summer time on 29 March.
NOW = datetime(2026, 3, 2, 7, tzinfo=UTC)
WORKDAY = (TimeRange(time(9), time(17)),)
SATURDAY = (TimeRange(time(10), time(14)),)
RULES = AvailabilityRules(
    timezone="Europe/Berlin",
    duration=30 * MINUTE,
    slot_step=15 * MINUTE,
    weekly_hours={0: WORKDAY, 1: WORKDAY, 2: WORKDAY, 3: WORKDAY, 4: WORKDAY, 5: SATURDAY},
    buffer_before=10 * MINUTE,
    buffer_after=10 * MINUTE,
    minimum_notice=2 * 60 * MINUTE,
    horizon=WINDOW,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    spread: timedelta  # the events of each calendar fill this much time from NOW
    shortest: int  # event length in minutes, drawn uniformly in 5-minute steps
    longest: int


SCENARIOS = (
    Scenario("dense", spread=WINDOW, shortest=10, longest=30),
    Scenario("year", spread=timedelta(days=365), shortest=15, longest=120),
)


def calendar_events(rng: random.Random, calendar: int, scenario: Scenario) -> list[Span]:
    """One calendar: events one after another, each inside its own share of the spread."""
    share = scenario.spread / EVENTS_PER_CALENDAR
    events = []
    for n in range(EVENTS_PER_CALENDAR):
        length = rng.randrange(scenario.shortest, scenario.longest + 1, 5) * MINUTE
        room = max(share - length, timedelta(0))
        begin = NOW + n * share + rng.random() * room
        begin = begin.replace(second=0, microsecond=0)
        events.append(Span(begin, begin + length, key=f"cal{calendar}-{n}"))
    return events


def busy_spans(scenario: Scenario) -> list[Span]:
    rng = random.Random(SEED)
    spans = [e for c in range(CALENDARS) for e in calendar_events(rng, c, scenario)]
    rng.shuffle(spans)
    return spans


def per_slot_baseline(rules: AvailabilityRules, busy: Sequence[Span], now: datetime) -> list[Slot]:
    """The straightforward way: each candidate slot checked against each span."""
    earliest, latest = now + rules.minimum_notice, now + rules.horizon
    taken = [s for s in busy if s.start < s.end]
    free = set()
    for period in working_periods(rules, earliest, latest):
        start = period.start
        while start + rules.duration <= period.end:
            end = start + rules.duration
            conflict = any(
                start - rules.buffer_before < span.end and end + rules.buffer_after > span.start
                for span in taken
            )
            if start >= earliest and end <= latest and not conflict:
                free.add(start)
            start += rules.slot_step
    return [Slot(s, s + rules.duration) for s in sorted(free)]


def engine(busy: Sequence[Span]) -> list[Slot]:
    return free_slots(RULES, busy=busy, booked=[], now=NOW, start=NOW, end=NOW + WINDOW)


def median_ms(call: Callable[[], object], times: int) -> float:
    durations = []
    for _ in range(times):
        started = perf_counter()
        call()
        durations.append(perf_counter() - started)
    return statistics.median(durations) * 1000


def scenario_rows(scenario: Scenario) -> list[tuple[str, str]]:
    busy = busy_spans(scenario)
    in_window = sum(1 for s in busy if s.start < NOW + WINDOW)
    slots = engine(busy)
    baseline = per_slot_baseline(RULES, busy, NOW)
    engine_ms = median_ms(lambda: engine(busy), CALLS)
    baseline_ms = median_ms(lambda: per_slot_baseline(RULES, busy, NOW), BASELINE_CALLS)
    name = scenario.name
    return [
        (f"{name}: busy spans (in window)", f"{len(busy):,} ({in_window:,})"),
        (f"{name}: free slots", f"{len(slots):,}"),
        (f"{name}: free_slots median of {CALLS}", f"{engine_ms:.2f} ms"),
        (f"{name}: per-slot baseline median of {BASELINE_CALLS}", f"{baseline_ms:.0f} ms"),
        (f"{name}: speed-up", f"{baseline_ms / engine_ms:.0f}×"),
        (f"{name}: same slots as baseline", "yes" if slots == baseline else "NO (a bug)"),
    ]


def run() -> list[tuple[str, str]]:
    """Rows of (label, figure) for every scenario."""
    candidates = sum(
        int((p.end - p.start - RULES.duration) / RULES.slot_step) + 1
        for p in working_periods(RULES, NOW + RULES.minimum_notice, NOW + WINDOW)
    )
    rows = [
        ("window", "60 days, Europe/Berlin, Mon–Fri 09–17 + Sat 10–14"),
        ("slot", "30 min every 15 min, buffers 10/10 min"),
        ("candidate slots", f"{candidates:,}"),
        # The floor: building the days and every slot, with nothing to check against.
        (
            f"no busy time: free_slots median of {CALLS}",
            f"{median_ms(lambda: engine([]), CALLS):.2f} ms",
        ),
    ]
    for scenario in SCENARIOS:
        rows += scenario_rows(scenario)
    return rows
