"""One-time sign-in links for the owner's console.

The operator invites an owner (``calsync owner invite``, ``POST /api/owners/{id}/console-invite``)
and the owner asks for a new link later on ``/console/sign-in``. Either way a link is 192
random bits; the database keeps its SHA-256 only, and the email carrying it goes through the
outbox in the same transaction as the link row. A link opens one session, once, within
``LINK_MINUTES``; after that, or once used, it opens nothing, and every failure looks the same.

Errors: ``ServiceError``/``NotFoundError`` of ``sync.connections`` (an unknown owner when the
operator invites); asking for a link for an unknown address is not an error (the page answers
the same either way, so it tells nobody who has an account).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.compose import installation_namespace
from calsync.notify.sign_in_mail import SignInMail, compose_sign_in
from calsync.store.console_rows import ConsoleSignInLink
from calsync.store.db import Database
from calsync.store.models import Owner, utcnow
from calsync.sync import connections as services
from calsync.token_hash import hash_token

log = logging.getLogger(__name__)

LINK_MINUTES = 15
# Used and expired links are of no use to anyone; kept a day (for the log's sake), then swept
# away whenever a new link is made.
KEEP_OLD = timedelta(days=1)
TOKEN_BYTES = 24  # 192 bits, 32 URL-safe characters
LINK_PATH = "/console/link"
SIGN_IN_PATH = "/console/sign-in"


@dataclass(frozen=True, slots=True)
class SentLink:
    """What the operator is told: to whom, and until when the link works (never the link)."""

    owner_id: int
    email: str
    expires_at: datetime


def link_url(settings: Settings, token: str) -> str:
    # From the configured base URL, never from a request's Host header.
    return f"{settings.base_url.rstrip('/')}{LINK_PATH}/{token}"


def invite(db: Database, settings: Settings, email: str) -> SentLink:
    """Email the owner with ``email`` a sign-in link (invitation wording). Raises NotFoundError
    for an unknown address."""
    owner = services.find_owner(db, email)
    expires_at, _ = _send_link(db, settings, owner, invited=True)
    log.info("console: invitation queued for owner %s", owner.id)
    return SentLink(owner.id, owner.email, expires_at)


def invite_by_id(db: Database, settings: Settings, owner_id: int) -> SentLink:
    owner = services.get_owner(db, owner_id)
    return invite(db, settings, owner.email)


def request_link(db: Database, settings: Settings, email: str) -> None:
    """A new sign-in link for the owner with ``email``, if there is one; nothing otherwise.
    The caller answers the same in both cases."""
    address = email.strip()
    if not address or len(address) > 320:
        return
    with db.reading() as session:
        owner = session.scalars(select(Owner).where(Owner.email == address.lower())).one_or_none()
    if owner is None:
        log.info("console: sign-in link asked for an address that is no owner's")
        return
    _send_link(db, settings, owner, invited=False)
    log.info("console: sign-in link queued for owner %s", owner.id)


def issue_link(db: Database, settings: Settings, owner_id: int) -> tuple[str, datetime]:
    """A sign-in link without an email (``make demo`` prints it): (link, expiry)."""
    owner = services.get_owner(db, owner_id)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = utcnow() + timedelta(minutes=LINK_MINUTES)
    with db.writing() as session:
        _sweep(session)
        session.add(
            ConsoleSignInLink(
                owner_id=owner.id, token_hash=hash_token(token), expires_at=expires_at
            )
        )
    return link_url(settings, token), expires_at


def _send_link(
    db: Database, settings: Settings, owner: Owner, *, invited: bool
) -> tuple[datetime, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = hash_token(token)
    now = utcnow()
    expires_at = now + timedelta(minutes=LINK_MINUTES)
    message = compose_sign_in(
        SignInMail(
            owner_name=owner.name,
            owner_email=owner.email,
            link=link_url(settings, token),
            sign_in_page=f"{settings.base_url.rstrip('/')}{SIGN_IN_PATH}",
            minutes=LINK_MINUTES,
            invited=invited,
            token_hash=digest,
        ),
        settings.mail,
        now,
        namespace=installation_namespace(settings.require_secret_key()),
    )
    with db.writing() as session:
        _sweep(session)
        session.add(ConsoleSignInLink(owner_id=owner.id, token_hash=digest, expires_at=expires_at))
        # Ready at once: there is no calendar write to wait for.
        outbox.enqueue(
            session,
            [("owner", message)],
            booking_id=None,
            box=outbox.sealing_box(settings),
            held=False,
        )
    return expires_at, digest


def _sweep(session: Session) -> None:
    session.execute(
        delete(ConsoleSignInLink).where(ConsoleSignInLink.expires_at < utcnow() - KEEP_OLD)
    )


def redeem(db: Database, token: str, *, now: datetime | None = None) -> int | None:
    """The owner id the link opens, marking it used in the same statement (so two clicks
    racing open one session); None for unknown, used and expired links alike."""
    now = now or utcnow()
    if not token or len(token) > 100:
        return None
    digest = hash_token(token)
    with db.writing() as session:
        used = session.execute(
            update(ConsoleSignInLink)
            .where(
                ConsoleSignInLink.token_hash == digest,
                ConsoleSignInLink.used_at.is_(None),
                ConsoleSignInLink.expires_at > now,
            )
            .values(used_at=now)
        )
        if int(used.rowcount or 0) != 1:  # type: ignore[attr-defined]
            return None
        owner_id: int = session.scalars(
            select(ConsoleSignInLink.owner_id).where(ConsoleSignInLink.token_hash == digest)
        ).one()
    return owner_id


def link_is_open(db: Database, token: str, *, now: datetime | None = None) -> bool:
    """Whether the link would still sign in (for the page a mail scanner's GET sees)."""
    now = now or utcnow()
    if not token or len(token) > 100:
        return False
    with db.reading() as session:
        found = session.scalars(
            select(ConsoleSignInLink.id).where(
                ConsoleSignInLink.token_hash == hash_token(token),
                ConsoleSignInLink.used_at.is_(None),
                ConsoleSignInLink.expires_at > now,
            )
        ).one_or_none()
    return found is not None
