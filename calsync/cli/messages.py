"""The CLI's one-line messages for calsync's errors: the one place the command line words them
(``cli/main.py`` prints what ``message`` returns; the web words them in ``web/errors.py`` and
``web/manage/wording.py``).

The error tree the CLI catches (each layer draws its own part in its module docstring):

    ServiceError (sync/connections.py)       a request that cannot be carried out as given
    ├── NotFoundError
    ├── ChangeRefused, StaleBooking, ReplayMismatch, TimeTaken (bookings/changes.py)
    │                                        worded here from their typed ``refusal``
    └── … (packages, event types, links: their message is already the sentence)
    CalendarError (calendars/errors.py)      a calendar server's answer, in plain words
    BusyTimeNotFresh (sync/fresh_busy.py)    a conflict calendar being polled right now
    ConfigError, DatabaseUnavailable, SecretKeyMismatch, RulesError
"""

from __future__ import annotations

from calsync.bookings.owner_words import OwnerSpelling, owner_refusal
from calsync.bookings.plan import Refusal


def message(exc: Exception) -> str:
    """One line saying what happened and what to do."""
    from calsync.bookings.changes import ChangeRefused, ReplayMismatch, StaleBooking, TimeTaken
    from calsync.sync.fresh_busy import BusyTimeNotFresh

    if isinstance(exc, BusyTimeNotFresh):
        return (
            f"calendar {exc.connection_id} is being polled right now; nothing was changed, "
            "try again in a moment"
        )
    if isinstance(exc, ChangeRefused | StaleBooking | ReplayMismatch | TimeTaken):
        return refusal_line(exc.refusal)
    return str(exc)


# How the command line spells what differs between the owner's faces.
_SPELLING = OwnerSpelling(
    force="--force",
    force_verb="use",
    stale="the booking changed meanwhile; nothing was changed, look at it again",
    replay="this idempotency key was already sent with another change; use a new one",
    sessions=" (--session)",
    reason=" (--reason)",
    no_event_type="move the event in your calendar",
)


def refusal_line(refusal: Refusal) -> str:
    """The change engine's refusal, for the owner at the command line."""
    return owner_refusal(refusal, _SPELLING)
