"""The manage page's pages, rendered for one visit: the booking (Keep, Reschedule and Cancel
tabs), the free times to choose from, the confirm step and a change's outcome.

Both the reading routes (``manage/routes.py``) and the changing ones
(``manage/actions.py``) answer with these, so a refused change shows the same page the
customer came from, with their choices kept and the problem next to the field at fault.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from sqlalchemy import select

from calsync.bookings import links
from calsync.bookings.changes import available_for, facts_of
from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput, get_event_type
from calsync.bookings.plan import Ask, ChangeField, Refusal, plan
from calsync.bookings.reschedule_requests import Grant, RequestState, find_request
from calsync.config import Settings
from calsync.notify.when import day_words
from calsync.policy.change_policy import ReasonRule
from calsync.policy.change_rules import Action
from calsync.policy.money import minor_text
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    Booking,
    Change,
    ChangeKind,
    Payment,
    PaymentKind,
    PaymentState,
    utcnow,
)
from calsync.sync.connections import NotFoundError
from calsync.token_hash import hash_token
from calsync.web.manage.forms import (
    FormProblems,
    Purpose,
    csrf_token,
    new_idempotency_key,
    start_field,
)
from calsync.web.manage.render import answer, invalid_page, path_prefix, render
from calsync.web.manage.text import usable_zone, zone_choices
from calsync.web.manage.views import (
    BookingView,
    booking_view,
    change_view,
    planned_cancels,
    planned_moves,
    slot_lists,
    time_window,
    zone_heading,
)
from calsync.web.manage.wording import (
    FEE_AT_NEXT_STEP,
    FEE_TO_OWNER,
    REFUND_BY_OWNER,
    REFUND_BY_STRIPE,
    refusal_words,
    request_words,
)

log = logging.getLogger(__name__)
TABS = ("keep", "reschedule", "cancel")
UNKNOWN_TIMES = (
    "Free times cannot be shown right now because the owner's calendar has not been read yet. "
    "Nothing was changed; please try again in a few minutes."
)


@dataclass(frozen=True, slots=True)
class Paths:
    """Links of one booking's pages, under the configured base URL's path."""

    base: str
    tz: str | None  # the zone the customer chose on the page, carried from page to page
    # An open reschedule request's token (``bookings/reschedule_requests.py``), carried too.
    request: str | None = None

    def _with(self, path: str, params: Sequence[tuple[str, str]] = ()) -> str:
        query = [*params, *([("tz", self.tz)] if self.tz else [])]
        query += [("request", self.request)] if self.request else []
        return f"{path}?{urlencode(query)}" if query else path

    def tab(self, name: str, ticked: Sequence[int] = ()) -> str:
        """A tab of the booking page, with ``ticked`` sessions ticked again."""
        params = [] if name == "keep" else [("tab", name)]
        return self._with(self.base, params + [("session", str(sid)) for sid in ticked])

    def change(self, change_id: int) -> str:
        return self._with(f"{self.base}/changes/{change_id}")

    def pay(self, change_id: int) -> str:
        """The payment step of a reschedule with a fee (``web/manage/payment.py``)."""
        return self._with(f"{self.base}/pay/{change_id}")

    def paid(self, change_id: int) -> str:
        """Where Stripe.js returns after 3-D Secure: the server re-reads the payment."""
        return self._with(f"{self.base}/pay/{change_id}/return")

    def times(self, params: Sequence[tuple[str, str]] = ()) -> str:
        return self._with(f"{self.base}/times", params)

    @property
    def times_action(self) -> str:
        return f"{self.base}/times"

    def review(self, purpose: Purpose | str) -> str:
        return f"{self.base}/{Purpose(purpose).value}/review"

    def post(self, purpose: Purpose | str) -> str:
        return f"{self.base}/{Purpose(purpose).value}"


@dataclass
class Visit:
    """One request for one booking: who is looking, in which zone, at what moment."""

    request: Request
    settings: Settings
    db: Database
    token: str
    booking: Booking
    zone: ZoneInfo
    chosen_zone: str | None
    now: datetime
    # The owner's open reschedule request this visit came with (its token in ``?request=``),
    # or why the token given opens none (``request_state``).
    grant: Grant | None = None
    request_token: str | None = None
    request_state: RequestState | None = None
    page: BookingView = field(init=False)
    paths: Paths = field(init=False)

    def __post_init__(self) -> None:
        requested = self.grant.session_ids if self.grant else frozenset()
        self.page = booking_view(self.booking, self.zone, self.now, requested)
        self.paths = Paths(
            f"{path_prefix(self.settings)}/m/{self.token}",
            self.chosen_zone,
            self.request_token if self.grant else None,
        )

    @property
    def token_hash(self) -> str:
        return hash_token(self.token)

    def lengths(self) -> dict[int, timedelta]:
        """How long each session is (session id → length)."""
        return {s.id: s.end - s.start for s in self.booking.sessions}

    def render(self, name: str, status: int = 200, **values: object) -> Response:
        values.setdefault("notice", None)
        values.setdefault("asked", self.asked())
        body = render(
            self.settings, name, page=self.page, paths=self.paths, zone=self.zone.key, **values
        )
        return answer(self.request, body, status)

    def asked(self) -> str | None:
        """What the owner's open request asks, for the page: who, which sessions, until when."""
        if self.grant is None:
            return None
        names = [s.name for s in self.page.sessions if s.id in self.grant.session_ids]
        which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        until = day_words(self.grant.expires_at.astimezone(self.zone))
        return (
            f"{self.page.owner_name} asked you to choose new times for {which}. No fee "
            f"applies, whatever the usual rules say. This offer is open until {until}."
        )

    def request_refused(self) -> str | None:
        """Why the request link this visit came with offers nothing, if it does not."""
        if self.request_state is None or self.request_state is RequestState.OPEN:
            return None
        return request_words(self.request_state, self.page.owner_name)


def open_visit(
    request: Request,
    settings: Settings,
    db: Database,
    token: str,
    zone_name: str | None,
    request_token: str | None = None,
) -> Visit | None:
    """The visit a valid token opens (None for every token that opens nothing), with the
    owner's reschedule request when ``request_token`` opens one."""
    now = utcnow()
    grant: Grant | None = None
    state: RequestState | None = None
    with db.reading() as session:
        booking = links.booking_for_token(session, token, now=now)
        if booking is not None and request_token:
            found = find_request(session, booking.id, request_token, now)
            grant, state = (
                (None, found) if isinstance(found, RequestState) else (found, RequestState.OPEN)
            )
    if booking is None:
        return None
    chosen = usable_zone(zone_name)
    zone = chosen or ZoneInfo(booking.customer_timezone)
    return Visit(
        request,
        settings,
        db,
        token,
        booking,
        zone,
        zone.key if chosen else None,
        now,
        grant,
        request_token if grant else None,
        state,
    )


def token_tag(token: str) -> str:
    """A short hash of a token: enough to match log lines, useless for opening the page."""
    return hash_token(token)[:8]


def not_valid(request: Request, settings: Settings, token: str) -> Response:
    """The one 404 for every token (and every path under /m/) that opens nothing."""
    log.info("manage page: no booking for token #%s", token_tag(token))
    return answer(request, invalid_page(settings), 404)


def allowed_sessions(visit: Visit, session_ids: list[int], action: Action) -> list[int]:
    """The sessions, if the policy lets the customer take ``action`` on each of them now;
    else FormProblems with the policy's reason for the first one it refuses."""
    allowed = {s.id for s in visit.page.allowed(action)}
    refused = [visit.page.session(sid) for sid in session_ids if sid not in allowed]
    if refused:
        first = refused[0]
        why = first.cancel if action is Action.CANCEL else first.reschedule
        name = first.name[0].upper() + first.name[1:]
        raise FormProblems({"sessions": f"{name}: {why.reason}"})
    return session_ids


# -- the booking and its tabs -------------------------------------------------------------------


def booking_page(
    visit: Visit,
    tab: str = "keep",
    *,
    notice: str | None = None,
    problems: Mapping[str, str] | None = None,
    ticked: Sequence[int] = (),
    status: int = 200,
) -> Response:
    tab = tab if tab in TABS else "keep"
    action = Action.CANCEL if tab == "cancel" else Action.RESCHEDULE
    return visit.render(
        "manage_page.html",
        status,
        tab=tab,
        action=action.value,
        allowed=visit.page.allowed(action),
        notice=notice,
        problems=problems or {},
        ticked=set(ticked),
    )


# -- choosing new times -------------------------------------------------------------------------


def times_page(
    visit: Visit,
    session_ids: Sequence[int],
    picks: Mapping[int, datetime],
    first_day: date | None,
    *,
    problems: Mapping[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    """Day by day free times for each session to move, in the zone the customer looks at."""
    booking = visit.booking
    assert booking.event_type_id is not None  # the sessions' verdicts say so
    try:
        horizon = get_event_type(visit.db, booking.event_type_id).horizon_days
        window = time_window(first_day, visit.zone, visit.now, horizon)
        slots = available_for(visit.db, booking, session_ids, window.start, window.end)
    except (AvailabilityUnknown, NotFoundError, InvalidInput):
        return booking_page(visit, "reschedule", notice=UNKNOWN_TIMES, status=409)
    lists = slot_lists(
        visit.page, session_ids, slots, window, visit.zone, picks, problems or {}, visit.lengths()
    )
    zones = zone_choices(
        (booking.customer_timezone, visit.zone.key, visit.booking.owner.timezone), visit.now
    )
    return visit.render(
        "manage_times.html",
        status,
        lists=lists,
        window=window,
        session_ids=session_ids,
        zones=zones,
        zone_label=zone_heading(visit.zone, window.start),
        problems=problems or {},
        notice=notice,
    )


def check_moves(
    visit: Visit, session_ids: Sequence[int], moves: Mapping[int, datetime]
) -> dict[str, str]:
    """Problems with the chosen times, by field: what the change engine's plan refuses before
    any calendar is read (a past time, two sessions on one slot or overlapping:
    ``bookings/plan.py``), then a time the list of free times does not show (tampered with, or
    taken since the list was shown). The engine re-checks against fresh calendar data anyway."""
    problems: dict[str, str] = {}
    names, lengths = visit.page.names(), visit.lengths()
    ask = Ask(ChangeKind.RESCHEDULE, Actor.CUSTOMER, dict(moves), waived=visit.grant is not None)
    refused = plan(facts_of(visit.booking), ask, visit.now)
    if isinstance(refused, Refusal) and refused.field is ChangeField.STARTS:
        at = refused.session_id
        problems[start_field(at) if at is not None else "form"] = refusal_words(
            refused, names, visit.zone
        )
    for session_id, start in moves.items():
        name, end = names[session_id], start + lengths[session_id]
        if start <= visit.now or start_field(session_id) in problems:
            continue
        try:
            free = available_for(visit.db, visit.booking, session_ids, start, end)
        except AvailabilityUnknown:
            # Not the customer's fault: say that free times cannot be checked right now.
            problems[start_field(session_id)] = UNKNOWN_TIMES
            continue
        except (NotFoundError, InvalidInput):
            free = []
        if not any(slot.start == start and slot.end == end for slot in free):
            problems[start_field(session_id)] = (
                f"{name}: that time is not available. Please choose one of the times shown."
            )
    return problems


# -- confirming ---------------------------------------------------------------------------------


def confirm_page(
    visit: Visit,
    purpose: Purpose,
    session_ids: Sequence[int],
    moves: Mapping[int, datetime],
    *,
    reason: str | None = None,
    key: str | None = None,
    shown: date | None = None,
    problems: Mapping[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    """Old → new times (or what will be cancelled) and any fee, the reason if the policy asks
    for one, and the form that makes the change: it carries a fresh idempotency key (or the
    one being retried), the booking version seen here, and the anti-CSRF token."""
    action = Action.CANCEL if purpose is Purpose.CANCEL else Action.RESCHEDULE
    page = visit.page
    if purpose is Purpose.RESCHEDULE:
        lines = planned_moves(page, moves, visit.lengths(), visit.zone)
    else:
        lines = planned_cancels(page, session_ids)
    hidden = [("session", str(sid)) for sid in session_ids]
    hidden += [(start_field(sid), start.isoformat()) for sid, start in moves.items()]
    back_params = list(hidden) + ([("shown", shown.isoformat())] if shown else [])
    hidden += [
        ("version", str(page.version)),
        ("key", key or new_idempotency_key()),
        ("csrf", csrf_token(visit.settings, visit.token_hash, purpose)),
    ]
    if visit.chosen_zone:
        hidden.append(("tz", visit.chosen_zone))
    if visit.paths.request:
        hidden.append(("request", visit.paths.request))
    if shown:
        hidden.append(("shown", shown.isoformat()))
    rule = page.reason_rule(action)
    back = (
        visit.paths.times(back_params)
        if purpose is Purpose.RESCHEDULE
        else visit.paths.tab("cancel", session_ids)
    )
    return visit.render(
        "manage_confirm.html",
        status,
        purpose=purpose.value,
        moving=purpose is Purpose.RESCHEDULE,
        lines=lines,
        fee=page.fee(action, len(session_ids)),
        fee_label="Rescheduling fee" if action is Action.RESCHEDULE else "Refund",
        fee_note=_fee_note(visit, action),
        reason_rule=rule.value,
        reason_required=rule is ReasonRule.REQUIRED,
        reason=reason or "",
        hidden=hidden,
        back=back,
        problems=problems or {},
        notice=notice,
    )


def _fee_note(visit: Visit, action: Action) -> str:
    """How the fee (or refund) is paid: through Stripe when payments are set up (and, for a
    refund, the booking was paid through calsync), else directly with the owner."""
    payments = visit.settings.payments
    if action is Action.RESCHEDULE:
        if payments is None:
            return FEE_TO_OWNER
        return FEE_AT_NEXT_STEP.format(minutes=payments.hold_minutes)
    if payments is not None and visit.booking.payment_intent:
        return REFUND_BY_STRIPE
    return REFUND_BY_OWNER


# -- the outcome --------------------------------------------------------------------------------


def result_page(visit: Visit, change: Change) -> Response:
    with visit.db.reading() as session:
        paid = list(
            session.scalars(
                select(Payment).where(Payment.change_id == change.id).order_by(Payment.id)
            )
        )
    return visit.render(
        "manage_result.html",
        change=change_view(change, visit.booking, visit.zone),
        receipts=[receipt_line(p) for p in paid if p.state is not PaymentState.CANCELED],
    )


def receipt_line(payment: Payment) -> str:
    """One line of the result page about a charge or refund through Stripe."""
    amount = minor_text(payment.amount, payment.currency)
    if payment.kind is PaymentKind.CHARGE:
        if payment.state is PaymentState.SUCCEEDED:
            return f"Paid {amount} by card (Stripe payment {payment.stripe_id})."
        return f"Card payment of {amount} not made: {payment.message or payment.state.value}."
    if payment.state is PaymentState.SUCCEEDED:
        return f"Refund of {amount} sent to your card (Stripe refund {payment.stripe_id})."
    if payment.state is PaymentState.FAILED:
        return f"Refund of {amount}: the payment service refused it; the owner will pay it back."
    return f"Refund of {amount} to your card: on its way."
