"""The outbox: every email is a row before it is a message on the wire.

Messages are rendered and stored in the same transaction as the change they tell about, as
*held*; they are *released* once the owner's calendar has taken the change (or *dropped* if
the change did not happen). A delivery job claims ready rows with a lease (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, as the poller does), sends them, and records the delivery;
transient failures are retried with exponential backoff, permanent ones are marked failed.

A crash between handing a message to the SMTP server and recording it can only lead to the
same message being sent again with the same Message-ID (mail and calendar clients drop
such repeats); it can never lead to a message being lost. Once a message is sent (or dropped)
its body is deleted, with the same update: only the columns stay as its history. A database
error in the middle of a batch is not a crash: the delivered message is recorded as soon as the
database answers again (it stays claimed until then, so no one sends it again). Messages are
claimed one at a time, so a worker that dies (or loses the database) holds at most the one it
was sending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from weakref import WeakKeyDictionary

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from calsync.config import Settings
from calsync.notify.transport import DeliveryError, MailTransport
from calsync.observe import metrics
from calsync.secretbox import SecretBox, SecretKeyMismatch
from calsync.store import leases
from calsync.store.db import Database
from calsync.store.models import OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)

BATCH = 20
LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=6)
# What a sent or dropped row keeps of its message: nothing. The customer's copy holds a working
# manage link, and a database backup must not; the history needs only the columns (recipient,
# subject, Message-ID, state, times). Until then (held, ready, failed: `calsync outbox retry`
# sends it again) the message is kept encrypted with secret_key, behind this prefix; rows
# queued before that (migration 0007) are plain text until they are sent.
SENT_BODY = b""
SEALED = b"calsync-sealed-v1:"


def sealing_box(settings: Settings) -> SecretBox:
    """The key that keeps messages encrypted while they wait."""
    return SecretBox(settings.require_secret_key(), "outbox messages v1")


def unseal(box: SecretBox, stored: bytes) -> bytes:
    """The message as it will be sent, from what a row holds. Raises SecretKeyMismatch when
    secret_key changed since it was queued."""
    if not stored.startswith(SEALED):
        return stored
    return box.decrypt_bytes(stored[len(SEALED) :])


# Messages handed to the SMTP server whose delivery the database did not take (message id →
# when it went out), per database; recorded before the next batch is claimed.
_unrecorded: WeakKeyDictionary[Database, dict[int, datetime]] = WeakKeyDictionary()
_unrecorded_lock = threading.Lock()


def enqueue(
    session: Session,
    messages: Iterable[tuple[str, EmailMessage]],
    *,
    booking_id: str | None,
    box: SecretBox,
    change_id: int | None = None,
    held: bool = True,
) -> list[OutboxMessage]:
    """Store ``(role, message)`` pairs in the caller's transaction (``booking_id`` None: a
    message to the owner that is about no booking)."""
    rows = []
    for role, message in messages:
        row = OutboxMessage(
            booking_id=booking_id,
            change_id=change_id,
            recipient=str(message["To"]),
            role=role,
            subject=str(message["Subject"]),
            message_id=str(message["Message-ID"]),
            raw=SEALED + box.encrypt_bytes(message.as_bytes()),
            status=OutboxStatus.HELD if held else OutboxStatus.READY,
        )
        session.add(row)
        rows.append(row)
    return rows


def release(session: Session, *, booking_id: str, change_id: int | None = None) -> None:
    """Held messages of a change (or, with no change, of the booking itself) may go now."""
    _set_held(session, booking_id, change_id, OutboxStatus.READY)


def drop(session: Session, *, booking_id: str, change_id: int | None = None) -> None:
    """Held messages of a change that did not happen are never sent."""
    _set_held(session, booking_id, change_id, OutboxStatus.DROPPED)


def _set_held(
    session: Session, booking_id: str, change_id: int | None, status: OutboxStatus
) -> None:
    match = OutboxMessage.change_id == change_id if change_id else OutboxMessage.change_id.is_(None)
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.booking_id == booking_id,
            match,
            OutboxMessage.status == OutboxStatus.HELD,
        )
        .values(status=status, next_attempt_at=utcnow())
        .values({"raw": SENT_BODY} if status is OutboxStatus.DROPPED else {})
    )


def claim(
    db: Database,
    worker: str,
    *,
    now: datetime | None = None,
    limit: int = BATCH,
    lease: timedelta = LEASE,
) -> list[int]:
    now = now or utcnow()
    with db.writing() as session:
        ids = leases.claim(
            session,
            OutboxMessage,
            now=now,
            lease=lease,
            limit=limit,
            where=[
                OutboxMessage.status == OutboxStatus.READY,
                OutboxMessage.next_attempt_at <= now,
            ],
            order_by=[OutboxMessage.id],
            owner=worker,
        )
    return ids


def deliver_due(
    db: Database,
    transport: MailTransport,
    worker: str,
    box: SecretBox,
    *,
    lease: timedelta = LEASE,
) -> int:
    """Send what is due, up to ``BATCH`` messages (``box``: see ``sealing_box``); returns how
    many were sent. Never raises for a delivery problem. ``lease``: how long each message is
    held while it is sent (``mail.claim_seconds``).

    Messages are claimed one at a time, just before each is sent: a worker killed in the middle
    leaves only the message it was sending to wait out its claim, not the rest of a batch.
    A database error is raised after the message in hand is cleaned up as far as the database
    allows: recorded if it was delivered, released if it was not.
    """
    _record_unrecorded(db)
    sent = 0
    for _ in range(BATCH):
        claimed = claim(db, worker, limit=1, lease=lease)
        if not claimed:
            break
        (message_id,) = claimed
        try:
            if _deliver_one(db, transport, worker, box, message_id):
                sent += 1
        except SQLAlchemyError:
            with _unrecorded_lock:
                delivered = message_id in _unrecorded.get(db, {})
            log.warning("database error during delivery; giving the message back")
            try:
                _record_unrecorded(db)
                _release(db, [] if delivered else [message_id], worker)
            except SQLAlchemyError:
                log.warning("could not give the message back; its claim expires in %s", lease)
            raise
    return sent


def _deliver_one(
    db: Database, transport: MailTransport, worker: str, box: SecretBox, message_id: int
) -> bool:
    with db.reading() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        stored = row.raw

    try:
        transport.send(_message_of(box, stored))  # type: ignore[arg-type]
    except DeliveryError as exc:
        metrics.DELIVERIES.labels("failed" if exc.permanent else "retry").inc()
        _failed(db, message_id, worker, exc)
        return False
    metrics.DELIVERIES.labels("sent").inc()
    delivered_at = utcnow()
    try:
        with db.writing() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == worker)
                .values(
                    status=OutboxStatus.SENT,
                    raw=SENT_BODY,
                    sent_at=delivered_at,
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                )
            )
    except SQLAlchemyError:
        # It went out: it must be recorded, never sent again. It keeps its claim until then.
        with _unrecorded_lock:
            _unrecorded.setdefault(db, {})[message_id] = delivered_at
        raise
    return True


def _record_unrecorded(db: Database) -> None:
    """Record the deliveries a database error kept from being recorded."""
    with _unrecorded_lock:
        waiting = dict(_unrecorded.get(db, {}))
    if not waiting:
        return
    with db.writing() as session:
        for message_id, delivered_at in waiting.items():
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.READY)
                .values(
                    status=OutboxStatus.SENT,
                    raw=SENT_BODY,
                    sent_at=delivered_at,
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                )
            )
    with _unrecorded_lock:
        recorded = _unrecorded.get(db, {})
        for message_id in waiting:
            recorded.pop(message_id, None)
    log.info("recorded %d delivery(ies) the database had missed", len(waiting))


def _release(db: Database, message_ids: list[int], worker: str) -> None:
    """Give claimed messages back for the next round (the batch stopped before them)."""
    if not message_ids:
        return
    with db.writing() as session:
        leases.release(session, OutboxMessage, message_ids, owner=worker)


def _message_of(box: SecretBox, stored: bytes) -> Message:
    try:
        raw = unseal(box, stored)
    except SecretKeyMismatch as exc:
        raise DeliveryError(f"{exc}; the message cannot be sent", permanent=True) from exc
    return message_from_bytes(raw, policy=policy.SMTP)


def _failed(db: Database, message_id: int, worker: str, exc: DeliveryError) -> None:
    with db.writing() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        if row.lease_owner != worker:
            return
        row.attempts += 1
        row.last_error = str(exc)
        row.lease_owner = row.lease_until = None
        if exc.permanent:
            row.status = OutboxStatus.FAILED
            log.warning("message to %s failed for good: %s", row.recipient, exc)
            return
        wait = leases.backoff(row.attempts, base=RETRY_BASE, cap=RETRY_CAP, spread=0.25)
        row.next_attempt_at = utcnow() + wait
        log.info("message to %s: %s; retrying in %s", row.recipient, exc, wait)


def list_messages(db: Database, status: OutboxStatus | None = None) -> list[OutboxMessage]:
    with db.reading() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        return list(session.scalars(query))


def retry(db: Database, message_ids: Iterable[int] | None = None) -> int:
    """Queue failed messages (all, or the given ones) again; returns how many."""
    with db.writing() as session:
        query = update(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED)
        ids = list(message_ids or [])
        if ids:
            query = query.where(OutboxMessage.id.in_(ids))
        result = session.execute(
            query.values(status=OutboxStatus.READY, next_attempt_at=utcnow(), attempts=0)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
