"""Telling an owner about their calendars: today, that a Google calendar needs reconnecting.

The email goes through the outbox like every other (ready at once: there is no calendar write
to wait for); the log and ``calsync calendar list`` say the same thing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.compose import installation_namespace
from calsync.notify.owner_alert import ReconnectAlert, compose_reconnect
from calsync.store.models import CalendarConnection

log = logging.getLogger(__name__)


def queue_reconnect(
    session: Session,
    settings: Settings,
    connection: CalendarConnection,
    detail: str,
    now: datetime,
) -> None:
    """Log, and email the owner (in the caller's transaction), that ``connection`` needs a new
    Google sign-in. Call it once, when the connection goes into that state."""
    owner = connection.owner
    log.warning(
        "calendar #%s (%s): Google access was revoked or expired; not polling it until %s "
        "connects it again (email queued)",
        connection.id,
        connection.display_name or connection.url,
        owner.email,
    )
    alert = ReconnectAlert(
        owner_name=owner.name,
        owner_email=owner.email,
        calendar_number=connection.id,
        calendar_name=connection.display_name or connection.url,
        google_calendar_id=connection.url,
        detail=detail,
        since=now,
    )
    try:
        namespace = installation_namespace(settings.require_secret_key())
        message = compose_reconnect(alert, settings.mail, now, namespace=namespace)
    except ValueError as exc:  # an owner address no header can hold: the log must do
        log.error("calendar #%s: cannot email %r: %s", connection.id, owner.email, exc)
        return
    outbox.enqueue(
        session,
        [("owner", message)],
        booking_id=None,
        box=outbox.sealing_box(settings),
        held=False,
    )
