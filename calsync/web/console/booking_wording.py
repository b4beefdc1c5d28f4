"""The console's words for what the booking services refuse, for the owner in a browser: the
one place a refusal of the change engine, a reschedule request or a link action becomes a
sentence on a console page (the API words them in ``web/errors.py``, the CLI in
``cli/messages.py``, the customer's page in ``web/manage/wording.py``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from calsync.bookings.plan import Refusal, RefusalKind
from calsync.policy.refusal import availability_command

STALE = (
    "This booking changed while you were looking at it (the customer or a calendar moved "
    "something), so nothing was changed. Here it is as it is now; please try again."
)
CALENDAR_UNREAD = (
    "The conflict calendars have not been read yet, so the new time cannot be checked; "
    "nothing was changed. Try again in a minute, or tick “Move anyway”."
)
CALENDAR_UPDATING = (
    "A calendar is being read at this very moment, so nothing was changed. Try again in a moment."
)


def refusal_words(refusal: Refusal, zone: ZoneInfo) -> str:
    """The sentence for a refusal of the owner's move or cancel; times in ``zone`` (the
    owner's)."""
    match refusal.kind:
        case RefusalKind.STALE:
            return STALE
        case RefusalKind.REPLAY_MISMATCH:
            return "This form was already sent with other choices; reload the page and try again."
        case RefusalKind.NO_SESSIONS:
            return "Choose at least one session."
        case RefusalKind.NOT_IN_BOOKING:
            return "A chosen session is not part of this booking."
        case RefusalKind.INACTIVE:
            return "This booking is no longer active."
        case RefusalKind.NOT_ALLOWED:
            return f"Session {refusal.position}: {refusal.policy_reason}"
        case RefusalKind.REASON_REQUIRED:
            return "Please give a reason."
        case RefusalKind.REASON_TOO_LONG:
            return "Please keep the reason under 2,000 characters."
        case RefusalKind.ALREADY_CANCELLED:
            return f"Session {refusal.position} is already cancelled."
        case RefusalKind.NO_OFFSET:
            return "That is not a time."
        case RefusalKind.SAME_TIME:
            return "Two sessions cannot move to the same time."
        case RefusalKind.OVERLAP:
            return (
                f"Sessions {refusal.position} and {refusal.other_position} would overlap; "
                "move them apart, or tick “Move anyway”."
            )
        case RefusalKind.PAST:
            return f"Session {refusal.position}: that time has already passed."
        case RefusalKind.NO_EVENT_TYPE:
            return (
                "This booking's event type was deleted, so its times cannot be checked; tick "
                "“Move anyway” or move the event in your calendar."
            )
        case RefusalKind.TAKEN:
            return f"Session {refusal.position}: the new time is not free."
        case RefusalKind.NOT_OFFERED:
            at = (
                refusal.at.astimezone(ZoneInfo(refusal.zone))
                if refusal.at and refusal.zone
                else None
            )
            when = f"{at:%a %d %b %Y, %H:%M}" if at else "that time"
            hint = ""
            if at is not None:
                command = availability_command(refusal.event_type or "SLUG", at.date())
                hint = f" (the free times: the event type's preview, or `{command}`)"
            return (
                f"Session {refusal.position}: {when} is {refusal.why_text}{hint}. Tick “Move "
                "anyway” to move it there regardless (no busy, hours, notice or grid checks)."
            )
