"""The poller as the service runs it: each stored poll is followed by what bookings do with it.

``calsync.sync.poller`` knows calendars, not bookings; this wires in the owner's own moves and
deletes of booked events (``owner_changes``, inside the poll's transaction) and the adoption of
newly arrived matching events (``adoption``, after it), and the changes that waited for a calendar
that answers again (``apply.due_on_return``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from calsync.bookings.adoption import adopt
from calsync.bookings.apply import due_on_return
from calsync.bookings.owner_changes import apply_owner_changes
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import utcnow
from calsync.sync.poller import Poller, PollHooks
from calsync.sync.providers import ProviderFactory

BOOKING_HOOKS = PollHooks(stored=apply_owner_changes, arrived=adopt, recovered=due_on_return)


def booking_poller(
    db: Database,
    settings: Settings,
    *,
    worker_id: str | None = None,
    provider_factory: ProviderFactory | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Poller:
    """A poller whose stored polls carry on into bookings (what every process runs)."""
    return Poller(
        db,
        settings,
        worker_id=worker_id,
        provider_factory=provider_factory,
        clock=clock,
        hooks=BOOKING_HOOKS,
    )
