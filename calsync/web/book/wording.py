"""The booking page's refusals in words: why a chosen time cannot be booked, for the customer
(the engine's ``SlotTaken.why``; the CLI and the API word the same refusal themselves)."""

from __future__ import annotations

from datetime import datetime

from calsync.policy.refusal import Why

KEPT = "Your other times are kept: please choose another time for this session."

# A time taken while the customer was choosing, as opposed to one that was never offered.
TAKEN = frozenset({Why.BUSY, Why.BOOKED, Why.FULL_DAY})

_NEVER_OFFERED = {
    Why.NOTICE: "is too soon to be booked",
    Why.HORIZON: "is further ahead than bookings are taken",
    Why.HOURS: "is outside the hours offered",
    Why.GRID: "is not one of the offered start times",
}


def taken_words(when: str) -> str:
    return f"{when} is not free any more (someone may have just booked it). {KEPT}"


def not_offered_words(when: str, why: Why | None, start: datetime, now: datetime) -> str:
    if start <= now:
        reason = "is in the past"
    else:
        reason = (
            _NEVER_OFFERED.get(why, "is not one of the offered times")
            if why
            else ("is not one of the offered times")
        )
    return f"{when} cannot be booked: it {reason}. {KEPT}"


def spacing_words(problem: str) -> str:
    return f"That time cannot be chosen: {problem}."
