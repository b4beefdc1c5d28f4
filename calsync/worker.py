"""The background work of a calsync process: polling calendars, applying changes that a
calendar outage left pending, and delivering the outbox. Used by ``calsync worker``,
``calsync serve`` and the demo."""

from __future__ import annotations

import logging

from calsync.bookings import changes
from calsync.bookings.polling import booking_poller
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database
from calsync.sync.poller import Poller

log = logging.getLogger(__name__)


def start_background(db: Database, settings: Settings) -> Poller:
    """Start polling and retrying in background threads; stop with ``.stop()``."""
    poller = booking_poller(db, settings)

    def retry_pending() -> None:
        try:
            changes.apply_pending(db, settings, poller.open_provider)
        except Exception:  # one bad change must not stop the job; it is logged and retried
            log.exception("applying pending changes failed; will try again")

    transport = transport_from_settings(settings.mail)
    box = outbox.sealing_box(settings)

    def deliver() -> None:
        try:
            outbox.deliver_due(db, transport, poller.worker_id, box)
        except Exception:  # the database may be briefly away; the next beat tries again
            log.exception("delivering the outbox failed; will try again")

    poller.start(
        extra_jobs=[("calsync-apply-pending", retry_pending), ("calsync-deliver", deliver)]
    )
    return poller
