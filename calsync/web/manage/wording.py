"""The manage page's words for what the change engine refuses: the one place a refusal becomes
a customer sentence (the API words them in ``web/errors.py``, the CLI in ``cli/messages.py``).

The errors a customer's change can meet, as the engine raises them (``bookings/changes.py``):

    ServiceError
    ├── ChangeRefused (refusal.kind: see bookings/plan.py RefusalKind)
    ├── StaleBooking          → STALE, the one wording of a booking changed meanwhile
    ├── ReplayMismatch        → the form sent again with other choices
    └── SlotTaken → TimeTaken → a chosen time taken meanwhile
    AvailabilityUnknown, BusyTimeNotFresh → CALENDAR_UNREAD, CALENDAR_UPDATING
"""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from calsync.bookings.plan import Refusal, RefusalKind
from calsync.bookings.reschedule_requests import RequestState
from calsync.notify.when import clock_words, short_day
from calsync.policy.refusal import Why

STALE = (
    "Your booking changed while you were choosing (perhaps the owner moved a session), so "
    "nothing was changed. Here it is as it is now; please choose again."
)
CALENDAR_UNREAD = (
    "The owner's calendar could not be checked just now, so nothing was changed. Please try "
    "again in a minute."
)
CALENDAR_UPDATING = (
    "The owner's calendar is being updated at this very moment, so nothing was changed. "
    "Please try again in a moment."
)
# The payment step (``manage/payment.py``; the errors: ``payments/errors.py``).
PAYMENT_DECLINED = "Your card was declined, so nothing was charged or changed. Try another card."
PAYMENTS_UNREACHABLE = (
    "The payment service could not be reached, so nothing was charged and your sessions were "
    "not changed; the times you chose were released. Please try again in a few minutes."
)
PAYMENTS_AWAY_HELD = (
    "The payment service could not be reached just now, so nothing was charged and your "
    "sessions were not changed. The times you chose stay held for you until the hold runs "
    "out: please try again shortly."
)
PAYMENT_UNCONFIRMED = (
    "We could not confirm the payment with the payment service. Your chosen times stay held "
    "while we check; we'll email you once we know whether it went through. Please do not pay "
    "again."
)
PAYMENTS_NOT_SET_UP = (
    "Payments are not set up correctly on this site, so nothing was charged or changed. "
    "Please tell the owner."
)
PAYMENT_ENDED = (
    "This payment is no longer waiting: the times were held for a limited time only, and "
    "nothing was charged or changed. Choose new times to try again."
)
FEE_AT_NEXT_STEP = (
    "You pay this fee by card on the next step; the new times are held for you for "
    "{minutes} minutes, and your sessions move once it is paid."
)
FEE_TO_OWNER = "This fee is due to the owner directly; nothing is charged here."
REFUND_BY_STRIPE = "Refunded to the card you paid with."
REFUND_BY_OWNER = "The owner pays this refund back to you directly."
REPLAYED_OTHERWISE = "This form was already sent with other choices; reload the page and try again."


def refusal_words(refusal: Refusal, names: Mapping[int, str], zone: ZoneInfo) -> str:
    """The sentence for ``refusal``; ``names`` are the sessions as the page names them."""
    name = _name(refusal, names)
    match refusal.kind:
        case RefusalKind.STALE:
            return STALE
        case RefusalKind.REPLAY_MISMATCH:
            return REPLAYED_OTHERWISE
        case RefusalKind.NO_SESSIONS:
            return "Choose at least one session."
        case RefusalKind.NOT_IN_BOOKING:
            return "A chosen session is not part of this booking."
        case RefusalKind.INACTIVE:
            return "This booking is no longer active."
        case RefusalKind.NOT_ALLOWED:
            return f"Session {refusal.position}: {refusal.policy_reason}"
        case RefusalKind.REASON_REQUIRED:
            return "Please tell us why; a reason is required."
        case RefusalKind.REASON_TOO_LONG:
            return "Please keep the reason under 2,000 characters."
        case RefusalKind.ALREADY_CANCELLED:
            return f"{name} is already cancelled."
        case RefusalKind.NO_OFFSET:
            return f"{name}: that is not a time."
        case RefusalKind.SAME_TIME:
            return "Two sessions cannot move to the same time."
        case RefusalKind.OVERLAP:
            other = names.get(refusal.other_session_id or -1, f"session {refusal.other_position}")
            return (
                f"{name} and {other} cannot take the same time. "
                f"Please choose another time for {name}."
            )
        case RefusalKind.PAST:
            return f"{name}: that time has already passed."
        case RefusalKind.NO_EVENT_TYPE:
            return "These sessions can no longer be moved online; please contact us."
        case RefusalKind.TAKEN | RefusalKind.NOT_OFFERED if not taken_meanwhile(refusal):
            return f"{name}: that time is not available. Please choose one of the times shown."
        case RefusalKind.TAKEN | RefusalKind.NOT_OFFERED:
            assert refusal.at is not None
            local = refusal.at.astimezone(zone)
            return (
                f"{short_day(local.date())} {clock_words(local)} was just taken. Your other "
                "choices are kept; please pick another time for this session."
            )


def taken_meanwhile(refusal: Refusal) -> bool:
    """A time that was offered and is taken now (busy, booked, a full day), as opposed to one
    the page never offered (outside hours, off the grid, inside the notice)."""
    return refusal.why in (None, Why.BUSY, Why.BOOKED, Why.FULL_DAY)


def _name(refusal: Refusal, names: Mapping[int, str]) -> str:
    if refusal.session_id is not None and refusal.session_id in names:
        text = names[refusal.session_id]
        return text[0].upper() + text[1:]
    return f"Session {refusal.position}" if refusal.position else "A chosen session"


def request_words(state: RequestState, owner_name: str) -> str:
    """Why the owner's "choose new times" link offers nothing (any more)."""
    usual = "Your booking is shown as it is; the usual rules for changes apply."
    match state:
        case RequestState.USED:
            return f"You already chose new times with this link. {usual}"
        case RequestState.EXPIRED:
            return (
                f"This link to choose new times has expired. {usual} Write to {owner_name} "
                "if you still need to move a session."
            )
        case RequestState.REVOKED:
            return f"{owner_name} withdrew this request to choose new times. {usual}"
        case RequestState.UNKNOWN | RequestState.OPEN:
            return (
                "This link to choose new times is not valid (perhaps it was cut short). "
                f"{usual} Please use the link from the email exactly as it is."
            )
