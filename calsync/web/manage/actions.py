"""The manage page's changes: ``POST /m/<token>/reschedule`` and ``POST /m/<token>/cancel``.

Each POST is checked in this order, and anything refused changes nothing:

1. the rate limit (20 changes a minute per token and per address by default), then the token
   (the same 404 as every page for a token that opens nothing);
2. where it comes from: a cross-site request or a foreign ``Origin`` is refused (403), and so is
   a form without this link's anti-CSRF token for this purpose (``manage/forms.py``);
3. the form: sessions of this booking only, times with offsets (422, back on the page with
   the problem next to the field), the idempotency key and booking version (400 when missing);
4. the change engine (``calsync.bookings.changes``): its plan checks the policy, the reason,
   past times and overlaps between the moved sessions, and re-checks every new time against
   fresh calendar data, serialized per owner. Its refusals are worded by
   ``manage/wording.py``.

The route only parses the form, calls the engine and maps what it answers. Success redirects
(303) to the change's outcome page, so reloading it never sends the form again; sending the
same form twice returns the same change (idempotency key) whatever the booking's state is now,
and copies sent at the same moment are settled: both by the engine (``record``), under the
owner's lock. A form from a page that shows an outdated booking is refused (version).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.bookings import changes
from calsync.bookings.changes import ChangeRefused, ReplayMismatch, StaleBooking, TimeTaken
from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput
from calsync.bookings.plan import ChangeField
from calsync.bookings.reschedule_requests import RequestNotOpen
from calsync.config import ConfigError, Settings
from calsync.policy.change_policy import ReasonRule
from calsync.policy.change_rules import Action
from calsync.store.db import Database
from calsync.store.models import Actor, Change, ChangeStatus
from calsync.sync.fresh_busy import BusyTimeNotFresh
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage import forms
from calsync.web.manage.forms import FormProblems, FormRefused, PostedForm, Purpose
from calsync.web.manage.pages import (
    Visit,
    booking_page,
    confirm_page,
    not_valid,
    open_visit,
    times_page,
    token_tag,
)
from calsync.web.manage.render import message_page, see_other
from calsync.web.manage.wording import (
    CALENDAR_UNREAD,
    CALENDAR_UPDATING,
    STALE,
    refusal_words,
    request_words,
    taken_meanwhile,
)

log = logging.getLogger(__name__)
router = APIRouter()


def _open(
    request: Request, settings: Settings, db: Database, token: str, posted: PostedForm
) -> Visit | Response:
    """The visit, after the token, origin and anti-CSRF checks; else the answer to give."""
    fields = posted.fields
    visit = open_visit(request, settings, db, token, fields.get("tz"), fields.get("request"))
    if visit is None:
        return not_valid(request, settings, token)
    purpose = Purpose.CANCEL if request.url.path.endswith("/cancel") else Purpose.RESCHEDULE
    try:
        forms.check_origin(settings, request.headers)
        if posted.problem:
            raise FormRefused(400, posted.problem + " Nothing was changed.")
        forms.check_csrf(settings, visit.token_hash, purpose, posted.fields)
    except FormRefused as exc:
        log.warning("manage page: %s refused (token #%s): %s", purpose, token_tag(token), exc)
        return _refused(visit, exc.status, exc.message)
    return visit


def _request_ended(visit: Visit, key: str | None) -> Response | None:
    """The owner's request this form came with ended since the page was shown (used,
    withdrawn, expired): the change this very form made (a reload, a double click), or the
    booking with why (410)."""
    words = visit.request_refused()
    if words is None:
        return None
    if key:
        with visit.db.reading() as session:
            done = session.scalars(
                select(Change.id).where(
                    Change.booking_id == visit.booking.id, Change.idempotency_key == key
                )
            ).one_or_none()
        if done is not None:
            return see_other(visit.paths.change(done))
    return booking_page(_without_request(visit), "reschedule", notice=words, status=410)


def _without_request(visit: Visit) -> Visit:
    fresh = open_visit(visit.request, visit.settings, visit.db, visit.token, visit.chosen_zone)
    return fresh or visit


def _refused(visit: Visit, status: int, message: str) -> Response:
    return message_page(
        visit.request,
        visit.settings,
        status,
        "Nothing was changed",
        message,
        back=visit.paths.tab("keep"),
    )


def _reason(visit: Visit, action: Action, posted: PostedForm) -> str | None:
    # A reason the policy does not ask for is not recorded, whatever the form says.
    if visit.page.reason_rule(action) is ReasonRule.OFF:
        return None
    return forms.reason(posted.fields)


def _shown(posted: PostedForm) -> date | None:
    try:
        return date.fromisoformat(posted.fields.get("shown") or "")
    except ValueError:
        return None


def _words(visit: Visit, exc: ChangeRefused | StaleBooking | ReplayMismatch | TimeTaken) -> str:
    return refusal_words(exc.refusal, visit.page.names(), visit.zone)


@router.post("/m/{token}/reschedule")
def reschedule(
    token: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(forms.posted_form),
) -> Response:
    opened = _open(request, settings, db, token, posted)
    if isinstance(opened, Response):
        return opened
    visit, fields = opened, posted.fields
    ended = _request_ended(visit, fields.get("key"))
    if ended is not None:
        return ended
    shown = _shown(posted)
    try:
        key, version = forms.idempotency_key(fields), forms.expected_version(fields)
        session_ids = forms.chosen_sessions(fields, visit.booking)
    except FormProblems as exc:
        if "form" in exc.problems:
            return _refused(visit, exc.status, exc.problems["form"])
        return booking_page(visit, "reschedule", problems=exc.problems, status=exc.status)
    names = visit.page.names()
    picks = forms.chosen_starts(fields, session_ids, names, partial=True)
    try:
        moves = forms.chosen_starts(fields, session_ids, names)
    except FormProblems as exc:
        return times_page(visit, session_ids, picks, shown, problems=exc.problems, status=422)
    try:
        reason = _reason(visit, Action.RESCHEDULE, posted)
    except FormProblems as exc:
        return confirm_page(
            visit,
            Purpose.RESCHEDULE,
            session_ids,
            moves,
            reason=forms.shown_again(forms.reason_as_typed(fields)),
            key=key,
            shown=shown,
            problems=exc.problems,
            status=422,
        )

    def confirm_again(
        status: int, problems: dict[str, str] | None = None, notice: str | None = None
    ) -> Response:
        return confirm_page(
            visit,
            Purpose.RESCHEDULE,
            session_ids,
            moves,
            reason=reason,
            key=key,
            shown=shown,
            problems=problems,
            notice=notice,
            status=status,
        )

    try:
        outcome = changes.reschedule(
            db,
            settings,
            visit.booking.id,
            moves,
            actor=Actor.CUSTOMER,
            reason=reason,
            idempotency_key=key,
            expected_version=version,
            request_token=visit.paths.request,
        )
    except RequestNotOpen as exc:
        # Ended between the page and the POST (used in another tab, withdrawn, expired).
        words = request_words(exc.state, visit.page.owner_name)
        return booking_page(_without_request(visit), "reschedule", notice=words, status=410)
    except ChangeRefused as exc:
        words, at = _words(visit, exc), exc.refusal.session_id
        if exc.field is ChangeField.REASON:
            return confirm_again(422, problems={"reason": words})
        if exc.field is ChangeField.STARTS and at is not None:
            problems = {forms.start_field(at): words}
            return times_page(visit, session_ids, picks, shown, problems=problems, status=422)
        if exc.field is ChangeField.STARTS:
            return times_page(visit, session_ids, picks, shown, notice=words, status=422)
        if exc.field is ChangeField.SESSIONS:
            return booking_page(visit, "reschedule", problems={"sessions": words}, status=422)
        return booking_page(visit, "reschedule", notice=words, status=422)
    except TimeTaken as exc:
        field = forms.start_field(exc.session_id) if exc.session_id else "form"
        problems = {field: _words(visit, exc)}
        if not taken_meanwhile(exc.refusal):  # never offered (a tampered form)
            return times_page(visit, session_ids, picks, shown, problems=problems, status=422)
        # Back to the times, the other choices kept, the note at the session that lost its.
        kept = {sid: start for sid, start in moves.items() if sid != exc.session_id}
        first = shown or exc.start.astimezone(visit.zone).date()
        log.info("manage page: booking %s: a chosen time was taken", visit.booking.id)
        return times_page(visit, session_ids, kept, first, problems=problems, status=409)
    except StaleBooking:
        return _stale(visit, "reschedule")
    except ReplayMismatch as exc:
        return _refused(visit, 409, _words(visit, exc))
    except AvailabilityUnknown:
        return confirm_again(409, notice=CALENDAR_UNREAD)
    except BusyTimeNotFresh:
        return confirm_again(409, notice=CALENDAR_UPDATING)
    except InvalidInput as exc:
        return times_page(visit, session_ids, picks, shown, notice=str(exc), status=422)
    log.info(
        "manage page: booking %s: change %s (%s)",
        visit.booking.id,
        outcome.change.id,
        "replayed" if outcome.replayed else "new",
    )
    # The next pages without the request: it is used up, the page would say so.
    paths = replace(visit.paths, request=None)
    if outcome.change.status is ChangeStatus.AWAITING_PAYMENT:
        return see_other(paths.pay(outcome.change.id))
    return see_other(paths.change(outcome.change.id))


@router.post("/m/{token}/cancel")
def cancel(
    token: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(forms.posted_form),
) -> Response:
    opened = _open(request, settings, db, token, posted)
    if isinstance(opened, Response):
        return opened
    visit, fields = opened, posted.fields
    try:
        key, version = forms.idempotency_key(fields), forms.expected_version(fields)
        session_ids = forms.chosen_sessions(fields, visit.booking)
    except FormProblems as exc:
        if "form" in exc.problems:
            return _refused(visit, exc.status, exc.problems["form"])
        return booking_page(visit, "cancel", problems=exc.problems, status=exc.status)
    try:
        reason = _reason(visit, Action.CANCEL, posted)
    except FormProblems as exc:
        return confirm_page(
            visit,
            Purpose.CANCEL,
            session_ids,
            {},
            reason=forms.shown_again(forms.reason_as_typed(fields)),
            key=key,
            problems=exc.problems,
            status=422,
        )
    try:
        outcome = changes.cancel(
            db,
            settings,
            visit.booking.id,
            session_ids,
            actor=Actor.CUSTOMER,
            reason=reason,
            idempotency_key=key,
            expected_version=version,
        )
    except ChangeRefused as exc:
        if exc.field is ChangeField.REASON:
            return confirm_page(
                visit,
                Purpose.CANCEL,
                session_ids,
                {},
                reason=reason,
                key=key,
                problems={"reason": _words(visit, exc)},
                status=422,
            )
        if exc.field is ChangeField.SESSIONS:
            return booking_page(
                visit, "cancel", problems={"sessions": _words(visit, exc)}, status=422
            )
        return booking_page(visit, "cancel", notice=_words(visit, exc), status=422)
    except StaleBooking:
        return _stale(visit, "cancel")
    except ReplayMismatch as exc:
        return _refused(visit, 409, _words(visit, exc))
    log.info("manage page: booking %s: change %s", visit.booking.id, outcome.change.id)
    if settings.payments is not None and visit.booking.payment_intent:
        _send_refund(db, settings, outcome.change.id)
    return see_other(visit.paths.change(outcome.change.id))


def _send_refund(db: Database, settings: Settings, change_id: int) -> None:
    """The refund this cancel (``change_id``) queued, and only it (never other customers'
    refunds inside this customer's request), sent now so the result page can show it; Stripe
    away (or any failure) leaves it for the worker's next beat."""
    from calsync.payments import service
    from calsync.payments.errors import PaymentError
    from calsync.payments.gateway import StripeGateway

    assert settings.payments is not None
    try:
        gateway = StripeGateway.from_settings(settings.payments)
        service.pay_refunds(db, gateway, for_change=change_id)
    except (PaymentError, ConfigError) as exc:
        log.warning("manage page: refund left for the worker: %s", exc)


def _stale(visit: Visit, tab: str) -> Response:
    fresh = open_visit(visit.request, visit.settings, visit.db, visit.token, visit.chosen_zone)
    if fresh is None:  # the link itself went away meanwhile
        return not_valid(visit.request, visit.settings, visit.token)
    return booking_page(fresh, tab, notice=STALE, status=409)
