"""Fresh busy time for a commit: a booking or a customer's move never relies on busy time
older than the request.

Before the commit, each conflict calendar is polled incrementally:

- if its lease is free, we take it, poll, and store the mirror and nothing else (no owner-change
  processing, no adoption, no link writes: the worker follows up on its next tick, see
  ``poller``), with the usual fence (a lease that lapsed meanwhile stores nothing; what was
  fetched is still used for this check);
- if another worker holds the lease (its poll may have read the server before the owner's
  newest event), we read the delta since the stored cursor without the lease and without
  storing it, and its busy time is added to the check (``extra_busy``). Cursor and ETags only
  move forward, so that delta plus the mirror at commit time is at least as new as the request.

No thread pool is made: the calendars are polled one after the other in the request's thread.
A calendar we polled under its lease that cannot be read raises ``AvailabilityUnknown`` (as
before); one another worker is polling and that we cannot read alongside it raises
``BusyTimeNotFresh``: nothing is committed, and the caller may try again in a moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from calsync.calendars.errors import ProviderError
from calsync.config import Settings
from calsync.policy.types import Span
from calsync.store.db import Database
from calsync.store.models import SyncOutcome
from calsync.sync import mirror
from calsync.sync.connections import ServiceError
from calsync.sync.poller import Poller, default_worker_id
from calsync.sync.providers import ProviderFactory

log = logging.getLogger(__name__)


class BusyTimeNotFresh(ServiceError):
    """Another worker is polling the calendar and it could not be read alongside; nothing was
    committed. The faces word it as "try again in a moment"."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(
            f"calendar {connection_id} is being polled by another worker and could not be "
            "read alongside it"
        )
        self.connection_id = connection_id


class CalendarUnread(Exception):
    """A calendar polled under its lease could not be read (``error`` says why)."""

    def __init__(self, connection_id: int, error: str) -> None:
        super().__init__(connection_id, error)
        self.connection_id = connection_id
        self.error = error


def refresh(
    db: Database, settings: Settings, connection_ids: Sequence[int], factory: ProviderFactory
) -> list[Span]:
    """Poll ``connection_ids`` for a commit; returns busy time read but not stored (to pass as
    ``extra_busy``). Raises CalendarUnread, BusyTimeNotFresh."""
    if not connection_ids:
        return []
    poller = Poller(
        db, settings, worker_id=f"request:{default_worker_id()}", provider_factory=factory
    )
    claimed = set(poller.claim_due(len(connection_ids), only=connection_ids))
    extra: list[Span] = []
    for connection_id in connection_ids:
        if connection_id in claimed:
            result, fetched = poller.poll_mirror_only(connection_id)
            if result.error:
                raise CalendarUnread(connection_id, result.error)
            if result.outcome is SyncOutcome.LEASE_LOST and fetched is not None:
                extra += _spans(fetched.expanded[: fetched.changed])
            continue
        try:
            extra += _spans(poller.read_without_lease(connection_id))
        except ProviderError as exc:
            # The faces say "try again in a moment"; the server's failure is logged once, by
            # the lease holder's poll, which meets it too.
            log.debug("calendar #%s: could not be read alongside a poll: %s", connection_id, exc)
            raise BusyTimeNotFresh(connection_id) from exc
    return extra


def _spans(items: Sequence[mirror.ExpandedItem]) -> list[Span]:
    # Keyed by the event's UID, so a session being moved does not block itself.
    return [Span(i.start, i.end, item.uid) for item in items for i in item.intervals]
