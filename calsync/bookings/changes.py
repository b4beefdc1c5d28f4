"""The change engine: reschedule and cancel sessions of a booking (DESIGN.md §5.3), in three
steps.

1. *plan* (``bookings/plan.py``, pure): the request checked against the booking, its policy,
   the time taken around the new times and now: a plan, a replay, or a typed refusal. It runs
   once before any calendar is read (a quick refusal), and again in step 2.
2. *record* (``record`` here): one transaction under the owner's lock: the request's earlier
   change by idempotency key (a replay or a double click answers with it), the plan again on
   fresh busy time, the booking's version compared and bumped, the sessions' new times and
   SEQUENCE, the ``Change`` with its typed items, its outbox rows held. All-or-nothing.
3. *apply* (``bookings/apply.py``): the conditional writes to the owner's calendar, one event
   at a time; a calendar that is down leaves the change pending for the worker.

Refusals leave as the exceptions below, each carrying the plan's ``Refusal`` (a
``RefusalKind`` and typed fields: ``ChangeField``, session, time); no sentence is written here.
The faces word them: ``web/manage/wording.py``, ``web/errors.py``, ``cli/messages.py``.

    ServiceError (sync/connections.py)
    ├── ChangeRefused           the plan's refusal: ``refusal.kind``, ``field``, position, time
    │   └── OwnerMoveRefused    an owner's move onto a time not offered, without ``force``
    ├── StaleBooking            the booking changed since the caller looked at it
    ├── ReplayMismatch          an idempotency key used again for other content
    └── SlotTaken (packages)
        └── TimeTaken           a customer's new time is not offered (any more)
    ProviderError (calendars/errors.py)
    └── OwnerChangedEvent (apply.py)  the owner moved or deleted the event first
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.bookings import notices, paid_changes
from calsync.bookings.apply import OwnerChangedEvent, apply_change, apply_pending
from calsync.bookings.event_types import (
    find_slots,
    get_event_type,
    load_event_type,
    rules_of,
    taken_spans,
)
from calsync.bookings.held import lock_owner
from calsync.bookings.live_check import live_busy
from calsync.bookings.packages import SlotTaken, get_booking, refresh_conflicts
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
from calsync.bookings.reschedule_requests import (
    Grant,
    RequestNotOpen,
    RequestState,
    find_request,
    use_request,
)
from calsync.config import Settings
from calsync.observe import metrics
from calsync.observe.logs import log_context
from calsync.policy.change_policy import policy_from_data
from calsync.policy.types import Slot, Span
from calsync.store.change_items import ChangeItem, Times
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingStatus,
    Change,
    ChangeKind,
    ChangeStatus,
    HistoryAction,
    Owner,
    RescheduleRequest,
    SessionStatus,
    utcnow,
)
from calsync.sync.connections import ServiceError
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)


class ChangeRefused(ServiceError):
    """The change is not made; ``refusal`` says why, with typed fields (each face words it)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.kind.value)
        self.refusal = refusal

    @property
    def field(self) -> ChangeField | None:
        return self.refusal.field


class OwnerMoveRefused(ChangeRefused):
    """An owner's move onto a time that is not offered, without ``force``."""


class StaleBooking(ServiceError):
    """The booking changed since the customer looked at it."""

    def __init__(self, refusal: Refusal | None = None) -> None:
        super().__init__(RefusalKind.STALE.value)
        self.refusal = refusal or Refusal(RefusalKind.STALE)


class ReplayMismatch(ServiceError):
    """An idempotency key was used again for a different request."""

    def __init__(self, refusal: Refusal | None = None) -> None:
        super().__init__(RefusalKind.REPLAY_MISMATCH.value)
        self.refusal = refusal or Refusal(RefusalKind.REPLAY_MISMATCH)


class TimeTaken(SlotTaken):
    """A customer's new time is not offered (taken meanwhile, or never offered)."""

    def __init__(self, refusal: Refusal) -> None:
        assert refusal.at is not None
        super().__init__(refusal.kind.value, refusal.at, refusal.session_id)
        self.refusal = refusal


def refused(refusal: Refusal) -> ServiceError:
    """The exception that carries ``refusal`` to the faces."""
    if refusal.kind is RefusalKind.STALE:
        return StaleBooking(refusal)
    if refusal.kind is RefusalKind.REPLAY_MISMATCH:
        return ReplayMismatch(refusal)
    if refusal.kind is RefusalKind.TAKEN:
        return TimeTaken(refusal)
    if refusal.kind is RefusalKind.NOT_OFFERED:
        return OwnerMoveRefused(refusal)
    return ChangeRefused(refusal)


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    change: Change
    booking: Booking
    fee: Decimal | None = None
    replayed: bool = False
    sessions: list[BookedSession] = field(default_factory=list)


def facts_of(booking: Booking) -> BookingFacts:
    """The booking as the plan reads it."""
    return BookingFacts(
        version=booking.version,
        active=booking.status is BookingStatus.ACTIVE,
        price=Decimal(booking.price),
        policy=policy_from_data(booking.policy),
        sessions=tuple(
            SessionFacts(
                s.id,
                s.position,
                s.uid,
                Times(s.start, s.end),
                s.status is SessionStatus.CANCELLED,
                s.reschedule_count,
            )
            for s in booking.sessions
        ),
        has_event_type=booking.event_type_id is not None,
    )


def _earlier(session: Session, booking_id: str, key: str | None) -> Earlier | None:
    if not key:
        return None
    change = session.scalars(
        select(Change).where(Change.booking_id == booking_id, Change.idempotency_key == key)
    ).one_or_none()
    return None if change is None else Earlier(change.id, change.fingerprint)


def reschedule(
    db: Database,
    settings: Settings,
    booking_id: str,
    moves: Mapping[int, datetime],
    *,
    actor: Actor,
    reason: str | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
    provider_factory: ProviderFactory | None = None,
    force: bool = False,
    request_token: str | None = None,
) -> ChangeOutcome:
    """Move sessions (session id → new start). Raises ChangeRefused (OwnerMoveRefused),
    TimeTaken, StaleBooking, ReplayMismatch, AvailabilityUnknown, RequestNotOpen; a calendar
    outage leaves the change pending.

    The owner's moves are checked like the customer's (busy time, hours, notice, grid) and
    refused with the reason (``OwnerMoveRefused``) unless ``force``; they are never charged a
    fee nor counted against the customer's reschedule allowance.

    ``request_token`` (the customer's, from the owner's reschedule request): the request must
    be open and name every moved session; the policy's limits, reason and fee are waived, and
    the request is used up in the transaction that records the change."""
    ask = Ask(
        ChangeKind.RESCHEDULE,
        actor,
        dict(moves),
        reason,
        force,
        expected_version,
        waived=request_token is not None,
    )
    return _change(
        db, settings, booking_id, ask, idempotency_key, now, provider_factory, request_token
    )


def cancel(
    db: Database,
    settings: Settings,
    booking_id: str,
    session_ids: Collection[int],
    *,
    actor: Actor,
    reason: str | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    now: datetime | None = None,
    provider_factory: ProviderFactory | None = None,
) -> ChangeOutcome:
    """Cancel sessions. Raises ChangeRefused, StaleBooking, ReplayMismatch."""
    targets: dict[int, datetime | None] = dict.fromkeys(session_ids)
    ask = Ask(ChangeKind.CANCEL, actor, targets, reason, expected_version=expected_version)
    return _change(db, settings, booking_id, ask, idempotency_key, now, provider_factory)


def _change(
    db: Database,
    settings: Settings,
    booking_id: str,
    ask: Ask,
    key: str | None,
    now: datetime | None,
    provider_factory: ProviderFactory | None,
    request_token: str | None = None,
) -> ChangeOutcome:
    """Plan (before reading any calendar), fresh busy time, record, apply."""
    now = now or utcnow()
    factory = provider_factory or open_provider(settings)
    with db.reading() as session:
        earlier = _earlier(session, booking_id, key)
        if request_token is not None and earlier is None:
            # A replay answers with its change even though the request is used up by now.
            _granted(find_request(session, booking_id, request_token, now), ask)
    booking = get_booking(db, booking_id)
    first = plan(facts_of(booking), ask, now, earlier=earlier)
    if isinstance(first, Refusal):
        # The refusal may come from the state a copy of this very request left a moment ago
        # (a double click): then that copy's change is the answer.
        with db.reading() as session:
            earlier = _earlier(session, booking_id, key)
        if earlier is None:
            raise refused(first)
        first = plan(facts_of(booking), ask, now, earlier=earlier)
        if isinstance(first, Refusal):
            raise refused(first)
    if isinstance(first, Replay):
        return _finish(db, settings, first.change_id, factory, replayed=True)
    live: list[Span] = []
    if ask.kind is ChangeKind.RESCHEDULE:
        live = _fresh_busy(db, settings, booking, ask, factory)
    recorded = record(
        db, settings, booking_id, booking.owner_id, ask, key, now, live, request_token
    )
    if not recorded.replayed:
        metrics.CHANGES.labels(ask.kind.value, ask.actor.value).inc()
    return _finish(db, settings, recorded.change_id, factory, replayed=recorded.replayed)


def _fresh_busy(
    db: Database, settings: Settings, booking: Booking, ask: Ask, factory: ProviderFactory
) -> list[Span]:
    """Refresh the conflict calendars' mirror; the busy time it could not store, and the live
    free/busy answer for the new times (when they are checked)."""
    assert booking.event_type_id is not None  # the plan refuses a move without it
    with db.reading() as session:
        event_type = load_event_type(session, booking.event_type_id)
    unstored = refresh_conflicts(db, settings, event_type, factory)
    if not ask.checked:
        return []
    lengths = {s.id: s.end - s.start for s in booking.sessions}
    wanted = [Slot(start, start + lengths[sid]) for sid, start in ask.targets.items() if start]
    return [*live_busy(db, event_type, wanted, factory), *unstored]


@dataclass(frozen=True, slots=True)
class Recorded:
    change_id: int
    replayed: bool = False


def record(
    db: Database,
    settings: Settings,
    booking_id: str,
    owner_id: int,
    ask: Ask,
    key: str | None,
    now: datetime,
    live: Sequence[Span] = (),
    request_token: str | None = None,
) -> Recorded:
    """The change, in one transaction under the owner's lock: the plan again on what the
    transaction sees (a copy of this request recorded meanwhile is the answer; the booking's
    version is compared), then the sessions' new state, the change, its items and its held
    outbox rows, and the version bumped. Raises what the plan refuses.

    A change is accepted while an earlier one of the same session is still pending (its
    calendar was away): the customer's latest wish is what counts, and ``apply`` applies the
    booking's changes strictly in the order recorded, so the later one ends on top."""
    with db.writing() as session:
        lock_owner(session, owner_id)
        earlier = _earlier(session, booking_id, key)
        stored = session.scalars(
            select(Booking).options(selectinload(Booking.sessions)).where(Booking.id == booking_id)
        ).one()
        taken = None
        if ask.kind is ChangeKind.RESCHEDULE and stored.event_type_id is not None:
            taken = _taken(session, stored.event_type_id, ask, live)
        grant = None
        if request_token is not None and earlier is None:
            grant = _granted(find_request(session, booking_id, request_token, now), ask)
        answer = plan(facts_of(stored), ask, now, taken=taken, earlier=earlier)
        if isinstance(answer, Replay):
            return Recorded(answer.change_id, replayed=True)
        if isinstance(answer, Refusal):
            raise refused(answer)
        change = _write(session, settings, stored, answer, key, grant)
        if grant is not None:
            use_request(session, grant.id, change.id, now)
        return Recorded(change.id)


def _granted(found: Grant | RequestState, ask: Ask) -> Grant:
    """The open request that covers every session ``ask`` moves; else RequestNotOpen."""
    if isinstance(found, RequestState):
        raise RequestNotOpen(found)
    if not set(ask.targets) <= found.session_ids:
        # A session the owner did not name: a tampered form (the page offers only those).
        raise RequestNotOpen(RequestState.UNKNOWN)
    return found


def _taken(session: Session, event_type_id: int, ask: Ask, live: Sequence[Span]) -> Taken:
    event_type = load_event_type(session, event_type_id)
    starts = [t for t in ask.targets.values() if t is not None and t.tzinfo is not None]
    if not starts:
        return Taken(rules_of(event_type), live, (), event_type.slug)
    # The longest session bounds the window; a day either side covers buffers and the cap.
    busy, booked = taken_spans(
        session, event_type, min(starts) - timedelta(days=1), max(starts) + timedelta(days=1)
    )
    return Taken(rules_of(event_type), [*busy, *live], booked, event_type.slug)


def _write(
    session: Session,
    settings: Settings,
    booking: Booking,
    planned: Plan,
    key: str | None,
    grant: Grant | None = None,
) -> Change:
    ask = planned.ask
    paid_first = _pays_first(settings, planned)
    change = Change(
        booking_id=booking.id,
        kind=ask.kind,
        actor=ask.actor,
        status=ChangeStatus.AWAITING_PAYMENT if paid_first else ChangeStatus.PENDING,
        idempotency_key=key,
        fingerprint=ask.fingerprint(),
        reason=(ask.reason or "").strip() or None,
        items=list(planned.items),
        fee=None if planned.fee is None else str(planned.fee),
        next_attempt_at=None if paid_first else utcnow(),
    )
    session.add(change)
    session.flush()
    if paid_first:
        assert settings.payments is not None and planned.fee is not None
        paid_changes.hold(session, settings, settings.payments, booking, change, planned.fee)
        return change
    receipt = None
    if ask.kind is ChangeKind.CANCEL and planned.fee and booking.payment_intent:
        receipt = paid_changes.queue_refund(session, settings, booking, change, planned.fee)
    carry_out(
        session,
        settings,
        booking,
        change,
        counts_allowance=planned.counts_allowance,
        receipt=receipt,
        request_id=grant.id if grant else None,
    )
    return change


def _pays_first(settings: Settings, planned: Plan) -> bool:
    """A customer's reschedule with a fee waits for the payment when payments are on (without
    them the fee is recorded and due to the owner directly, as before)."""
    return (
        settings.payments is not None
        and planned.ask.kind is ChangeKind.RESCHEDULE
        and planned.ask.actor is Actor.CUSTOMER
        and planned.fee is not None
        and planned.fee > 0
    )


def carry_out(
    session: Session,
    settings: Settings,
    booking: Booking,
    change: Change,
    *,
    counts_allowance: bool,
    receipt: str | None = None,
    request_id: int | None = None,
) -> None:
    """A recorded change's effect on the booking, in the caller's transaction: the sessions'
    new times or cancellation, the history, the version bumped and the outbox rows held (sent
    once the calendar took it). For a paid reschedule it runs when the payment arrives."""
    current = {s.id: s for s in booking.sessions}
    for item in change.items:
        booked = current[item.session_id]
        booked.sequence += 1
        if item.after is not None:
            booked.start, booked.end = item.after.start, item.after.end
            if counts_allowance:
                booked.reschedule_count += 1
            booked.status = SessionStatus.RESCHEDULED
        else:
            booked.status = SessionStatus.CANCELLED
        booking.history.append(
            BookingChange(
                actor=change.actor,
                action=HistoryAction.RESCHEDULED if item.after else HistoryAction.CANCELLED,
                session_id=booked.id,
                reason=change.reason,
                details=_details(item) | ({"request": request_id} if request_id else {}),
            )
        )
    if all(s.status is SessionStatus.CANCELLED for s in booking.sessions):
        booking.status = BookingStatus.CANCELLED
    booking.version += 1
    owner = session.get(Owner, booking.owner_id)
    assert owner is not None
    notices.queue_change(session, settings, booking, owner, change, receipt)


def recorded_counts_allowance(session: Session, change: Change) -> bool:
    """``Plan.counts_allowance`` of a change recorded earlier (a paid one, carried out when the
    payment lands), from what recording it stored: a customer's own move counts, one the owner
    asked for does not (recording it marked the owner's reschedule request used by it)."""
    if change.actor is not Actor.CUSTOMER:
        return False
    granted = session.scalars(
        select(RescheduleRequest.id).where(RescheduleRequest.change_id == change.id).limit(1)
    ).first()
    return granted is None


def _details(item: ChangeItem) -> dict[str, object]:
    """The history line's details: the times before (and after, for a move)."""
    data = item.to_data()
    return {"from": data["from"], "to": data["to"]} if item.after else {"from": data["from"]}


def _finish(
    db: Database,
    settings: Settings,
    change_id: int,
    factory: ProviderFactory,
    *,
    replayed: bool = False,
) -> ChangeOutcome:
    with log_context(change_id=change_id):
        change = apply_change(db, settings, change_id, factory)
    booking = get_booking(db, change.booking_id)
    fee = Decimal(change.fee) if change.fee is not None else None
    touched = {item.session_id for item in change.items}
    return ChangeOutcome(
        change, booking, fee, replayed, [s for s in booking.sessions if s.id in touched]
    )


def changes_of(db: Database, booking_id: str) -> list[Change]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(Change).where(Change.booking_id == booking_id).order_by(Change.id)
            )
        )


def available_for(
    db: Database,
    booking: Booking,
    session_ids: Collection[int],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots the chosen sessions may move to: the sessions being moved don't block
    themselves. Raises AvailabilityUnknown before the first sync, InvalidInput for a bad window."""
    if booking.event_type_id is None:
        return []
    uids = {s.uid for s in booking.sessions if s.id in set(session_ids)}
    event_type = get_event_type(db, booking.event_type_id)
    return find_slots(db, event_type, start, end, now=now, ignore=uids)


__all__ = [
    "Ask",
    "ChangeKind",
    "ChangeOutcome",
    "ChangeRefused",
    "OwnerChangedEvent",
    "OwnerMoveRefused",
    "ReplayMismatch",
    "RequestNotOpen",
    "StaleBooking",
    "TimeTaken",
    "apply_change",
    "apply_pending",
    "available_for",
    "cancel",
    "changes_of",
    "record",
    "refused",
    "reschedule",
]
