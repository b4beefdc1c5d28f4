"""Request and response bodies of the bookings routes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path as FastApiPath
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from calsync.bookings.packages import MAX_SESSIONS
from calsync.input_rules import one_line
from calsync.policy.money import minor_text
from calsync.store.change_items import Times
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingSource,
    BookingStatus,
    Change,
    ChangeKind,
    ChangeStatus,
    Payment,
    PaymentKind,
    PaymentState,
    SessionStatus,
)
from calsync.web.schemas import (
    MAX_ID,
    Email,
    Instant,
    Request,
    Title,
    ZoneName,
)

# -- bookings -------------------------------------------------------------------------------------


def _event_type_key(value: Any) -> int | str:
    # A number is an id, a string a slug; true/false and 5.0 are neither.
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_ID:
            raise ValueError("no event type has that id")
        return value
    if isinstance(value, str) and value.strip():
        return one_line(value.strip())
    raise ValueError("give the event type's id (a number) or its slug (a string)")


def _session_start(value: Any) -> datetime:
    example = "e.g. 2026-12-01T09:00:00+01:00"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        one_line(value)
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"must be an ISO-8601 date and time, {example}") from None
    else:
        raise ValueError(f"must be a string holding an ISO-8601 date and time, {example}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"needs a UTC offset, {example}")
    return parsed


EventTypeKey = Annotated[
    int | str,
    PlainValidator(_event_type_key),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
# A booking's id in a path: random letters and digits, so a control character names nothing.
BookingId = Annotated[str, FastApiPath(), AfterValidator(one_line)]
SessionStart = Annotated[
    datetime,
    PlainValidator(_session_start),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class BookingCreate(Request):
    event_type: EventTypeKey = Field(
        description="The event type's id (a number) or slug (a string).", examples=["coaching"]
    )
    customer_name: Title
    customer_email: Email
    customer_timezone: ZoneName | None = Field(
        None,
        description="The customer's zone; session times are shown in it. Default: the "
        "event type's.",
    )
    starts: list[SessionStart] = Field(
        min_length=1,
        max_length=MAX_SESSIONS,
        description="One start per session, each an offered slot, with its UTC offset.",
        examples=[["2026-12-01T09:00:00+01:00", "2026-12-08T09:00:00+01:00"]],
    )
    stakeholders: list[Email] = Field(
        default_factory=list, description="People who hear of every change, by email."
    )
    payment_intent: str | None = Field(
        None,
        pattern=r"^pi_[A-Za-z0-9]{6,250}$",
        description="The Stripe PaymentIntent that paid for the package; cancellations are "
        "then refunded through Stripe per the policy.",
        examples=["pi_3Q0abcDEF"],
    )


class CustomerOut(BaseModel):
    name: str
    email: str
    timezone: str


class BookedSessionOut(BaseModel):
    id: int
    uid: str = Field(description="The iCalendar UID of the session's event, for its whole life.")
    position: int = Field(description="1-based place in the package.")
    start: Instant
    end: Instant
    status: SessionStatus
    sequence: int
    reschedule_count: int
    calendar_id: int | None
    href: str | None

    @classmethod
    def from_row(cls, row: BookedSession, zone: ZoneInfo) -> BookedSessionOut:
        return cls(
            id=row.id,
            uid=row.uid,
            position=row.position,
            start=row.start.astimezone(zone),
            end=row.end.astimezone(zone),
            status=row.status,
            sequence=row.sequence,
            reschedule_count=row.reschedule_count,
            calendar_id=row.connection_id,
            href=row.href,
        )


class BookingChangeOut(BaseModel):
    at: Instant
    actor: Actor
    action: str
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: BookingChange) -> BookingChangeOut:
        return cls(
            at=row.at,
            actor=row.actor,
            action=row.action.value,
            reason=row.reason,
            details=row.details,
        )


class SpanOut(BaseModel):
    start: Instant
    end: Instant


class ChangeItemOut(BaseModel):
    session_id: int
    position: int
    from_: SpanOut = Field(alias="from", serialization_alias="from")
    to: SpanOut | None = Field(description="null for a cancelled session.")
    applied: bool = Field(description="Whether the owner's calendar has it yet.")


class ChangeOut(BaseModel):
    id: int
    kind: ChangeKind
    status: ChangeStatus = Field(
        description="pending: not in the calendar yet (a worker retries); conflict: the owner "
        "changed the event meanwhile (``message`` says how)."
    )
    actor: Actor
    reason: str | None
    fee: str | None = Field(description="A reschedule fee, or for a cancel the refund.")
    message: str | None
    items: list[ChangeItemOut]
    created_at: Instant
    applied_at: Instant | None

    @classmethod
    def from_row(cls, change: Change, zone: ZoneInfo) -> ChangeOut:
        """The change with its times in ``zone`` (the customer's)."""
        items = [
            ChangeItemOut.model_validate(
                {
                    "session_id": item.session_id,
                    "position": item.position,
                    "from": _span(item.before, zone),
                    "to": _span(item.after, zone) if item.after else None,
                    "applied": item.applied,
                }
            )
            for item in change.items
        ]
        return cls(
            id=change.id,
            kind=change.kind,
            status=change.status,
            actor=change.actor,
            reason=change.reason,
            fee=change.fee,
            message=change.message,
            items=items,
            created_at=change.created_at,
            applied_at=change.applied_at,
        )


def _span(times: Times, zone: ZoneInfo) -> SpanOut:
    return SpanOut(start=times.start.astimezone(zone), end=times.end.astimezone(zone))


class BookingOut(BaseModel):
    """A booking as its owner sees it; session times are in the customer's zone. The API's
    ``GET /api/bookings/{id}`` body, and what ``calsync booking show --json`` prints."""

    id: str
    status: BookingStatus
    source: BookingSource
    title: str
    owner_id: int
    event_type_id: int | None
    customer: CustomerOut
    stakeholders: list[str]
    manage_url: str | None = Field(description="The customer's link; null once revoked.")
    link_expires_at: Instant | None
    version: int
    payment_intent: str | None = Field(
        None, description="The Stripe PaymentIntent that paid for it, if paid through calsync."
    )
    sessions: list[BookedSessionOut]
    history: list[BookingChangeOut]
    changes: list[ChangeOut] = Field(
        default_factory=list, description="Its recorded changes, oldest first."
    )
    created_at: Instant

    @classmethod
    def from_row(
        cls, row: Booking, manage_url: str | None, changes: Sequence[Change] = ()
    ) -> BookingOut:
        zone = ZoneInfo(row.customer_timezone)
        return cls(
            id=row.id,
            status=row.status,
            source=row.source,
            title=row.title,
            owner_id=row.owner_id,
            event_type_id=row.event_type_id,
            customer=CustomerOut(
                name=row.customer_name, email=row.customer_email, timezone=row.customer_timezone
            ),
            stakeholders=list(row.stakeholders),
            manage_url=manage_url,
            link_expires_at=row.token_expires_at if manage_url else None,
            version=row.version,
            payment_intent=row.payment_intent,
            sessions=[BookedSessionOut.from_row(s, zone) for s in row.sessions],
            history=[BookingChangeOut.from_row(h) for h in row.history],
            changes=[ChangeOut.from_row(c, zone) for c in changes],
            created_at=row.created_at,
        )


class ManageUrlOut(BaseModel):
    manage_url: str


class SlotTakenOut(BaseModel):
    detail: str = Field(description="What happened and what to do.")
    start: Instant = Field(description="The start that is no longer free, as it was given.")
    session_id: int | None = Field(
        None, description="When moving sessions: the session whose new start was taken."
    )


class PaymentOut(BaseModel):
    """A charge (a reschedule fee) or a refund through Stripe; ``calsync payments list --json``
    prints the same fields."""

    id: int
    kind: PaymentKind
    state: PaymentState = Field(
        description="open: waiting (for the card, or to be sent to Stripe); failed: Stripe "
        "refused the refund (``message`` says why): pay it back by hand."
    )
    amount_minor: int = Field(description="In the currency's smallest unit (cents).")
    amount: str = Field(description="The same amount in words, e.g. '12.50 EUR'.")
    currency: str
    booking_id: str
    change_id: int | None
    stripe_id: str | None = Field(description="pi_… of a charge, re_… of a refund.")
    payment_intent: str | None
    message: str | None
    created_at: Instant

    @classmethod
    def from_row(cls, row: Payment) -> PaymentOut:
        return cls(
            id=row.id,
            kind=row.kind,
            state=row.state,
            amount_minor=row.amount,
            amount=minor_text(row.amount, row.currency),
            currency=row.currency,
            booking_id=row.booking_id,
            change_id=row.change_id,
            stripe_id=row.stripe_id,
            payment_intent=row.payment_intent,
            message=row.message,
            created_at=row.created_at,
        )
