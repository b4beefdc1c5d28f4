"""The change engine's plan on plain values: no database, no calendar, no route. Each refusal
is typed (its kind, the field at fault, the session and time), for each face to word."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from calsync.bookings.plan import (
    Ask,
    BookingFacts,
    ChangeField,
    Earlier,
    Plan,
    Refusal,
    RefusalKind,
    Replay,
    SessionFacts,
    Taken,
    plan,
)
from calsync.policy.change_policy import ActionRule, ChangePolicy, Fee, FeeKind, ReasonRule
from calsync.policy.refusal import Why
from calsync.policy.types import AvailabilityRules, Span, TimeRange
from calsync.store.change_items import Times
from calsync.store.models import Actor, ChangeKind

HOUR = timedelta(hours=1)
NOW = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # a Monday, 08:00 UTC
RULES = AvailabilityRules(
    timezone="UTC",
    duration=HOUR,
    slot_step=HOUR,
    weekly_hours={day: (TimeRange(time(9), time(17)),) for day in range(5)},
)


def at(day: int, hour: int) -> datetime:
    return NOW.replace(hour=hour) + timedelta(days=day)


def session(sid: int, start: datetime, **kwargs: object) -> SessionFacts:
    values: dict[str, object] = {"cancelled": False, "reschedule_count": 0} | kwargs
    return SessionFacts(
        sid,
        sid,
        f"uid-{sid}",
        Times(start, start + HOUR),
        bool(values["cancelled"]),
        int(str(values["reschedule_count"])),
    )


def booking(policy: ChangePolicy | None = None) -> BookingFacts:
    return BookingFacts(
        version=3,
        active=True,
        price=Decimal("200"),
        policy=policy or ChangePolicy(reschedule_fee=Fee(FeeKind.PERCENT, Decimal(10))),
        sessions=(session(1, at(1, 9)), session(2, at(2, 9))),
        has_event_type=True,
    )


def move(
    *pairs: tuple[int, datetime],
    actor: Actor = Actor.CUSTOMER,
    force: bool = False,
    expected_version: int | None = None,
) -> Ask:
    return Ask(
        ChangeKind.RESCHEDULE,
        actor,
        dict(pairs),
        force=force,
        expected_version=expected_version,
    )


def refusal(answer: Plan | Replay | Refusal) -> Refusal:
    assert isinstance(answer, Refusal), answer
    return answer


TAKEN = Taken(RULES, busy=(), booked=(), event_type="coaching")


def test_moved_sessions_that_overlap_are_refused_naming_both() -> None:
    ask = move((1, at(3, 10)), (2, at(3, 10) + timedelta(minutes=30)))
    refused = refusal(plan(booking(), ask, NOW, taken=TAKEN))
    assert refused.kind is RefusalKind.OVERLAP and refused.field is ChangeField.STARTS
    assert (refused.session_id, refused.other_session_id) == (1, 2)


def test_two_sessions_on_one_slot_are_refused() -> None:
    refused = refusal(plan(booking(), move((1, at(3, 10)), (2, at(3, 10))), NOW))
    assert refused.kind is RefusalKind.SAME_TIME and refused.field is ChangeField.STARTS


def test_a_past_time_is_refused_with_the_session_and_time() -> None:
    past = NOW - timedelta(days=2)
    refused = refusal(plan(booking(), move((2, past)), NOW))
    assert refused.kind is RefusalKind.PAST and refused.field is ChangeField.STARTS
    assert (refused.session_id, refused.position, refused.at) == (2, 2, past)


def test_a_slot_not_offered_is_refused_with_the_rule_it_breaks() -> None:
    busy = Taken(RULES, busy=(Span(at(3, 10), at(3, 11)),), booked=(), event_type="coaching")
    refused = refusal(plan(booking(), move((1, at(3, 10))), NOW, taken=busy))
    assert refused.kind is RefusalKind.TAKEN and refused.why is Why.BUSY
    assert (refused.session_id, refused.at) == (1, at(3, 10))
    evening = refusal(plan(booking(), move((1, at(3, 20))), NOW, taken=TAKEN))
    assert evening.kind is RefusalKind.TAKEN and evening.why is Why.HOURS


def test_the_owner_is_told_the_rule_unless_forced_and_never_charged() -> None:
    evening = move((1, at(3, 20)), actor=Actor.OWNER)
    refused = refusal(plan(booking(), evening, NOW, taken=TAKEN))
    assert refused.kind is RefusalKind.NOT_OFFERED and refused.why is Why.HOURS
    assert refused.zone == "UTC" and refused.event_type == "coaching"
    forced = plan(booking(), move((1, at(3, 20)), actor=Actor.OWNER, force=True), NOW, taken=TAKEN)
    assert isinstance(forced, Plan) and forced.fee is None and not forced.counts_allowance


def test_two_moves_do_not_block_themselves_but_hold_their_new_times() -> None:
    # Session 1 moves onto session 2's old time while session 2 moves away: both offered.
    ours = (Span(at(1, 9), at(1, 10), "uid-1"), Span(at(2, 9), at(2, 10), "uid-2"))
    taken = Taken(RULES, busy=(), booked=ours, event_type="coaching")
    swapped = plan(booking(), move((1, at(2, 9)), (2, at(3, 9))), NOW, taken=taken)
    assert isinstance(swapped, Plan)
    assert [(i.session_id, i.after and i.after.start) for i in swapped.items] == [
        (1, at(2, 9)),
        (2, at(3, 9)),
    ]
    assert swapped.fee == Decimal("20.00")  # 10% of 100 per session, two sessions
    # With a daily cap of one, the second move may not join the first's new day.
    capped = Taken(replace(RULES, daily_cap=1), busy=(), booked=ours, event_type="coaching")
    full = refusal(plan(booking(), move((1, at(3, 9)), (2, at(3, 11))), NOW, taken=capped))
    assert (full.kind, full.session_id, full.why) == (RefusalKind.TAKEN, 2, Why.FULL_DAY)


def test_a_missing_required_reason_is_refused_on_the_reason_field() -> None:
    policy = ChangePolicy(cancel=ActionRule(reason=ReasonRule.REQUIRED))
    ask = Ask(ChangeKind.CANCEL, Actor.CUSTOMER, {1: None}, reason="   ")
    refused = refusal(plan(booking(policy), ask, NOW))
    assert refused.kind is RefusalKind.REASON_REQUIRED and refused.field is ChangeField.REASON
    given = plan(booking(policy), Ask(ChangeKind.CANCEL, Actor.CUSTOMER, {1: None}, "ill"), NOW)
    assert isinstance(given, Plan) and given.items[0].after is None


def test_a_replay_with_other_content_is_refused_and_the_same_is_answered() -> None:
    first = move((1, at(3, 10)))
    earlier = Earlier(change_id=7, fingerprint=first.fingerprint())
    assert plan(booking(), first, NOW, earlier=earlier) == Replay(7)
    other = move((1, at(3, 11)))
    assert refusal(plan(booking(), other, NOW, earlier=earlier)).kind is (
        RefusalKind.REPLAY_MISMATCH
    )


@pytest.mark.parametrize(
    ("ask", "kind", "field"),
    [
        (move(), RefusalKind.NO_SESSIONS, ChangeField.SESSIONS),
        (move((9, at(3, 10))), RefusalKind.NOT_IN_BOOKING, ChangeField.SESSIONS),
        (move((1, at(3, 10)), expected_version=2), RefusalKind.STALE, None),
        (move((1, at(3, 10).replace(tzinfo=None))), RefusalKind.NO_OFFSET, ChangeField.STARTS),
    ],
)
def test_other_refusals_are_typed(ask: Ask, kind: RefusalKind, field: ChangeField | None) -> None:
    refused = refusal(plan(booking(), ask, NOW, taken=TAKEN))
    assert (refused.kind, refused.field) == (kind, field)
