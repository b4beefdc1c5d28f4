"""May the customer cancel or reschedule this session now, and what does it cost?

Pure decisions from the booking's policy snapshot (DESIGN.md §3). Every refusal comes with a
reason in plain words, because the manage page shows forbidden actions disabled with their
reason instead of failing. The owner is never bound by these rules; callers skip them for
owner actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from calsync.policy.change_policy import ChangePolicy, Fee, FeeKind, Permission, ReasonRule

CENT = Decimal("0.01")


class Action(StrEnum):
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the rules need to know about one session."""

    start: datetime
    cancelled: bool
    reschedule_count: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str | None = None  # why not, for the customer


ALLOWED = Verdict(True)


def _notice_words(notice: timedelta) -> str:
    minutes = int(notice.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' * (days != 1)}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' * (hours != 1)}"
    return f"{minutes} minutes"


def verdict(policy: ChangePolicy, action: Action, session: SessionState, now: datetime) -> Verdict:
    """Whether the customer may take ``action`` on ``session`` at ``now``."""
    verb = "cancelled" if action is Action.CANCEL else "rescheduled"
    if session.cancelled:
        return Verdict(False, "This session is cancelled.")
    if session.start <= now:
        return Verdict(False, "This session has already started.")
    rule = policy.cancel if action is Action.CANCEL else policy.reschedule
    if rule.permission is Permission.NEVER:
        return Verdict(False, f"Sessions cannot be {verb} online; please contact us.")
    notice = rule.notice if rule.permission is Permission.UNTIL else None
    if notice is not None and session.start - notice < now:
        return Verdict(
            False, f"Sessions can be {verb} up to {_notice_words(notice)} before they start."
        )
    limit = policy.max_reschedules if action is Action.RESCHEDULE else None
    if limit is not None and session.reschedule_count >= limit:
        return Verdict(
            False,
            f"This session has been rescheduled {limit} time{'s' * (limit != 1)}, "
            "the most allowed.",
        )
    return ALLOWED


def reason_rule(policy: ChangePolicy, action: Action) -> ReasonRule:
    return (policy.cancel if action is Action.CANCEL else policy.reschedule).reason


def reason_problem(policy: ChangePolicy, action: Action, reason: str | None) -> str | None:
    """A message when the reason breaks the policy (missing where required), else None."""
    if reason_rule(policy, action) is ReasonRule.REQUIRED and not (reason or "").strip():
        return "Please tell us why; a reason is required."
    if reason is not None and len(reason) > 2000:
        return "Please keep the reason under 2,000 characters."
    return None


def per_session_value(price: Decimal, package_size: int) -> Decimal:
    return price / package_size if package_size else Decimal(0)


def amount(fee: Fee | None, price: Decimal, package_size: int, sessions: int) -> Decimal | None:
    """A fee (or refund) for touching ``sessions`` sessions, rounded to cents; None if none.

    Fixed amounts are per session; percentages are of the per-session value (the package price
    divided by its number of sessions), so rescheduling k sessions costs k × the per-session fee.
    """
    if fee is None or sessions <= 0:
        return None
    if fee.kind is FeeKind.FIXED:
        each = fee.amount
    else:
        each = per_session_value(price, package_size) * fee.amount / 100
    return (each * sessions).quantize(CENT, rounding=ROUND_HALF_UP)


def reschedule_fee(
    policy: ChangePolicy, price: Decimal, package_size: int, k: int
) -> Decimal | None:
    return amount(policy.reschedule_fee, price, package_size, k)


def cancel_refund(
    policy: ChangePolicy, price: Decimal, package_size: int, k: int
) -> Decimal | None:
    return amount(policy.cancel_refund, price, package_size, k)
