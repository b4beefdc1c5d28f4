"""Bodies of the admin API's reschedule requests and confirmation resends
(``/api/bookings/{id}/reschedule-requests``, ``/api/bookings/{id}/resend-confirmation``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from calsync.bookings.packages import MAX_SESSIONS
from calsync.bookings.reschedule_requests import DEFAULT_DAYS, MAX_DAYS, RequestState, RequestView
from calsync.input_rules import MultiLine
from calsync.web.schemas import BodyId, Request


class RescheduleRequestIn(Request):
    session_ids: list[BodyId] = Field(
        min_length=1, max_length=MAX_SESSIONS, description="The sessions to choose new times for."
    )
    message: MultiLine | None = Field(
        None, max_length=2000, description="Your words to the customer, shown in the email."
    )
    days: int = Field(
        DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="How many days the request stays open."
    )

    @field_validator("session_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("names a session twice")
        return ids


class RescheduleRequestCreated(BaseModel):
    id: int
    sessions: list[int] = Field(description="The positions of the sessions (1 = first).")
    expires_at: datetime
    url: str = Field(
        description="The customer's link, as emailed to them (a key to the booking: keep it "
        "between you and the customer)."
    )


class RescheduleRequestOut(BaseModel):
    id: int
    sessions: list[int]
    message: str | None
    created_at: datetime
    expires_at: datetime
    state: RequestState
    change_id: int | None = Field(description="The change the customer made with it, once used.")

    @classmethod
    def from_view(cls, view: RequestView) -> RescheduleRequestOut:
        return cls(
            id=view.id,
            sessions=list(view.positions),
            message=view.message,
            created_at=view.created_at,
            expires_at=view.expires_at,
            state=view.state,
            change_id=view.change_id,
        )


class ConfirmationSent(BaseModel):
    sent_to: str = Field(description="The customer's address the confirmation is queued to.")
