"""Server-side console sessions: what the cookie names, and when it stops working.

The cookie carries 256 random bits; the table keeps their SHA-256. A session ends at
sign-out (``end``: the row is marked, so the same cookie, even a copy of it, opens nothing
after), after ``idle`` without a request, or at its absolute expiry, whichever comes first.
``check`` slides the idle window at most once a minute, so reading pages does not write the
database on every request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update

from calsync.store.console_rows import ConsoleSession
from calsync.store.db import Database
from calsync.store.models import Owner, utcnow
from calsync.token_hash import hash_token

TOKEN_BYTES = 32
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, slots=True)
class SignedInOwner:
    """The owner a request is signed in as. ``session_hash`` ties the forms' anti-CSRF tokens
    to this session (a new sign-in makes new tokens)."""

    owner_id: int
    name: str
    email: str
    timezone: str
    slug: str
    session_hash: str


def start(db: Database, owner_id: int, times: SessionTimes) -> str:
    """A new session for the owner; returns the cookie's value (kept nowhere else)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    with db.writing() as session:
        # Sessions long over are of no use to anyone: each sign-in sweeps them away.
        session.execute(
            delete(ConsoleSession).where(
                or_(ConsoleSession.expires_at < now, ConsoleSession.ended_at.is_not(None))
            )
        )
        session.add(
            ConsoleSession(
                owner_id=owner_id,
                token_hash=hash_token(token),
                created_at=now,
                last_seen_at=now,
                expires_at=now + times.absolute,
            )
        )
    return token


def check(
    db: Database, token: str, times: SessionTimes, *, now: datetime | None = None
) -> SignedInOwner | None:
    """The owner signed in with ``token``, or None when the session is unknown, ended, idle
    too long or past its expiry."""
    now = now or utcnow()
    if not token or len(token) > 100:
        return None
    digest = hash_token(token)
    with db.reading() as session:
        row = session.execute(
            select(ConsoleSession, Owner)
            .join(Owner, Owner.id == ConsoleSession.owner_id)
            .where(ConsoleSession.token_hash == digest)
        ).one_or_none()
    if row is None:
        return None
    stored, owner = row
    if (
        stored.ended_at is not None
        or now >= stored.expires_at
        or now - stored.last_seen_at >= times.idle
    ):
        return None
    if now - stored.last_seen_at >= TOUCH_EVERY:
        with db.writing() as session:
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id == stored.id)
                .values(last_seen_at=now)
            )
    return SignedInOwner(
        owner_id=owner.id,
        name=owner.name,
        email=owner.email,
        timezone=owner.timezone,
        slug=owner.slug,
        session_hash=digest,
    )


def end(db: Database, token: str) -> None:
    """Sign-out: the session stops working at once, for this cookie and every copy of it."""
    with db.writing() as session:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.token_hash == hash_token(token))
            .values(ended_at=utcnow())
        )
