"""Reschedule requests: the owner asks the customer to choose new times for named sessions.

The owner (CLI, admin API, console) names the sessions; the customer gets an email whose
"Choose new times" button opens the manage page's Reschedule tab with exactly those sessions
ticked. The link is the booking's manage link plus a token of the request's own
(``?request=<token>``): 192 random bits, of which only the SHA-256 is stored, like the manage
link's. While the request is *open* the customer may move those sessions once, free of the
policy's fee, notice, reschedule allowance and reason (the owner asked; DESIGN §3 binds only the
customer's own wishes). The new times must still be offered times, checked like any move.

A request ends when it is used (in the transaction that records the customer's change), when
the owner revokes it, when the owner asks again (the newer request replaces it), when the
booking's manage link is relinked or revoked (the emailed link stops working with it), or when
it expires (``DEFAULT_DAYS`` after it was made unless the owner chose otherwise).

Errors: ``ServiceError`` with the owner's sentence for a request that cannot be made;
``RequestNotOpen`` (carrying a ``RequestState``) when the customer's request token does not
open a request; each face words the state (``web/manage/wording.py``, ``web/errors.py``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from calsync.bookings.links import TOKEN_BYTES, current_link
from calsync.bookings.lookup import load_booking
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.compose import installation_namespace
from calsync.notify.reschedule_request import (
    RequestedSession,
    RescheduleRequestMail,
    compose_reschedule_request,
)
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    BookingChange,
    BookingStatus,
    HistoryAction,
    RescheduleRequest,
    SessionStatus,
    utcnow,
)
from calsync.sync.connections import NotFoundError, ServiceError
from calsync.token_hash import hash_token

log = logging.getLogger(__name__)

DEFAULT_DAYS = 14
MAX_DAYS = 90
MAX_MESSAGE = 2000


class RequestState(StrEnum):
    """Where a request token stands."""

    OPEN = "open"
    UNKNOWN = "unknown"  # no such request for this booking (forged, cut, another booking's)
    USED = "used"  # the customer already chose new times with it
    REVOKED = "revoked"  # the owner withdrew it, asked again, or relinked the booking
    EXPIRED = "expired"


class RequestNotOpen(ServiceError):
    """The request token opens no open request; ``state`` says why."""

    def __init__(self, state: RequestState) -> None:
        super().__init__(f"the reschedule request is {state.value}")
        self.state = state


@dataclass(frozen=True, slots=True)
class Grant:
    """An open request, as the manage page and the change engine read it."""

    id: int
    booking_id: str
    session_ids: frozenset[int]
    expires_at: datetime
    message: str | None


@dataclass(frozen=True, slots=True)
class IssuedRequest:
    id: int
    url: str  # the customer's link (secret: shown to the owner once, like in the email)
    expires_at: datetime
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as the owner sees it in a booking's listing."""

    id: int
    positions: tuple[int, ...]
    message: str | None
    created_at: datetime
    expires_at: datetime
    state: RequestState
    change_id: int | None


def state_of(row: RescheduleRequest, now: datetime) -> RequestState:
    if row.used_at is not None:
        return RequestState.USED
    if row.revoked_at is not None:
        return RequestState.REVOKED
    if row.expires_at <= now:
        return RequestState.EXPIRED
    return RequestState.OPEN


def request_url(manage_url: str, token: str, session_ids: Sequence[int]) -> str:
    """The manage page's Reschedule tab with the sessions ticked, carrying the request."""
    query = [("tab", "reschedule"), ("request", token)]
    query += [("session", str(sid)) for sid in sorted(session_ids)]
    return f"{manage_url}?{urlencode(query)}"


def _end_open(session: Session, booking_id: str, now: datetime) -> list[int]:
    """Revoke the booking's open requests; their ids."""
    ended = []
    for row in session.scalars(
        select(RescheduleRequest).where(
            RescheduleRequest.booking_id == booking_id,
            RescheduleRequest.used_at.is_(None),
            RescheduleRequest.revoked_at.is_(None),
        )
    ):
        if row.expires_at > now:
            ended.append(row.id)
        row.revoked_at = now
    return ended


def request_reschedule(
    db: Database,
    settings: Settings,
    booking_id: str,
    session_ids: Sequence[int],
    *,
    message: str | None = None,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> IssuedRequest:
    """Ask the customer to choose new times for ``session_ids``: the request, a history line
    and the customer's email (ready to send), in one transaction. An open earlier request of
    the booking ends (this one replaces it). Raises NotFoundError, ServiceError."""
    now = now or utcnow()
    message = (message or "").strip() or None
    if message is not None and len(message) > MAX_MESSAGE:
        raise ServiceError("keep the message under 2,000 characters")
    if not 1 <= days <= MAX_DAYS:
        raise ServiceError(f"a request lasts 1 to {MAX_DAYS} days")
    if not session_ids:
        raise ServiceError("name at least one session to reschedule")
    if len(set(session_ids)) != len(session_ids):
        raise ServiceError("a session is named twice")
    with db.writing() as session:
        booking = load_booking(session, booking_id)
        mine = {s.id: s for s in booking.sessions}
        unknown = [sid for sid in session_ids if sid not in mine]
        if unknown:
            raise ServiceError(f"session {unknown[0]} is not part of booking {booking_id}")
        if booking.status is not BookingStatus.ACTIVE:
            raise ServiceError(f"booking {booking_id} is {booking.status.value}; nothing to move")
        cancelled = [
            mine[sid].position for sid in session_ids if mine[sid].status is SessionStatus.CANCELLED
        ]
        if cancelled:
            raise ServiceError(f"session {cancelled[0]} is cancelled; it cannot be moved")
        if booking.event_type_id is None:
            raise ServiceError(
                "this booking's event type was deleted, so there are no times to offer; move "
                "the sessions yourself (`calsync booking reschedule … --force`)"
            )
        manage_url = current_link(settings, booking)
        if manage_url is None:
            raise ServiceError(
                f"booking {booking_id}'s manage link is revoked, and the request travels with "
                f"it: issue a new one first (`calsync booking relink {booking_id}`)"
            )
        replaced = _end_open(session, booking_id, now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        ordered = sorted(session_ids, key=lambda sid: mine[sid].position)
        row = RescheduleRequest(
            booking_id=booking_id,
            session_ids=ordered,
            token_hash=hash_token(token),
            message=message,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        session.add(row)
        session.flush()
        positions = tuple(mine[sid].position for sid in ordered)
        booking.history.append(
            BookingChange(
                actor=Actor.OWNER,
                action=HistoryAction.RESCHEDULE_REQUESTED,
                reason=message,
                details={
                    "request": row.id,
                    "sessions": list(positions),
                    "expires_at": row.expires_at.isoformat(),
                    **({"replaces": replaced} if replaced else {}),
                },
            )
        )
        url = request_url(manage_url, token, ordered)
        mail = RescheduleRequestMail(
            request_id=row.id,
            title=booking.title,
            owner_name=booking.owner.name,
            owner_email=booking.owner.email,
            customer_name=booking.customer_name,
            customer_email=booking.customer_email,
            customer_timezone=booking.customer_timezone,
            sessions=tuple(
                RequestedSession(mine[sid].position, mine[sid].start, mine[sid].end)
                for sid in ordered
            ),
            package_size=len(booking.sessions),
            message=message,
            url=url,
            expires_at=row.expires_at,
        )
        email = compose_reschedule_request(
            mail,
            settings.mail,
            now,
            namespace=installation_namespace(settings.require_secret_key()),
        )
        outbox.enqueue(
            session,
            [("customer", email)],
            booking_id=booking_id,
            box=outbox.sealing_box(settings),
            held=False,
        )
        log.info("booking %s: reschedule request %s for sessions %s", booking_id, row.id, positions)
        return IssuedRequest(row.id, url, row.expires_at, positions)


def revoke_request(
    db: Database, booking_id: str, request_id: int | None = None, *, now: datetime | None = None
) -> list[int]:
    """End the booking's open request (``request_id``: that one only); the ids ended. Raises
    NotFoundError for an unknown booking or request, ServiceError when none is open."""
    now = now or utcnow()
    with db.writing() as session:
        booking = load_booking(session, booking_id)
        if request_id is not None:
            row = session.get(RescheduleRequest, request_id)
            if row is None or row.booking_id != booking_id:
                raise NotFoundError(f"booking {booking_id} has no reschedule request {request_id}")
            state = state_of(row, now)
            if state is not RequestState.OPEN:
                raise ServiceError(f"reschedule request {request_id} is already {state.value}")
            row.revoked_at = now
            ended = [row.id]
        else:
            ended = _end_open(session, booking_id, now)
            if not ended:
                raise ServiceError(f"booking {booking_id} has no open reschedule request")
        booking.history.append(
            BookingChange(
                actor=Actor.OWNER,
                action=HistoryAction.RESCHEDULE_REQUEST_REVOKED,
                details={"requests": ended},
            )
        )
        return ended


def end_with_link(session: Session, booking_id: str, now: datetime) -> None:
    """The manage link was relinked or revoked: the requests' emailed links stop working."""
    _end_open(session, booking_id, now)


def requests_of(db: Database, booking_id: str, *, now: datetime | None = None) -> list[RequestView]:
    """The booking's requests, newest first, with where each stands."""
    now = now or utcnow()
    with db.reading() as session:
        booking = load_booking(session, booking_id)
        position = {s.id: s.position for s in booking.sessions}
        rows = session.scalars(
            select(RescheduleRequest)
            .where(RescheduleRequest.booking_id == booking_id)
            .order_by(RescheduleRequest.id.desc())
        ).all()
        return [
            RequestView(
                r.id,
                tuple(position[sid] for sid in r.session_ids if sid in position),
                r.message,
                r.created_at,
                r.expires_at,
                state_of(r, now),
                r.change_id,
            )
            for r in rows
        ]


def find_request(
    session: Session, booking_id: str, token: str, now: datetime
) -> Grant | RequestState:
    """The open request ``token`` opens on this booking, or why there is none. One indexed
    lookup on the hash, compared in constant time."""
    digest = hash_token(token)
    row = session.scalars(
        select(RescheduleRequest).where(RescheduleRequest.token_hash == digest)
    ).one_or_none()
    if (
        row is None
        or row.booking_id != booking_id
        or not hmac.compare_digest(row.token_hash, digest)
    ):
        return RequestState.UNKNOWN
    state = state_of(row, now)
    if state is not RequestState.OPEN:
        return state
    return Grant(row.id, row.booking_id, frozenset(row.session_ids), row.expires_at, row.message)


def open_grant(db: Database, booking_id: str, token: str, now: datetime | None = None) -> Grant:
    """The open request, or RequestNotOpen."""
    with db.reading() as session:
        found = find_request(session, booking_id, token, now or utcnow())
    if isinstance(found, RequestState):
        raise RequestNotOpen(found)
    return found


def use_request(session: Session, grant_id: int, change_id: int, now: datetime) -> None:
    """Mark the request used by ``change_id`` (in the transaction recording the change)."""
    row = session.get(RescheduleRequest, grant_id)
    assert row is not None
    row.used_at = now
    row.change_id = change_id
