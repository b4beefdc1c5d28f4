"""The owner's sentences for the change engine's refusals, shared by the owner's faces.

The engine (``bookings/plan.py``) refuses with typed fields and no words. The CLI
(``cli/messages.py``) and the admin API (``web/errors.py``) word those refusals for the same
reader, the owner, and differ only in how they spell a few things: how to override the checks
(``--force`` or ``"force": true``), the fields' names and what the owner does next. Each face
passes its ``OwnerSpelling``; the sentences themselves live here once. (The customer's words
are the manage page's, ``web/manage/wording.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from calsync.bookings.plan import Refusal, RefusalKind
from calsync.policy.refusal import availability_command


@dataclass(frozen=True)
class OwnerSpelling:
    """What differs between the owner's faces."""

    force: str  # how to skip the checks: "--force", '"force": true'
    force_verb: str  # "use" (a flag), "send" (a field)
    stale: str  # the booking changed since it was read, and what to do
    replay: str  # the idempotency key came with another change
    sessions: str  # how sessions are chosen, appended to "choose at least one session"
    reason: str  # how a reason is given, appended to "a reason is required"
    no_event_type: str  # what to do when the booking's event type is gone
    capitalise_policy: bool = False  # "Session 2: …" (the API's historic spelling)


def owner_refusal(refusal: Refusal, spelling: OwnerSpelling) -> str:
    """The engine's refusal in one sentence for the owner, spelt as ``spelling`` says."""
    match refusal.kind:
        case RefusalKind.STALE:
            return spelling.stale
        case RefusalKind.REPLAY_MISMATCH:
            return spelling.replay
        case RefusalKind.NO_SESSIONS:
            return f"choose at least one session{spelling.sessions}"
        case RefusalKind.NOT_IN_BOOKING:
            return "a chosen session is not part of this booking"
        case RefusalKind.INACTIVE:
            return "this booking is no longer active"
        case RefusalKind.NOT_ALLOWED:
            session = "Session" if spelling.capitalise_policy else "session"
            return f"{session} {refusal.position}: {refusal.policy_reason}"
        case RefusalKind.REASON_REQUIRED:
            return f"a reason is required{spelling.reason}"
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
                f"move them apart, or {spelling.force_verb} {spelling.force}"
            )
        case RefusalKind.PAST:
            return f"session {refusal.position}: that time has already passed"
        case RefusalKind.NO_EVENT_TYPE:
            return f"this booking's event type was deleted; {spelling.no_event_type}"
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
                f"with {spelling.force}, which skips the busy, hours, notice and grid checks"
            )
