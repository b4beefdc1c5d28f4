"""SQLAlchemy models: owners, their calendar connections, and the mirror of those calendars.

The mirror keeps every remote item's iCalendar text (so busy time can be re-expanded when the
horizon moves, without asking the server again) and the busy intervals expanded from it.
All datetimes are stored as UTC and come back as aware UTC datetimes on both databases.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The states live in calsync.states (light, for the CLI's options); re-exported here because
# they are the columns' types.
from calsync.states import AdoptionRule as AdoptionRule
from calsync.states import AllDayMode as AllDayMode
from calsync.states import CalendarRole as CalendarRole
from calsync.states import CancelMode as CancelMode
from calsync.states import OutboxStatus as OutboxStatus
from calsync.store.change_items import ChangeItem, ChangeItems


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite otherwise drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def _enum(cls: type[StrEnum]) -> Enum:
    # Stored as their string values, without native PostgreSQL enum types (easy migrations).
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class ProviderKind(StrEnum):
    CALDAV = "caldav"
    GOOGLE = "google"


class ConnectionStatus(StrEnum):
    NEW = "new"  # never synced yet
    OK = "ok"
    FAILING = "failing"  # the last poll failed; retried with backoff
    AUTH_FAILED = "auth_failed"  # credentials refused; retried rarely, the owner must act
    # The OAuth grant is gone: not polled again until the owner connects the calendar again.
    NEEDS_RECONNECT = "needs_reconnect"


def owner_slug(email: str, taken: Collection[str]) -> str:
    """The booking page's owner slug: the email's local part in lower-case letters, digits and
    dashes, with ``-2``, ``-3``… when another owner has it (``coach@a.org`` → ``coach``)."""
    local = email.strip().lower().split("@", 1)[0]
    base = re.sub(r"[^a-z0-9]+", "-", local).strip("-")[:90] or "owner"
    slug, number = base, 1
    while slug in taken:
        number += 1
        slug = f"{base}-{number}"
    return slug


def owner_page_url(base_url: str, owner: Owner) -> str:
    """The booking page listing the owner's public event types: ``<base_url>/b/<slug>``."""
    return f"{base_url.rstrip('/')}/b/{owner.slug}"


class Owner(Base):
    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # The booking page's address /b/<slug>: from the email's local part, made unique.
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    calendars: Mapped[list[CalendarConnection]] = relationship(back_populates="owner")


class CalendarConnection(Base):
    """One remote calendar of an owner, and the state of its sync."""

    __tablename__ = "calendar_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    provider: Mapped[ProviderKind] = mapped_column(_enum(ProviderKind))
    url: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str | None] = mapped_column(String(200))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    role: Mapped[CalendarRole] = mapped_column(_enum(CalendarRole), default=CalendarRole.CONFLICTS)
    timezone: Mapped[str | None] = mapped_column(String(64))
    all_day: Mapped[AllDayMode] = mapped_column(_enum(AllDayMode), default=AllDayMode.FOLLOW_TRANSP)
    # Adoption: which of the owner's existing events become bookings (off until turned on).
    adopt: Mapped[AdoptionRule] = mapped_column(
        _enum(AdoptionRule), default=lambda: AdoptionRule.OFF
    )
    adopt_category: Mapped[str | None] = mapped_column(String(200))
    adopt_event_type_id: Mapped[int | None] = mapped_column(Integer)
    # Whether an adopted booking's customer is emailed their confirmation with the link.
    adopt_email_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_mode: Mapped[CancelMode] = mapped_column(_enum(CancelMode), default=CancelMode.MARK)

    cursor: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ConnectionStatus] = mapped_column(
        _enum(ConnectionStatus), default=ConnectionStatus.NEW
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The window the stored busy intervals were expanded over; re-expanded as time moves on.
    expanded_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expanded_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[Owner] = relationship(back_populates="calendars")

    __table_args__ = (Index("ix_calendar_connections_due", "next_poll_at", "lease_until"),)


class MirroredEvent(Base):
    """One remote item (a VCALENDAR with one UID) as last seen."""

    __tablename__ = "mirrored_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE")
    )
    href: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(Text)
    uid: Mapped[str | None] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)
    # Why the item could not be read (it then contributes no busy time); None when fine.
    problem: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("connection_id", "href"),)


class MirrorFollowUp(Base):
    """An item a customer's request stored in the mirror (or removed from it) that the worker
    has yet to look at for the owner's moves and for adoption: the request-time refresh stores
    the mirror and nothing else, and its cursor moved past the item (``sync.fresh_busy``)."""

    __tablename__ = "mirror_follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE"), index=True
    )
    href: Mapped[str] = mapped_column(Text)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class BusyInterval(Base):
    __tablename__ = "busy_intervals"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("mirrored_events.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE")
    )
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_busy_intervals_connection_start", "connection_id", "start"),
        Index("ix_busy_intervals_event", "event_id"),
    )


class SyncOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    LEASE_LOST = "lease_lost"  # another worker took the calendar over; our result was dropped


class SyncRun(Base):
    """One poll of one calendar by one worker: for operators, and to prove leases work."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE"), index=True
    )
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[SyncOutcome] = mapped_column(_enum(SyncOutcome))
    full: Mapped[bool] = mapped_column(default=False)
    upserted: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


event_type_conflicts = Table(
    "event_type_conflicts",
    Base.metadata,
    Column("event_type_id", ForeignKey("event_types.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "connection_id",
        ForeignKey("calendar_connections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
)


class EventType(Base):
    """What an owner sells and when: the rules availability is computed from, and the
    cancel/reschedule policy (stored as plain data, see ``policy.change_policy``)."""

    __tablename__ = "event_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    slot_step_minutes: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    # {"mon": [["09:00", "17:00"]], ...} and {"2026-12-24": []} (see policy.hours)
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    date_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    minimum_notice_minutes: Mapped[int] = mapped_column(Integer, default=0)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    booking_calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="SET NULL")
    )
    price: Mapped[str] = mapped_column(String(32), default="0")  # a decimal, as text
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The public booking page's offer (``policy.packages``): on/off, packages, spacing.
    booking_page: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[Owner] = relationship()
    # Empty means: every calendar of the owner whose role is conflicts or both.
    conflict_calendars: Mapped[list[CalendarConnection]] = relationship(
        secondary=event_type_conflicts
    )


class BookingStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"  # every session is cancelled
    FAILED = "failed"  # its events could not be written; it holds no time


class BookingSource(StrEnum):
    BOOKED = "booked"  # made through calsync (CLI, API)
    ADOPTED = "adopted"  # an event the owner already had, taken over by an adoption rule


class SessionStatus(StrEnum):
    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


class Actor(StrEnum):
    CUSTOMER = "customer"
    OWNER = "owner"  # through the CLI or the admin API
    OWNER_CALENDAR = "owner_calendar"  # seen by the poller in the owner's calendar
    SYSTEM = "system"


class Booking(Base):
    """A customer's package of sessions of one event type."""

    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # stable, random, not secret
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    event_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("event_types.id", ondelete="SET NULL")
    )
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_timezone: Mapped[str] = mapped_column(String(64))
    stakeholders: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(String(200))
    # Snapshots taken when the booking was made: later edits of the event type don't apply.
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    price: Mapped[str] = mapped_column(String(32), default="0")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[BookingStatus] = mapped_column(
        _enum(BookingStatus), default=BookingStatus.ACTIVE
    )
    source: Mapped[BookingSource] = mapped_column(
        _enum(BookingSource), default=BookingSource.BOOKED
    )
    version: Mapped[int] = mapped_column(Integer, default=1)  # compare-and-swap on changes
    # The manage link: only its hash is used to find the booking; the token itself is kept
    # encrypted so the owner can be shown the link again.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The booking page's submit key: a second submit of one form finds this booking.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    notes: Mapped[str | None] = mapped_column(Text)
    # The Stripe PaymentIntent (pi_…) that paid for the booking, when it was paid through
    # calsync: cancellations are refunded against it.
    payment_intent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[Owner] = relationship()
    sessions: Mapped[list[BookedSession]] = relationship(
        back_populates="booking", order_by="BookedSession.position", cascade="all, delete-orphan"
    )
    history: Mapped[list[BookingChange]] = relationship(
        back_populates="booking", order_by="BookingChange.id", cascade="all, delete-orphan"
    )


class BookedSession(Base):
    """One session of a booking, and where its event lives in the owner's calendar."""

    __tablename__ = "booked_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)  # 1-based place in the package
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus), default=SessionStatus.BOOKED
    )
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # of the invites we send
    # The SEQUENCE of the event as calsync last wrote it; a poll that returns an older one
    # read the calendar before our write landed.
    calendar_sequence: Mapped[int] = mapped_column(Integer, default=0)
    reschedule_count: Mapped[int] = mapped_column(Integer, default=0)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="SET NULL")
    )
    href: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)

    booking: Mapped[Booking] = relationship(back_populates="sessions")

    __table_args__ = (Index("ix_booked_sessions_event", "connection_id", "href"),)


class HistoryAction(StrEnum):
    """What a line of a booking's history records."""

    BOOKED = "booked"
    FAILED = "failed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    RELINKED = "relinked"
    LINK_REVOKED = "link_revoked"
    ADOPTED = "adopted"
    MOVED_BY_OWNER = "moved_by_owner"
    DELETED_BY_OWNER = "deleted_by_owner"
    CANCELLED_BY_OWNER = "cancelled_by_owner"
    RESCHEDULE_REQUESTED = "reschedule_requested"  # the owner asked the customer to move
    RESCHEDULE_REQUEST_REVOKED = "reschedule_request_revoked"
    CONFIRMATION_RESENT = "confirmation_resent"
    PAID = "paid"  # a reschedule fee paid through Stripe (details: amount, payment id)
    REFUNDED = "refunded"  # money paid back through Stripe (details: amount, refund id)
    REFUND_FAILED = "refund_failed"  # Stripe refused a refund: the owner pays it back by hand


class BookingChange(Base):
    """The history of a booking: who did what, when, and why."""

    __tablename__ = "booking_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("booked_sessions.id", ondelete="SET NULL")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[Actor] = mapped_column(_enum(Actor))
    # A plain string column (no CHECK constraint), so no migration: the values above fit it.
    action: Mapped[HistoryAction] = mapped_column(
        Enum(
            HistoryAction,
            native_enum=False,
            create_constraint=False,
            length=40,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    booking: Mapped[Booking] = relationship(back_populates="history")


class ChangeKind(StrEnum):
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"


class ChangeStatus(StrEnum):
    PENDING = "pending"  # recorded; the calendar has not (fully) taken it yet
    APPLIED = "applied"
    CONFLICT = "conflict"  # the owner changed the event first; we stopped
    # A customer's reschedule with a fee: recorded, its new times held (``PaymentHold``), the
    # sessions untouched until Stripe says the fee is paid; then it becomes PENDING.
    AWAITING_PAYMENT = "awaiting_payment"
    UNPAID = "unpaid"  # the hold ran out (or Stripe was away) before the fee was paid


class Change(Base):
    """One reschedule or cancel of some sessions of a booking, recorded before it is applied.

    ``items`` lists each session touched (``ChangeItem``, stored as JSON). The idempotency key
    makes a replayed request return this change instead of making another. These rows are also
    what notifications are made from.
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ChangeKind] = mapped_column(_enum(ChangeKind))
    actor: Mapped[Actor] = mapped_column(_enum(Actor))
    status: Mapped[ChangeStatus] = mapped_column(_enum(ChangeStatus), default=ChangeStatus.PENDING)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    items: Mapped[list[ChangeItem]] = mapped_column(ChangeItems)
    fee: Mapped[str | None] = mapped_column(String(32))  # reschedule fee or cancellation refund
    message: Mapped[str | None] = mapped_column(Text)  # what went wrong, for the customer
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("booking_id", "idempotency_key"),)


class RescheduleRequest(Base):
    """The owner asked the customer to choose new times for some sessions
    (``bookings/reschedule_requests.py``).

    The customer's link to it is the manage link plus a token of its own, of which only the
    hash is kept. While it is open (not used, not revoked, not expired), the customer may move
    those sessions once, free of the policy's fee, notice, allowance and reason."""

    __tablename__ = "reschedule_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    session_ids: Mapped[list[int]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message: Mapped[str | None] = mapped_column(Text)  # the owner's words to the customer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """One email, rendered and stored before anything is sent (see ``sync.outbox``)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for messages to the owner about their calendars (e.g. "reconnect Google").
    booking_id: Mapped[str | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.HELD)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class RateLimitHit(Base):
    """One counted request under one key (``store.rate_limits``): shared by every web
    process, kept for a minute."""

    __tablename__ = "rate_limit_hits"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "<budget>:token:<hash>" or "<budget>:address:<ip>"; never the token itself.
    key: Mapped[str] = mapped_column(String(120))
    at: Mapped[float] = mapped_column(Float)  # Unix time: comparable across processes

    __table_args__ = (Index("ix_rate_limit_hits_key_at", "key", "at"),)


class PaymentKind(StrEnum):
    CHARGE = "charge"  # a reschedule fee the customer pays
    REFUND = "refund"  # money paid back: a cancellation's refund, or a fee paid too late


class PaymentState(StrEnum):
    OPEN = "open"  # a charge waiting for the customer, or a refund not yet sent to Stripe
    SENDING = "sending"  # a refund claimed by one run, being sent (lease: ``updated_at``)
    SUCCEEDED = "succeeded"
    PENDING = "pending"  # a refund Stripe accepted but has not paid yet (it may still fail)
    DECLINED = "declined"  # the last card was declined; the customer may try again
    CANCELED = "canceled"  # a charge never paid (its hold ran out)
    FAILED = "failed"  # Stripe refused the refund: the owner must pay it back by hand


class Payment(Base):
    """One charge or refund through Stripe, in integer minor units of ``currency``.

    ``idempotency_key`` is the key every request to Stripe about this row carries, so a retry
    never charges or refunds twice; ``stripe_id`` is the PaymentIntent (pi_…) of a charge or
    the Refund (re_…) of a refund, ``payment_intent`` the intent a refund is paid from.
    """

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PaymentKind] = mapped_column(_enum(PaymentKind))
    state: Mapped[PaymentState] = mapped_column(_enum(PaymentState), default=PaymentState.OPEN)
    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(Integer)  # minor units (cents), never a float
    currency: Mapped[str] = mapped_column(String(3))
    stripe_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_intent: Mapped[str | None] = mapped_column(String(255), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    # The booking's version when the change was recorded: paid later, it applies only if
    # nothing else changed the booking meanwhile.
    booking_version: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str | None] = mapped_column(Text)  # why it failed, in words
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentHold(Base):
    """A new time held for a change awaiting payment: busy for every other customer and
    booking until ``released_at`` (paid: the session moves there; unpaid: it is free again)."""

    __tablename__ = "payment_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    uid: Mapped[str] = mapped_column(String(255))  # the session's, so it never blocks itself
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_payment_holds_owner", "owner_id", "released_at", "start"),)


class CheckoutState(StrEnum):
    """Where a booking page checkout (a priced package paid through Stripe) is."""

    HOLDING = "holding"  # the times held, waiting for the card
    PAID = "paid"  # paid, being booked (no longer expires)
    BOOKED = "booked"  # paid and booked (``booking_id``)
    EXPIRED = "expired"  # the hold ran out unpaid: the times are free again
    REFUNDED = "refunded"  # paid, but could not be booked: the payment went back


class Checkout(Base):
    """A priced package on the booking page waiting for its payment: the customer's request
    (``request``, as the page checked it) and the times held (``CheckoutHold``) until
    ``expires_at``. Paid, it becomes a booking made by the same engine as an unpaid one."""

    __tablename__ = "checkouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    event_type_id: Mapped[int] = mapped_column(ForeignKey("event_types.id", ondelete="CASCADE"))
    state: Mapped[CheckoutState] = mapped_column(
        _enum(CheckoutState), default=CheckoutState.HOLDING
    )
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    amount: Mapped[int] = mapped_column(Integer)  # minor units, never a float
    currency: Mapped[str] = mapped_column(String(3))
    submit_key: Mapped[str] = mapped_column(String(120), unique=True)  # the page's submit key
    stripe_id: Mapped[str | None] = mapped_column(String(255), unique=True)  # the current pi_…
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # a declined card starts another
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"))
    refund_id: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CheckoutHold(Base):
    """One time held for a checkout: busy for every other customer and booking while its
    checkout's ``released_at`` is unset."""

    __tablename__ = "checkout_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(
        ForeignKey("checkouts.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_checkout_holds_owner", "owner_id", "start"),)


# The console's tables live in a module of their own; importing it registers them on Base.
from calsync.store import console_rows as console_rows  # noqa: E402
