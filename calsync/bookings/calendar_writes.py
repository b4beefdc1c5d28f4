"""Changing an event in the owner's calendar without ever overwriting the owner's own edits.

Every write is conditional on the version just read (If-Match). When the owner changed the
event in between, the server refuses (Conflict); we read it again and re-apply only our
change to what the owner wrote, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from calsync.calendars.base import CalendarItem, CalendarProvider, Href
from calsync.calendars.errors import Conflict

log = logging.getLogger(__name__)


def patch_event(
    provider: CalendarProvider, href: Href, change: Callable[[str], str], *, attempts: int
) -> CalendarItem:
    """Apply ``change`` to the current text of the event at ``href``; returns what is stored.

    ``change`` must be a pure function of the text (it may run more than once). Raises
    NotFound when the event is gone, Conflict when the owner kept editing through every
    attempt, and other ProviderErrors as they come.
    """
    for attempt in range(1, attempts + 1):
        current = provider.get(href)
        wanted = change(current.data)
        if wanted == current.data:
            return current
        try:
            etag = provider.update(href, wanted, current.etag)
        except Conflict:
            log.info("%s changed while we edited it (attempt %d); re-reading", href, attempt)
            continue
        return CalendarItem(href, etag, wanted)
    raise Conflict(
        f"the event at {href} kept changing while calsync tried to update it; "
        "it will be tried again later",
        url=href,
    )
