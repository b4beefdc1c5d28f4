"""The background work of a calsync process: polling calendars, applying changes that a
calendar outage left pending, and delivering the outbox. Used by ``calsync worker``,
``calsync serve`` and the demo."""

from __future__ import annotations

import logging
from collections.abc import Callable

from calsync.bookings import changes
from calsync.bookings.polling import booking_poller
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database, unreachable
from calsync.sync.poller import Poller

log = logging.getLogger(__name__)


def guarded(what: str, job: Callable[[], object]) -> Callable[[], None]:
    """``job`` as a background job that never raises: the next beat tries again. A database
    that cannot be reached (a restart) is one line in the log; anything else is logged with
    its traceback."""

    def run() -> None:
        try:
            job()
        except Exception as exc:  # one bad run must not stop the job
            if unreachable(exc):
                log.warning("%s: the database cannot be reached; will try again", what)
            else:
                log.exception("%s failed; will try again", what)

    return run


def start_background(db: Database, settings: Settings) -> Poller:
    """Start polling and retrying in background threads; stop with ``.stop()``."""
    poller = booking_poller(db, settings)
    transport = transport_from_settings(settings.mail)
    box = outbox.sealing_box(settings)
    retry_pending = guarded(
        "applying pending changes",
        lambda: changes.apply_pending(db, settings, poller.open_provider),
    )
    deliver = guarded(
        "delivering the outbox",
        lambda: outbox.deliver_due(db, transport, poller.worker_id, box),
    )
    poller.start(
        extra_jobs=[("calsync-apply-pending", retry_pending), ("calsync-deliver", deliver)]
    )
    return poller
