"""Request and response bodies of the admin API's changes: an owner reschedules or cancels
sessions of a booking (``POST /api/bookings/{id}/reschedule`` and ``/cancel``).

Kept apart from ``schemas.py`` (which holds everything else) to keep both readable; the field
types are the same.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator

from calsync.bookings.changes import ChangeOutcome
from calsync.bookings.packages import MAX_SESSIONS
from calsync.input_rules import Count, MultiLine, OneLine
from calsync.web.api.booking_schemas import BookingOut, ChangeOut, SessionStart
from calsync.web.schemas import BodyId, Request

IdempotencyKey = Field(
    None,
    min_length=1,
    max_length=100,
    description="Send the same key again (with the same body) to get the first answer back "
    "instead of a second change.",
)
ExpectedVersion = Field(
    None,
    ge=1,
    description="The booking's version as you read it; the change is refused (409) when the "
    "booking changed since.",
)
Reason = Field(None, max_length=2000, description="Shown to the customer and stakeholders.")


def _distinct(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise ValueError("names a session twice")
    return ids


class MoveIn(Request):
    session_id: BodyId
    start: SessionStart = Field(description="The new start, with its UTC offset.")


class RescheduleIn(Request):
    moves: list[MoveIn] = Field(min_length=1, max_length=MAX_SESSIONS)
    reason: MultiLine | None = Reason
    force: bool = Field(
        False,
        description="Move even onto busy time, outside the working hours, inside the notice "
        "or off the slot grid. Without it such a move is refused (422) with the reason.",
    )
    idempotency_key: OneLine | None = IdempotencyKey
    expected_version: Count | None = ExpectedVersion

    @field_validator("moves")
    @classmethod
    def _one_move_per_session(cls, moves: list[MoveIn]) -> list[MoveIn]:
        _distinct([m.session_id for m in moves])
        return moves


class CancelIn(Request):
    session_ids: list[BodyId] = Field(min_length=1, max_length=MAX_SESSIONS)
    reason: MultiLine | None = Reason
    idempotency_key: OneLine | None = IdempotencyKey
    expected_version: Count | None = ExpectedVersion

    @field_validator("session_ids")
    @classmethod
    def _each_once(cls, ids: list[int]) -> list[int]:
        return _distinct(ids)


class ChangeResultOut(BaseModel):
    change: ChangeOut
    booking: BookingOut
    replayed: bool = Field(description="True when this answers an idempotency key seen before.")


def change_result(outcome: ChangeOutcome, manage_url: str | None) -> ChangeResultOut:
    """The change with its times in the customer's zone, and the booking as it is now."""
    change, booking = outcome.change, outcome.booking
    return ChangeResultOut(
        change=ChangeOut.from_row(change, ZoneInfo(booking.customer_timezone)),
        booking=BookingOut.from_row(booking, manage_url),
        replayed=outcome.replayed,
    )
