"""Plan a change (the first of the change engine's three steps: plan, record, apply).

Pure: from the booking as plain values, the request, the time taken around the new times and
``now``, ``plan`` returns what the change will do (a ``Plan``), that it was made before (a
``Replay``: same idempotency key, same content) or why not (a ``Refusal``). No database, no
calendar, no words: a refusal is a kind and typed fields, worded by each face's translator
(``web/manage/wording.py``, ``web/errors.py``, ``cli/messages.py``).

The checks, in order: the idempotency key (a replay, or the key used for other content); the
booking version the caller saw; sessions of this booking, the booking still active; for the
customer the policy (``policy/change_rules.py``: notice, allowance, permission) and its reason
rule, for the owner not a session already cancelled; for a move, times with an offset, not in
the past, two sessions not on one slot nor overlapping, and — once the time taken is known
(``taken``) — each new time offered (the customer's always, the owner's unless ``force``).
Then the fee: the customer's reschedule fee, and the refund of any cancel. The owner is never
charged nor counted against the customer's reschedule allowance, and neither is the customer for
a move the owner asked for (``Ask.waived``: no policy limit, reason rule or fee applies).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from calsync.policy.change_policy import ChangePolicy, ReasonRule
from calsync.policy.change_rules import (
    Action,
    SessionState,
    cancel_refund,
    reason_rule,
    reschedule_fee,
    verdict,
)
from calsync.policy.refusal import Why, why_not_offered
from calsync.policy.types import AvailabilityRules, Slot, Span
from calsync.store.change_items import ChangeItem, Times
from calsync.store.models import Actor, ChangeKind

MAX_REASON = 2000


class RefusalKind(StrEnum):
    """Why a change is not made."""

    REPLAY_MISMATCH = "replay_mismatch"  # the idempotency key was used for other content
    STALE = "stale"  # the booking changed since the caller looked at it
    NO_SESSIONS = "no_sessions"
    NOT_IN_BOOKING = "not_in_booking"
    INACTIVE = "inactive"  # the booking is cancelled
    NOT_ALLOWED = "not_allowed"  # the policy refuses it (``policy_reason`` says why)
    REASON_REQUIRED = "reason_required"
    REASON_TOO_LONG = "reason_too_long"
    ALREADY_CANCELLED = "already_cancelled"
    NO_OFFSET = "no_offset"
    SAME_TIME = "same_time"  # two sessions moved to one start
    OVERLAP = "overlap"  # two moved sessions overlap (``other_position``)
    PAST = "past"
    NO_EVENT_TYPE = "no_event_type"  # deleted: only the owner can move its sessions
    TAKEN = "taken"  # the customer's new time is not offered (any more)
    NOT_OFFERED = "not_offered"  # the owner's new time breaks a rule (``why``), without force


class ChangeField(StrEnum):
    """The input a refusal is about, in the engine's names (each face renames them)."""

    SESSIONS = "sessions"
    STARTS = "starts"
    REASON = "reason"


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    field: ChangeField | None = None
    session_id: int | None = None
    position: int | None = None
    other_session_id: int | None = None  # for OVERLAP: the session it overlaps
    other_position: int | None = None
    at: datetime | None = None  # the new start at fault
    why: Why | None = None  # for NOT_OFFERED: the rule the time breaks
    why_text: str | None = None  # the availability rule's fragment ("off the slot grid: …")
    zone: str | None = None  # for NOT_OFFERED: the event type's zone and slug
    event_type: str | None = None
    policy_reason: str | None = None  # for NOT_ALLOWED: the policy's verdict


@dataclass(frozen=True, slots=True)
class SessionFacts:
    id: int
    position: int
    uid: str
    times: Times
    cancelled: bool
    reschedule_count: int


@dataclass(frozen=True, slots=True)
class BookingFacts:
    """What the plan needs of a booking, read before (or under) the owner's lock."""

    version: int
    active: bool
    price: Decimal
    policy: ChangePolicy
    sessions: tuple[SessionFacts, ...]
    has_event_type: bool


@dataclass(frozen=True, slots=True)
class Ask:
    """The request: session id → new start (None for a cancel)."""

    kind: ChangeKind
    actor: Actor
    targets: Mapping[int, datetime | None]
    reason: str | None = None
    force: bool = False
    expected_version: int | None = None
    # The customer moves sessions the owner asked them to move (an open reschedule request,
    # ``bookings/reschedule_requests.py``): the policy's permission, notice, allowance, reason
    # and fee do not apply; the new times are checked like any customer's.
    waived: bool = False

    @property
    def checked(self) -> bool:
        """Whether new times must be offered: always for the customer, for the owner unless
        ``force``."""
        return self.actor is Actor.CUSTOMER or not self.force

    def fingerprint(self) -> str:
        body: dict[str, object] = {
            "kind": self.kind.value,
            "targets": sorted(
                (sid, t.isoformat() if t else None) for sid, t in self.targets.items()
            ),
            "reason": (self.reason or "").strip(),
        }
        if self.waived:
            body["waived"] = True
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Earlier:
    """A change already recorded with the request's idempotency key."""

    change_id: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Taken:
    """The time around the new times: the rules, busy time, other bookings' sessions."""

    rules: AvailabilityRules
    busy: Sequence[Span]
    booked: Sequence[Span]
    event_type: str = ""  # its slug, for the refusal


@dataclass(frozen=True, slots=True)
class Plan:
    ask: Ask
    items: tuple[ChangeItem, ...]
    fee: Decimal | None

    @property
    def counts_allowance(self) -> bool:
        """The allowance counts the customer's own moves only (not those the owner asked
        for)."""
        return self.ask.actor is Actor.CUSTOMER and not self.ask.waived


@dataclass(frozen=True, slots=True)
class Replay:
    change_id: int


def plan(
    booking: BookingFacts,
    ask: Ask,
    now: datetime,
    *,
    taken: Taken | None = None,
    earlier: Earlier | None = None,
) -> Plan | Replay | Refusal:
    """The change ``ask`` makes to ``booking`` at ``now``. Without ``taken`` the new times are
    not checked against what is taken (the checks before the calendars are read)."""
    if earlier is not None:
        if earlier.fingerprint != ask.fingerprint():
            return Refusal(RefusalKind.REPLAY_MISMATCH)
        return Replay(earlier.change_id)
    if ask.expected_version is not None and booking.version != ask.expected_version:
        return Refusal(RefusalKind.STALE)
    chosen = _chosen(booking, ask, now)
    if isinstance(chosen, Refusal):
        return chosen
    action = Action.CANCEL if ask.kind is ChangeKind.CANCEL else Action.RESCHEDULE
    if ask.kind is ChangeKind.CANCEL:
        items = tuple(
            ChangeItem(s.id, s.uid, s.position, s.times, None)
            for s in sorted(chosen, key=lambda s: s.id)
        )
    else:
        moved = _moves(booking, ask, chosen, now, taken)
        if isinstance(moved, Refusal):
            return moved
        items = moved
    return Plan(ask, items, _fee(booking, ask, action, len(items)))


def _chosen(booking: BookingFacts, ask: Ask, now: datetime) -> list[SessionFacts] | Refusal:
    if not ask.targets:
        return Refusal(RefusalKind.NO_SESSIONS, ChangeField.SESSIONS)
    mine = {s.id: s for s in booking.sessions}
    if any(sid not in mine for sid in ask.targets):
        return Refusal(RefusalKind.NOT_IN_BOOKING, ChangeField.SESSIONS)
    chosen = [mine[sid] for sid in ask.targets]
    if not booking.active:
        return Refusal(RefusalKind.INACTIVE)
    action = Action.CANCEL if ask.kind is ChangeKind.CANCEL else Action.RESCHEDULE
    if ask.actor is Actor.CUSTOMER and ask.waived:
        # The owner asked for this move: only a cancelled session cannot be moved.
        cancelled = next((s for s in chosen if s.cancelled), None)
        if cancelled is not None:
            return Refusal(
                RefusalKind.ALREADY_CANCELLED,
                ChangeField.SESSIONS,
                session_id=cancelled.id,
                position=cancelled.position,
            )
        if ask.reason is not None and len(ask.reason) > MAX_REASON:
            return Refusal(RefusalKind.REASON_TOO_LONG, ChangeField.REASON)
    elif ask.actor is Actor.CUSTOMER:
        for s in chosen:
            state = SessionState(s.times.start, s.cancelled, s.reschedule_count)
            decision = verdict(booking.policy, action, state, now)
            if not decision.allowed:
                return Refusal(
                    RefusalKind.NOT_ALLOWED,
                    ChangeField.SESSIONS,
                    session_id=s.id,
                    position=s.position,
                    policy_reason=decision.reason,
                )
        reason = (ask.reason or "").strip()
        if reason_rule(booking.policy, action) is ReasonRule.REQUIRED and not reason:
            return Refusal(RefusalKind.REASON_REQUIRED, ChangeField.REASON)
        if ask.reason is not None and len(ask.reason) > MAX_REASON:
            return Refusal(RefusalKind.REASON_TOO_LONG, ChangeField.REASON)
    else:
        cancelled = next((s for s in chosen if s.cancelled), None)
        if cancelled is not None:
            return Refusal(
                RefusalKind.ALREADY_CANCELLED,
                ChangeField.SESSIONS,
                session_id=cancelled.id,
                position=cancelled.position,
            )
    return chosen


def _moves(
    booking: BookingFacts,
    ask: Ask,
    chosen: list[SessionFacts],
    now: datetime,
    taken: Taken | None,
) -> tuple[ChangeItem, ...] | Refusal:
    starts: dict[int, datetime] = {}
    for s in chosen:
        start = ask.targets[s.id]
        if start is None or start.tzinfo is None:
            return Refusal(RefusalKind.NO_OFFSET, ChangeField.STARTS, s.id, s.position)
        starts[s.id] = start
    if len(set(starts.values())) != len(starts):
        return Refusal(RefusalKind.SAME_TIME, ChangeField.STARTS)
    if not booking.has_event_type:
        return Refusal(RefusalKind.NO_EVENT_TYPE)
    by_start = sorted(chosen, key=lambda s: starts[s.id])
    slots = {s.id: Slot(starts[s.id], starts[s.id] + (s.times.end - s.times.start)) for s in chosen}
    if ask.checked:
        for s in by_start:
            slot = slots[s.id]
            if ask.actor is Actor.CUSTOMER and slot.start <= now:
                return Refusal(
                    RefusalKind.PAST, ChangeField.STARTS, s.id, s.position, at=slot.start
                )
            for other in by_start:
                there = slots[other.id]
                if other.id != s.id and slot.start < there.end and there.start < slot.end:
                    return Refusal(
                        RefusalKind.OVERLAP,
                        ChangeField.STARTS,
                        s.id,
                        s.position,
                        other_session_id=other.id,
                        other_position=other.position,
                        at=slot.start,
                    )
    if taken is not None and ask.checked:
        refused = _not_offered(booking, ask, by_start, slots, now, taken)
        if refused is not None:
            return refused
    return tuple(
        ChangeItem(s.id, s.uid, s.position, s.times, Times(slots[s.id].start, slots[s.id].end))
        for s in by_start
    )


def _not_offered(
    booking: BookingFacts,
    ask: Ask,
    by_start: list[SessionFacts],
    slots: Mapping[int, Slot],
    now: datetime,
    taken: Taken,
) -> Refusal | None:
    """The first new time that is not offered, the moved sessions not blocking themselves and
    each earlier one holding its new time."""
    ignore = {s.uid for s in by_start}
    held: list[Span] = []
    for s in by_start:
        slot = slots[s.id]
        refusal = why_not_offered(
            taken.rules,
            slot,
            busy=taken.busy,
            booked=[*taken.booked, *held],
            now=now,
            ignore=ignore,
        )
        if refusal is not None:
            kind = RefusalKind.TAKEN if ask.actor is Actor.CUSTOMER else RefusalKind.NOT_OFFERED
            return Refusal(
                kind,
                ChangeField.STARTS,
                s.id,
                s.position,
                at=slot.start,
                why=refusal.why,
                why_text=refusal.text,
                zone=taken.rules.timezone,
                event_type=taken.event_type,
            )
        held.append(Span(slot.start, slot.end))
    return None


def _fee(booking: BookingFacts, ask: Ask, action: Action, count: int) -> Decimal | None:
    size = len(booking.sessions)
    if action is Action.RESCHEDULE:
        if ask.actor is not Actor.CUSTOMER or ask.waived:
            return None  # the owner is never charged for their own moves, nor for asking
        return reschedule_fee(booking.policy, booking.price, size, count)
    return cancel_refund(booking.policy, booking.price, size, count)
