"""The background work of a calsync process: polling calendars, applying changes that a
calendar outage left pending, delivering the outbox, and (with ``[payments]``) releasing
expired holds and sending due refunds. Used by ``calsync worker``,
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

    jobs = [("calsync-apply-pending", retry_pending), ("calsync-deliver", deliver)]
    if settings.payments is not None:
        jobs.append(("calsync-payments", lambda: payment_chores(db, settings)))
    poller.start(extra_jobs=jobs)
    return poller


def payment_chores(db: Database, settings: Settings) -> None:
    """Release holds that ran out unpaid (their slots are offered again) and send the refunds
    that are due (retrying those Stripe could not take before)."""
    from calsync.payments import service
    from calsync.payments.gateway import StripeGateway

    assert settings.payments is not None
    try:
        gateway = StripeGateway.from_settings(settings.payments)
        service.expire_holds(db, gateway)
        service.pay_refunds(db, gateway)
    except Exception:  # Stripe or the database briefly away; the next beat tries again
        log.exception("payment chores failed; will try again")
