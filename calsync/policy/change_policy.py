"""The owner's cancel/reschedule policy for an event type (DESIGN.md §3), as plain values.

Stored on the event type and snapshotted onto each booking when it is made; enforced by the
manage page. Fees are shown and recorded, always relative to the sessions a change touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from calsync.policy.types import RulesError

MIN_NOTICE = timedelta(minutes=15)
MAX_NOTICE = timedelta(days=14)


class Permission(StrEnum):
    ANYTIME = "anytime"
    UNTIL = "until"  # until ``notice`` before the session's current start
    NEVER = "never"


class ReasonRule(StrEnum):
    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


class FeeKind(StrEnum):
    FIXED = "fixed"  # an amount in the event type's currency, per session touched
    PERCENT = "percent"  # a percentage of the per-session value


@dataclass(frozen=True, slots=True)
class Fee:
    kind: FeeKind
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ActionRule:
    """Whether customers may cancel (or reschedule), until when, and whether they say why."""

    permission: Permission = Permission.ANYTIME
    notice: timedelta | None = None
    reason: ReasonRule = ReasonRule.OFF


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    cancel: ActionRule = field(default_factory=ActionRule)
    reschedule: ActionRule = field(default_factory=ActionRule)
    max_reschedules: int | None = None  # per session; None = unlimited
    reschedule_fee: Fee | None = None
    cancel_refund: Fee | None = None
    text: str = ""


def policy_problems(policy: ChangePolicy) -> list[RulesError]:
    """Every problem with ``policy``, each naming its field (e.g. ``policy.cancel.notice``)."""
    problems = []
    for name, rule in (("cancel", policy.cancel), ("reschedule", policy.reschedule)):
        if rule.permission is Permission.UNTIL:
            if rule.notice is None:
                problems.append(
                    RulesError(f"policy.{name}.notice", "say how long before a session it ends")
                )
            elif not MIN_NOTICE <= rule.notice <= MAX_NOTICE:
                problems.append(
                    RulesError(
                        f"policy.{name}.notice",
                        "must be between 15 minutes and 14 days",
                        value=rule.notice,
                    )
                )
        elif rule.notice is not None:
            problems.append(
                RulesError(
                    f"policy.{name}.notice",
                    f"only applies when {name} is 'until' (it is {rule.permission.value!r})",
                )
            )
    if policy.max_reschedules is not None and policy.max_reschedules < 0:
        problems.append(RulesError("policy.max_reschedules", "cannot be negative"))
    for name, fee in (
        ("reschedule_fee", policy.reschedule_fee),
        ("cancel_refund", policy.cancel_refund),
    ):
        if fee is None:
            continue
        if fee.amount < 0:
            problems.append(RulesError(f"policy.{name}", "cannot be negative", value=fee.amount))
        if fee.kind is FeeKind.PERCENT and fee.amount > 100:
            problems.append(RulesError(f"policy.{name}", "a percentage is at most 100"))
    if len(policy.text) > 5000:
        problems.append(RulesError("policy.text", "is longer than 5000 characters"))
    return problems


# -- plain-data form, for storage as JSON -----------------------------------------------------


def policy_to_data(policy: ChangePolicy) -> dict[str, Any]:
    def rule(r: ActionRule) -> dict[str, Any]:
        minutes = None if r.notice is None else int(r.notice.total_seconds() // 60)
        return {
            "permission": r.permission.value,
            "notice_minutes": minutes,
            "reason": r.reason.value,
        }

    def fee(f: Fee | None) -> dict[str, str] | None:
        return None if f is None else {"kind": f.kind.value, "amount": str(f.amount)}

    return {
        "cancel": rule(policy.cancel),
        "reschedule": rule(policy.reschedule),
        "max_reschedules": policy.max_reschedules,
        "reschedule_fee": fee(policy.reschedule_fee),
        "cancel_refund": fee(policy.cancel_refund),
        "text": policy.text,
    }


def policy_from_data(data: dict[str, Any]) -> ChangePolicy:
    """The inverse of ``policy_to_data``; raises RulesError naming the field on bad data."""

    def rule(name: str) -> ActionRule:
        raw = data.get(name) or {}
        minutes = raw.get("notice_minutes")
        try:
            return ActionRule(
                Permission(raw.get("permission", "anytime")),
                None if minutes is None else timedelta(minutes=int(minutes)),
                ReasonRule(raw.get("reason", "off")),
            )
        except (ValueError, TypeError) as exc:
            raise RulesError(f"policy.{name}", str(exc)) from None

    def fee(name: str) -> Fee | None:
        raw = data.get(name)
        if raw is None:
            return None
        try:
            return Fee(FeeKind(raw["kind"]), Decimal(str(raw["amount"])))
        except (KeyError, ValueError, TypeError, InvalidOperation):
            raise RulesError(
                f"policy.{name}", "needs a kind (fixed or percent) and an amount"
            ) from None

    max_reschedules = data.get("max_reschedules")
    return ChangePolicy(
        cancel=rule("cancel"),
        reschedule=rule("reschedule"),
        max_reschedules=None if max_reschedules is None else int(max_reschedules),
        reschedule_fee=fee("reschedule_fee"),
        cancel_refund=fee("cancel_refund"),
        text=str(data.get("text", "")),
    )
