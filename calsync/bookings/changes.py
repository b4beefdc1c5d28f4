"""The change engine: reschedule and cancel sessions of a booking (DESIGN.md §5.3).

A change is *recorded* first, in one transaction that holds the owner's lock: the booking's
version is compared and bumped (so a page showing an old state cannot overwrite a newer one),
every new slot is re-checked against fresh busy time with the moved sessions not blocking
themselves, the sessions take their new times and SEQUENCE, and a ``Change`` row remembers
what to do. A package change is all-or-nothing at this step. Then the change is *applied* to
the owner's calendar, one event at a time, each a conditional write that changes only the
times (or the cancellation marks). If a calendar cannot be reached the change stays pending
and a worker applies it later; applying is idempotent, so nothing happens twice. If the owner
moved or deleted the event meanwhile, we stop for that event and say so. Applying lives in
``change_apply``; this module re-exports what callers use (``apply_pending``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.bookings import notices
from calsync.bookings.apply import OwnerChangedEvent, apply_change, apply_pending
from calsync.bookings.event_types import (
    find_slots,
    get_event_type,
    load_event_type,
    refusal_of,
    slots_within,
)
from calsync.bookings.held import lock_owner
from calsync.bookings.live_check import live_busy
from calsync.bookings.packages import SlotTaken, get_booking, refresh_conflicts
from calsync.config import Settings
from calsync.observe import metrics
from calsync.observe.logs import log_context
from calsync.policy.change_policy import policy_from_data
from calsync.policy.change_rules import (
    Action,
    SessionState,
    cancel_refund,
    reason_problem,
    reschedule_fee,
    verdict,
)
from calsync.policy.refusal import availability_command
from calsync.policy.types import Slot, Span
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingStatus,
    Change,
    ChangeKind,
    EventType,
    Owner,
    SessionStatus,
    utcnow,
)
from calsync.sync.connections import ServiceError
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)


class ChangeRefused(ServiceError):
    """The change is not allowed as asked; ``field`` names the input at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StaleBooking(ServiceError):
    """The booking changed since the customer looked at it."""


class ReplayMismatch(ServiceError):
    """An idempotency key was used again for a different request."""


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    change: Change
    booking: Booking
    fee: Decimal | None = None
    replayed: bool = False
    sessions: list[BookedSession] = field(default_factory=list)


def _fingerprint(
    kind: ChangeKind, targets: Mapping[int, datetime | None], reason: str | None
) -> str:
    body = {
        "kind": kind.value,
        "targets": sorted((sid, t.isoformat() if t else None) for sid, t in targets.items()),
        "reason": (reason or "").strip(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def replay_of(
    db: Database,
    booking_id: str,
    key: str | None,
    kind: ChangeKind,
    targets: Mapping[int, datetime | None],
    reason: str | None,
) -> Change | None:
    """The change this request (same idempotency key) already made, whatever the booking's
    state is now; for a face that checks more than the engine before calling it. Raises
    ReplayMismatch when the key was used for other content."""
    return _replayed(db, booking_id, key, _fingerprint(kind, targets, reason))


def _replayed(db: Database, booking_id: str, key: str | None, fingerprint: str) -> Change | None:
    if not key:
        return None
    with db.reading() as session:
        change = session.scalars(
            select(Change).where(Change.booking_id == booking_id, Change.idempotency_key == key)
        ).one_or_none()
    if change is not None and change.fingerprint != fingerprint:
        raise ReplayMismatch(
            "this form was already sent with other choices; reload the page and try again"
        )
    return change


def _state(session: BookedSession) -> SessionState:
    return SessionState(
        session.start, session.status is SessionStatus.CANCELLED, session.reschedule_count
    )


def _check_request(
    booking: Booking,
    session_ids: Collection[int],
    action: Action,
    actor: Actor,
    reason: str | None,
    now: datetime,
) -> dict[int, BookedSession]:
    """The sessions asked for, after the customer-facing checks (the owner skips the policy)."""
    if not session_ids:
        raise ChangeRefused("choose at least one session", field="sessions")
    mine = {s.id: s for s in booking.sessions}
    chosen = {}
    for session_id in session_ids:
        if session_id not in mine:
            raise ChangeRefused("a chosen session is not part of this booking", field="sessions")
        chosen[session_id] = mine[session_id]
    if booking.status is not BookingStatus.ACTIVE:
        raise ChangeRefused("this booking is no longer active")
    if actor is Actor.CUSTOMER:
        policy = policy_from_data(booking.policy)
        for booked in chosen.values():
            decision = verdict(policy, action, _state(booked), now)
            if not decision.allowed:
                raise ChangeRefused(
                    f"Session {booked.position}: {decision.reason}", field="sessions"
                )
        problem = reason_problem(policy, action, reason)
        if problem:
            raise ChangeRefused(problem, field="reason")
    elif any(s.status is SessionStatus.CANCELLED for s in chosen.values()):
        raise ChangeRefused("a chosen session is already cancelled", field="sessions")
    return chosen


def _precheck(
    db: Database,
    booking: Booking,
    session_ids: Collection[int],
    action: Action,
    actor: Actor,
    reason: str | None,
    now: datetime,
    key: str | None,
    fingerprint: str,
) -> Change | None:
    """The checks before any calendar is polled. A refusal may come from the state a copy of
    this very request left a moment ago (a double click): then that copy's change is the
    answer, so the key is looked up once more before refusing, and that change is returned.
    The decisive checks run again under the owner's lock when the change is recorded."""
    try:
        _check_request(booking, session_ids, action, actor, reason, now)
    except ChangeRefused:
        earlier = _replayed(db, booking.id, key, fingerprint)
        if earlier is not None:
            return earlier
        raise
    return None


def _fee(booking: Booking, action: Action, count: int) -> Decimal | None:
    policy = policy_from_data(booking.policy)
    price, size = Decimal(booking.price), len(booking.sessions)
    if action is Action.RESCHEDULE:
        return reschedule_fee(policy, price, size, count)
    return cancel_refund(policy, price, size, count)


class _AlreadyRecorded(Exception):
    """The same request (same idempotency key) was recorded before: answer with that."""

    def __init__(self, change_id: int) -> None:
        super().__init__(change_id)
        self.change_id = change_id


def _cas(
    session: Session,
    booking_id: str,
    expected_version: int | None,
    key: str | None,
    fingerprint: str,
) -> Booking:
    """The booking, locked by the caller; raises if this request was already recorded (checked
    here, under the owner's lock, so two copies sent at once cannot both pass) or if the booking
    changed since the customer looked at it."""
    if key:
        earlier = session.scalars(
            select(Change).where(Change.booking_id == booking_id, Change.idempotency_key == key)
        ).one_or_none()
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                raise ReplayMismatch(
                    "this form was already sent with other choices; reload the page and try again"
                )
            raise _AlreadyRecorded(earlier.id)
    stored = session.scalars(
        select(Booking).options(selectinload(Booking.sessions)).where(Booking.id == booking_id)
    ).one()
    if expected_version is not None and stored.version != expected_version:
        raise StaleBooking(
            "this booking changed while you were choosing (perhaps the owner moved a session); "
            "please look at it again"
        )
    return stored


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
) -> ChangeOutcome:
    """Move sessions (session id → new start). Raises ChangeRefused, SlotTaken, StaleBooking,
    ReplayMismatch, AvailabilityUnknown; a calendar outage leaves the change pending.

    The owner's moves are checked like the customer's (busy time, hours, notice, grid) and
    refused with the reason (``OwnerMoveRefused``) unless ``force``; they are never charged a
    fee nor counted against the customer's reschedule allowance."""
    now = now or utcnow()
    factory = provider_factory or open_provider(settings)
    fingerprint = _fingerprint(ChangeKind.RESCHEDULE, moves, reason)
    replay = _replayed(db, booking_id, idempotency_key, fingerprint)
    if replay is not None:
        return _finish(db, settings, replay.id, factory, replayed=True)
    booking = get_booking(db, booking_id)
    copy = _precheck(
        db, booking, moves, Action.RESCHEDULE, actor, reason, now, idempotency_key, fingerprint
    )
    if copy is not None:
        return _finish(db, settings, copy.id, factory, replayed=True)
    if any(start.tzinfo is None for start in moves.values()):
        raise ChangeRefused("new times need a UTC offset", field="starts")
    if len(set(moves.values())) != len(moves):
        raise ChangeRefused("two sessions cannot move to the same time", field="starts")
    event_type = booking.event_type_id
    if event_type is None:
        raise ChangeRefused("this booking's event type was deleted; the owner must move it")
    with db.reading() as session:
        refresh_target = load_event_type(session, event_type)
    unstored = refresh_conflicts(db, settings, refresh_target, factory)
    live: list[Span] = []
    checked = actor is Actor.CUSTOMER or not force  # a forced owner move skips the checks
    if checked:
        lengths = {s.id: s.end - s.start for s in booking.sessions}
        wanted = [Slot(start, start + lengths[sid]) for sid, start in moves.items()]
        live = [*live_busy(db, refresh_target, wanted, factory), *unstored]

    # A change is accepted while an earlier one of the same session is still pending (its
    # calendar was away): the customer's latest wish is what counts, and refusing would send
    # them back to try again later for something we can do ourselves. ``change_apply`` applies
    # the booking's changes strictly in the order recorded, so the later one ends on top.
    try:
        with db.writing() as session:
            lock_owner(session, booking.owner_id)
            stored = _cas(session, booking_id, expected_version, idempotency_key, fingerprint)
            _check_request(stored, moves, Action.RESCHEDULE, actor, reason, now)
            current = {s.id: s for s in stored.sessions}
            fresh_type = load_event_type(session, event_type)
            ignore = {current[sid].uid for sid in moves}
            held: list[Span] = []
            items = []
            for session_id, start in sorted(moves.items(), key=lambda m: m[1]):
                booked = current[session_id]
                slot = Slot(start, start + (booked.end - booked.start))
                if actor is not Actor.CUSTOMER and checked:
                    _check_owner_move(session, fresh_type, booked, slot, now, ignore, held, live)
                elif actor is Actor.CUSTOMER:
                    free = slots_within(
                        session,
                        fresh_type,
                        slot.start,
                        slot.end,
                        now=now,
                        ignore=ignore,
                        extra_booked=held,
                        extra_busy=live,
                    )
                    if slot not in free:
                        local = start.astimezone(ZoneInfo(stored.customer_timezone))
                        raise SlotTaken(
                            f"{local:%a %d %b %H:%M} was just taken. Your other choices are "
                            "kept; please pick another time for this session.",
                            start,
                            session_id,
                        )
                held.append(Span(slot.start, slot.end))
                items.append(_move_item(booked, slot))
                booked.start, booked.end = slot.start, slot.end
                booked.sequence += 1
                if actor is Actor.CUSTOMER:  # the allowance is the customer's own moves
                    booked.reschedule_count += 1
                booked.status = SessionStatus.RESCHEDULED
                stored.history.append(
                    BookingChange(
                        actor=actor,
                        action="rescheduled",
                        session_id=booked.id,
                        reason=reason,
                        details={"from": items[-1]["from"], "to": items[-1]["to"]},
                    )
                )
            change = _record(
                session,
                settings,
                stored,
                ChangeKind.RESCHEDULE,
                actor,
                idempotency_key,
                fingerprint,
                reason,
                items,
                _fee(stored, Action.RESCHEDULE, len(items)) if actor is Actor.CUSTOMER else None,
            )
    except _AlreadyRecorded as done:
        return _finish(db, settings, done.change_id, factory, replayed=True)
    metrics.CHANGES.labels(change.kind.value, change.actor.value).inc()
    return _finish(db, settings, change.id, factory)


class OwnerMoveRefused(ChangeRefused):
    """An owner's move onto a time that is not offered, without ``force``."""


def _check_owner_move(
    session: Session,
    event_type: EventType,
    booked: BookedSession,
    slot: Slot,
    now: datetime,
    ignore: Collection[str],
    held: list[Span],
    live: list[Span],
) -> None:
    refusal = refusal_of(
        session,
        event_type,
        slot,
        now=now,
        ignore=ignore,
        extra_booked=held,
        extra_busy=live,
    )
    if refusal is None:
        return
    zone = ZoneInfo(event_type.timezone)
    local = slot.start.astimezone(zone)
    raise OwnerMoveRefused(
        f"session {booked.position}: {local:%a %Y-%m-%d %H:%M} ({zone.key}) is {refusal.text}. "
        f"See the free times with `{availability_command(event_type.slug, local.date())}`, "
        "or move it anyway "
        'with --force (API: "force": true), which skips the busy, hours, notice and grid '
        "checks",
        field="starts",
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
    now = now or utcnow()
    factory = provider_factory or open_provider(settings)
    fingerprint = _fingerprint(ChangeKind.CANCEL, dict.fromkeys(session_ids), reason)
    replay = _replayed(db, booking_id, idempotency_key, fingerprint)
    if replay is not None:
        return _finish(db, settings, replay.id, factory, replayed=True)
    booking = get_booking(db, booking_id)
    copy = _precheck(
        db, booking, session_ids, Action.CANCEL, actor, reason, now, idempotency_key, fingerprint
    )
    if copy is not None:
        return _finish(db, settings, copy.id, factory, replayed=True)
    try:
        with db.writing() as session:
            lock_owner(session, booking.owner_id)
            stored = _cas(session, booking_id, expected_version, idempotency_key, fingerprint)
            _check_request(stored, session_ids, Action.CANCEL, actor, reason, now)
            current = {s.id: s for s in stored.sessions}
            items = []
            for session_id in sorted(session_ids):
                booked = current[session_id]
                items.append(_move_item(booked, None))
                booked.status = SessionStatus.CANCELLED
                booked.sequence += 1
                stored.history.append(
                    BookingChange(
                        actor=actor,
                        action="cancelled",
                        session_id=booked.id,
                        reason=reason,
                        details={"from": items[-1]["from"]},
                    )
                )
            if all(s.status is SessionStatus.CANCELLED for s in stored.sessions):
                stored.status = BookingStatus.CANCELLED
            change = _record(
                session,
                settings,
                stored,
                ChangeKind.CANCEL,
                actor,
                idempotency_key,
                fingerprint,
                reason,
                items,
                _fee(stored, Action.CANCEL, len(items)),
            )
    except _AlreadyRecorded as done:
        return _finish(db, settings, done.change_id, factory, replayed=True)
    metrics.CHANGES.labels(change.kind.value, change.actor.value).inc()
    return _finish(db, settings, change.id, factory)


def _move_item(booked: BookedSession, to: Slot | None) -> dict[str, object]:
    return {
        "session_id": booked.id,
        "uid": booked.uid,
        "position": booked.position,
        "from": [booked.start.isoformat(), booked.end.isoformat()],
        "to": [to.start.isoformat(), to.end.isoformat()] if to else None,
        "applied": False,
    }


def _record(
    session: Session,
    settings: Settings,
    booking: Booking,
    kind: ChangeKind,
    actor: Actor,
    key: str | None,
    fingerprint: str,
    reason: str | None,
    items: list[dict[str, object]],
    fee: Decimal | None,
) -> Change:
    booking.version += 1
    change = Change(
        booking_id=booking.id,
        kind=kind,
        actor=actor,
        idempotency_key=key,
        fingerprint=fingerprint,
        reason=(reason or "").strip() or None,
        items=items,
        fee=None if fee is None else str(fee),
        next_attempt_at=utcnow(),
    )
    session.add(change)
    session.flush()
    owner = session.get(Owner, booking.owner_id)
    assert owner is not None
    notices.queue_change(session, settings, booking, owner, change)
    return change


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
    touched = {int(str(item["session_id"])) for item in change.items}
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
    "ChangeKind",
    "ChangeOutcome",
    "ChangeRefused",
    "OwnerChangedEvent",
    "OwnerMoveRefused",
    "ReplayMismatch",
    "StaleBooking",
    "apply_change",
    "apply_pending",
    "available_for",
    "cancel",
    "changes_of",
    "replay_of",
    "reschedule",
]
