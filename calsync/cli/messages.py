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

from zoneinfo import ZoneInfo

from calsync.bookings.plan import Refusal, RefusalKind
from calsync.policy.refusal import availability_command


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


def refusal_line(refusal: Refusal) -> str:
    """The change engine's refusal, for the owner at the command line."""
    match refusal.kind:
        case RefusalKind.STALE:
            return "the booking changed meanwhile; nothing was changed, look at it again"
        case RefusalKind.REPLAY_MISMATCH:
            return "this idempotency key was already sent with another change; use a new one"
        case RefusalKind.NO_SESSIONS:
            return "choose at least one session (--session)"
        case RefusalKind.NOT_IN_BOOKING:
            return "a chosen session is not part of this booking"
        case RefusalKind.INACTIVE:
            return "this booking is no longer active"
        case RefusalKind.NOT_ALLOWED:
            return f"session {refusal.position}: {refusal.policy_reason}"
        case RefusalKind.REASON_REQUIRED:
            return "a reason is required (--reason)"
        case RefusalKind.REASON_TOO_LONG:
            return "keep the reason under 2,000 characters"
        case RefusalKind.ALREADY_CANCELLED:
            return "a chosen session is already cancelled"
        case RefusalKind.NO_OFFSET:
            return "new times need a UTC offset"
        case RefusalKind.SAME_TIME:
            return "two sessions cannot move to the same time"
        case RefusalKind.OVERLAP:
            return (
                f"sessions {refusal.position} and {refusal.other_position} would overlap; "
                "move them apart, or use --force"
            )
        case RefusalKind.PAST:
            return f"session {refusal.position}: that time has already passed"
        case RefusalKind.NO_EVENT_TYPE:
            return "this booking's event type was deleted; move the event in your calendar"
        case RefusalKind.TAKEN:
            return f"session {refusal.position}'s new time is not free"
        case RefusalKind.NOT_OFFERED:
            assert refusal.at is not None and refusal.zone is not None
            zone = ZoneInfo(refusal.zone)
            local = refusal.at.astimezone(zone)
            command = availability_command(refusal.event_type or "SLUG", local.date())
            return (
                f"session {refusal.position}: {local:%a %Y-%m-%d %H:%M} ({zone.key}) is "
                f"{refusal.why_text}. See the free times with `{command}`, or move it anyway "
                "with --force, which skips the busy, hours, notice and grid checks"
            )
