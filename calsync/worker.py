"""The background work of a calsync process: polling calendars, applying changes that a
calendar outage left pending, delivering the outbox, removing what failed bookings left in
calendars, and (with ``[payments]``) releasing expired holds and sending due refunds. Used by
``calsync worker``, ``calsync serve`` and the demo."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from calsync.bookings import changes
from calsync.bookings.leftovers import remove_leftovers
from calsync.bookings.polling import booking_poller
from calsync.config import Settings
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.store.db import Database, unreachable
from calsync.sync.poller import Poller
from calsync.sync.providers import open_provider

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
    # The worker lives long: its polls reuse CalDAV clients (closed by ``poller.stop()``).
    poller = booking_poller(db, settings, provider_factory=open_provider(settings, pooled=True))
    transport = transport_from_settings(settings.mail)
    box = outbox.sealing_box(settings)
    claim = timedelta(seconds=settings.mail.claim_seconds)
    retry_pending = guarded(
        "applying pending changes",
        lambda: changes.apply_pending(db, settings, poller.open_provider),
    )
    deliver = guarded(
        "delivering the outbox",
        lambda: outbox.deliver_due(db, transport, poller.worker_id, box, lease=claim),
    )
    clean_up = guarded(
        "removing what failed bookings left",
        lambda: remove_leftovers(db, settings, poller.open_provider),
    )
    jobs = [
        ("calsync-apply-pending", retry_pending),
        ("calsync-deliver", deliver),
        ("calsync-remove-leftovers", clean_up),
    ]
    if settings.payments is not None:
        chores = guarded("payment chores", lambda: payment_chores(db, settings))
        jobs.append(("calsync-payments", chores))
    poller.start(extra_jobs=jobs)
    return poller


def payment_chores(db: Database, settings: Settings) -> None:
    """Release holds that ran out unpaid (their slots are offered again), re-read the intents
    still awaiting payment (a payment whose webhook never came is applied or refunded), finish
    or refund the booking page's paid checkouts, and send the refunds that are due (retrying
    those Stripe could not take before), and re-read the refunds Stripe left pending."""
    from calsync.payments import checkout, service
    from calsync.payments.gateway import StripeGateway

    assert settings.payments is not None
    gateway = StripeGateway.from_settings(settings.payments)
    service.expire_holds(db, settings, gateway)
    service.check_open_intents(db, settings, gateway)
    checkout.expire(db, settings, gateway)
    service.pay_refunds(db, gateway)
    service.check_pending_refunds(db, gateway)
