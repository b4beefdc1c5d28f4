"""Manage links: capability URLs that let a customer manage one booking.

A token is 192 random bits from ``secrets``. The database keeps its SHA-256 (to find the
booking) and, encrypted, the token itself (so the owner can be shown the link again). Unknown,
revoked and expired tokens are answered the same way: every lookup costs one indexed query on
the hash, and nothing about why a token failed leaves this module.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.config import Settings
from calsync.secretbox import SecretBox
from calsync.store.models import Booking, utcnow
from calsync.token_hash import hash_token

TOKEN_BYTES = 24  # 192 bits; the URL-safe form is 32 characters


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token: str
    token_hash: str
    token_encrypted: str
    expires_at: datetime


def issue(settings: Settings, last_session_end: datetime) -> IssuedLink:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return IssuedLink(
        token=token,
        token_hash=hash_token(token),
        token_encrypted=SecretBox(settings.require_secret_key()).encrypt(token),
        expires_at=last_session_end + timedelta(days=settings.bookings.link_grace_days),
    )


def manage_url(settings: Settings, token: str) -> str:
    # Always from the configured base URL, never from a request's Host header.
    return f"{settings.base_url}/m/{token}"


def booking_for_token(
    session: Session, token: str, *, now: datetime | None = None
) -> Booking | None:
    """The booking a valid token opens, or None for unknown, revoked and expired tokens."""
    digest = hash_token(token)
    booking = session.scalars(
        select(Booking)
        .options(selectinload(Booking.sessions), selectinload(Booking.owner))
        .where(Booking.token_hash == digest)
    ).one_or_none()
    if booking is None or booking.token_hash is None:
        return None
    if not hmac.compare_digest(booking.token_hash, digest):
        return None
    if booking.token_expires_at is None or booking.token_expires_at <= (now or utcnow()):
        return None
    return booking


def current_link(settings: Settings, booking: Booking) -> str | None:
    """The booking's link, for the owner; None when it was revoked."""
    if booking.token_encrypted is None:
        return None
    token = SecretBox(settings.require_secret_key()).decrypt(booking.token_encrypted)
    return manage_url(settings, token)
