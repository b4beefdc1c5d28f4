"""The manage page's payment step: ``/m/<token>/pay/<change>`` (README "Payments (Stripe)").

A customer's reschedule with a fee is recorded as awaiting payment with its new times held
(``bookings/changes.py``); the reschedule POST then lands here. The page shows the amount and
how long the times stay held, and Stripe.js's card Element: the card goes from the browser to
Stripe only, which answers with a payment method id; the form posts that id (and the anti-CSRF
token) back here, and the server confirms the PaymentIntent (``payments/service.pay``). A card
that needs 3-D Secure comes back as the same page asking Stripe.js's ``confirmCardPayment``,
which then returns to ``…/return``, where the server re-reads the payment from Stripe. A
declined card changes nothing and the form is shown again with Stripe's words.

This page alone may load Stripe.js: its Content-Security-Policy adds Stripe's origins (or, in
tests and the demo, localstripe's) to the manage page's strict one.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.config import ConfigError, PaymentSettings, Settings
from calsync.payments import service
from calsync.payments.errors import PaymentDeclined, PaymentError, PaymentsUnavailable
from calsync.payments.gateway import StripeGateway
from calsync.payments.service import PaymentStep, StepState
from calsync.store.models import Change, ChangeStatus
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage import forms
from calsync.web.manage.forms import FormRefused, PostedForm, Purpose, csrf_token, small_int
from calsync.web.manage.pages import Visit, not_valid, open_visit, token_tag
from calsync.web.manage.render import answer, message_page, render, see_other
from calsync.web.manage.wording import (
    PAYMENT_DECLINED,
    PAYMENT_ENDED,
    PAYMENT_UNCONFIRMED,
    PAYMENTS_AWAY_HELD,
    PAYMENTS_NOT_SET_UP,
    PAYMENTS_UNREACHABLE,
)

log = logging.getLogger(__name__)
router = APIRouter()

READ = ["GET", "HEAD"]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_csp(payments: PaymentSettings) -> str:
    """The manage page's policy plus what Stripe.js needs: its script, its frames (the card
    field, 3-D Secure) and the API it calls. Only the payment step gets this."""
    js = _origin(payments.js_url)
    api = _origin(payments.api_base) if payments.api_base else "https://api.stripe.com"
    frames = f"{js} https://hooks.stripe.com" if js == "https://js.stripe.com" else js
    return (
        f"default-src 'none'; script-src 'self' {js}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' {js}; connect-src {api} {js}; frame-src {frames}; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _change_of(visit: Visit, change_id: str) -> Change | None:
    number = small_int(change_id)
    if number is None:
        return None
    with visit.db.reading() as session:
        return session.scalars(
            select(Change).where(Change.id == number, Change.booking_id == visit.booking.id)
        ).one_or_none()


def _gateway(settings: Settings) -> StripeGateway:
    assert settings.payments is not None
    return StripeGateway.from_settings(settings.payments)


def _pay_page(
    visit: Visit, step: PaymentStep, *, problem: str | None = None, status: int = 200
) -> Response:
    payments = visit.settings.payments
    assert payments is not None
    expires = step.expires_at.astimezone(visit.zone).strftime("%H:%M") if step.expires_at else None
    body = render(
        visit.settings,
        "manage_pay.html",
        page=visit.page,
        paths=visit.paths,
        zone=visit.zone.key,
        notice=None,
        amount=step.amount_text,
        expires=expires,
        hold_minutes=payments.hold_minutes,
        js_url=payments.js_url,
        publishable_key=payments.publishable_key(),
        client_secret=step.client_secret if step.state is StepState.ACTION else "",
        action=visit.paths.pay(step.change_id),
        return_url=visit.paths.paid(step.change_id),
        csrf=csrf_token(visit.settings, visit.token_hash, Purpose.PAY),
        problem=problem,
        back=visit.paths.tab("keep"),
    )
    return answer(visit.request, body, status, {"Content-Security-Policy": stripe_csp(payments)})


def _after(visit: Visit, step: PaymentStep) -> Response:
    """Where a step that is no longer waiting for the card leads."""
    if step.state in (StepState.PAY, StepState.ACTION):
        return _pay_page(visit, step)
    return see_other(visit.paths.change(step.change_id))


def _ended(visit: Visit, message: str, status: int = 409) -> Response:
    return message_page(
        visit.request,
        visit.settings,
        status,
        "Nothing was changed",
        message,
        back=visit.paths.tab("reschedule"),
    )


def _still_held(visit: Visit, change_id: int) -> bool:
    with visit.db.reading() as session:
        status = session.scalars(select(Change.status).where(Change.id == change_id)).one()
    return status is ChangeStatus.AWAITING_PAYMENT


def _problem(visit: Visit, change_id: int, exc: Exception) -> Response:
    if isinstance(exc, PaymentsUnavailable):
        log.warning("manage page: booking %s: Stripe unreachable: %s", visit.booking.id, exc)
        # Only a PaymentIntent that could not be made releases the hold; one that could not be
        # re-read leaves the times held until the hold runs out. Say what is true now.
        held = _still_held(visit, change_id)
        return _ended(visit, PAYMENTS_AWAY_HELD if held else PAYMENTS_UNREACHABLE, 503)
    if isinstance(exc, ConfigError):
        log.error("manage page: payments are not set up: %s", exc)
        return _ended(visit, PAYMENTS_NOT_SET_UP, 503)
    return _ended(visit, PAYMENT_ENDED)


@router.api_route("/m/{token}/pay/{change_id}", methods=READ)
def payment_page(
    token: str, change_id: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    """The payment step: the fee, how long the times are held, the card field."""
    visit = open_visit(request, settings, db, token, request.query_params.get("tz"))
    change = None if visit is None else _change_of(visit, change_id)
    if visit is None or change is None:
        return not_valid(request, settings, token)
    if settings.payments is None or change.status is not ChangeStatus.AWAITING_PAYMENT:
        return see_other(visit.paths.change(change.id))
    try:
        step = service.payment_step(db, settings, _gateway(settings), change.id)
        return _after(visit, step)
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, change.id, exc)


@router.post("/m/{token}/pay/{change_id}")
def pay(
    token: str,
    change_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(forms.posted_form),
) -> Response:
    """Confirm the payment with the payment method Stripe.js made from the card."""
    visit = open_visit(request, settings, db, token, posted.fields.get("tz"))
    change = None if visit is None else _change_of(visit, change_id)
    if visit is None or change is None or settings.payments is None:
        return not_valid(request, settings, token)
    try:
        forms.check_origin(settings, request.headers)
        forms.check_csrf(settings, visit.token_hash, Purpose.PAY, posted.fields)
    except FormRefused as exc:
        log.warning("manage page: payment refused (token #%s): %s", token_tag(token), exc)
        return _ended(visit, exc.message, exc.status)
    method = (posted.fields.get("payment_method") or "").strip()
    gateway = _gateway(settings)
    try:
        if not method.startswith(("pm_", "card_", "src_")):
            step = service.payment_step(db, settings, gateway, change.id)
            return _pay_page(visit, step, problem="Enter your card details, then pay.", status=422)
        step = service.pay(db, settings, gateway, change.id, method)
    except service.HoldEnded:
        # Paid already (a second click, a webhook first) or ended: the change's page says which.
        return see_other(visit.paths.change(change.id))
    except service.PaymentUnconfirmed as exc:
        log.warning("manage page: booking %s: payment unconfirmed: %s", visit.booking.id, exc)
        return _ended(visit, PAYMENT_UNCONFIRMED, 503)
    except PaymentDeclined as exc:
        log.info("manage page: booking %s: card declined (%s)", visit.booking.id, exc.code)
        try:
            step = service.payment_step(db, settings, gateway, change.id)
        except (PaymentError, ConfigError) as again:
            return _problem(visit, change.id, again)
        return _pay_page(visit, step, problem=f"{PAYMENT_DECLINED} ({exc.message})", status=402)
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, change.id, exc)
    log.info(
        "manage page: booking %s: change %s payment %s", visit.booking.id, change.id, step.state
    )
    return _after(visit, step)


@router.api_route("/m/{token}/pay/{change_id}/return", methods=READ)
def payment_return(
    token: str, change_id: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    """Back from Stripe.js (3-D Secure): the payment re-read from Stripe, the change applied
    once if it was paid (a webhook may have done it already)."""
    visit = open_visit(request, settings, db, token, request.query_params.get("tz"))
    change = None if visit is None else _change_of(visit, change_id)
    if visit is None or change is None or settings.payments is None:
        return not_valid(request, settings, token)
    try:
        step = service.payment_step(db, settings, _gateway(settings), change.id)
        if step.intent_id and step.state is StepState.PAY:
            step = service.settle(db, settings, _gateway(settings), step.intent_id)
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, change.id, exc)
    return _after(visit, step)
