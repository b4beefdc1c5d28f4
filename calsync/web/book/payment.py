"""The booking page's payment step: ``/b/<owner>/<type>/pay/<checkout>?t=<tag>`` (README "The
booking page").

A priced package submitted while payments are configured is not booked at once: its times are
held (``bookings/checkouts.py``) and the customer lands here. As on the manage page's fee step
(``web/manage/payment.py``, whose ``pay.js`` this page shares), the card goes from the browser
to Stripe only; the form posts the payment method id, the server confirms the PaymentIntent
and, once Stripe says it is paid, books the package (``payments/checkout.py``). 3-D Secure
returns to ``…/return``, where the payment is re-read from Stripe. The URL's tag (an HMAC of
the checkout id) is the only way in, so the form needs no other token.

Only this step's Content-Security-Policy adds Stripe's origins.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.bookings.packages import BookingResult
from calsync.config import ConfigError, Settings
from calsync.payments import checkout as paying
from calsync.payments.checkout import CheckoutStep, StepState
from calsync.payments.errors import PaymentDeclined, PaymentError, PaymentsUnavailable
from calsync.payments.gateway import StripeGateway
from calsync.store.models import CheckoutHold
from calsync.web.book.pages import Visit, not_found, open_visit, result_page
from calsync.web.book.routes import BookingPageRoute, limit_booking_requests
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage.forms import FormRefused, PostedForm, check_origin, posted_form, small_int
from calsync.web.manage.payment import stripe_csp
from calsync.web.manage.render import message_page
from calsync.web.manage.wording import PAYMENT_DECLINED, PAYMENTS_NOT_SET_UP, PAYMENTS_UNREACHABLE

log = logging.getLogger(__name__)

router = APIRouter(
    tags=["booking page"],
    include_in_schema=False,
    dependencies=[Depends(limit_booking_requests)],
    route_class=BookingPageRoute,
)
READ = ["GET", "HEAD"]


def _gateway(settings: Settings) -> StripeGateway:
    assert settings.payments is not None
    return StripeGateway.from_settings(settings.payments)


def _checkout(visit: Visit, checkout_id: str, tag: str | None) -> int | None:
    number = small_int(checkout_id)
    if number is None or not paying.tag_ok(visit.settings, number, tag):
        return None
    return number


def _pay_page(
    visit: Visit, step: CheckoutStep, *, problem: str | None = None, status: int = 200
) -> Response:
    payments = visit.settings.payments
    assert payments is not None
    with visit.db.reading() as session:
        held = list(
            session.scalars(
                select(CheckoutHold)
                .where(CheckoutHold.checkout_id == step.checkout_id)
                .order_by(CheckoutHold.start)
            )
        )
    tag = paying.access_tag(visit.settings, step.checkout_id)
    action = f"{visit.base}/pay/{step.checkout_id}"
    response = visit.render(
        "book_pay.html",
        status,
        sessions=[visit.when(h.start) for h in held],
        amount=step.amount_text,
        expires=step.expires_at.astimezone(visit.zone).strftime("%H:%M"),
        js_url=payments.js_url,
        publishable_key=payments.publishable_key(),
        client_secret=step.client_secret if step.state is StepState.ACTION else "",
        action=action,
        return_url=f"{action}/return?t={tag}&tz={visit.zone.key}",
        tag=tag,
        problem=problem,
    )
    response.headers["Content-Security-Policy"] = stripe_csp(payments)
    return response


def _after(visit: Visit, step: CheckoutStep, result: BookingResult | None) -> Response:
    """The page for a step: the card, the booked sessions, or why nothing was booked."""
    if result is not None:
        return result_page(visit, result)
    if step.state in (StepState.PAY, StepState.ACTION):
        return _pay_page(visit, step)
    status = 409
    message = step.message or "Nothing was booked."
    return message_page(
        visit.request, visit.settings, status, "Nothing was booked", message, back=visit.base
    )


def _problem(visit: Visit, exc: Exception) -> Response:
    if isinstance(exc, PaymentsUnavailable):
        log.warning("booking page: Stripe unreachable: %s", exc)
        message, status = PAYMENTS_UNREACHABLE, 503
    elif isinstance(exc, ConfigError):
        log.error("booking page: payments are not set up: %s", exc)
        message, status = PAYMENTS_NOT_SET_UP, 503
    else:
        message, status = "This payment is no longer open. Nothing was booked.", 409
    return message_page(
        visit.request, visit.settings, status, "Nothing was booked", message, back=visit.base
    )


@router.api_route("/b/{owner_slug}/{slug}/pay/{checkout_id}", methods=READ)
def payment_page(
    owner_slug: str,
    slug: str,
    checkout_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
) -> Response:
    """The payment step: the held times, the price, how long they stay held, the card."""
    params = request.query_params
    visit = open_visit(request, settings, db, owner_slug, slug, params.get("tz"))
    number = None if visit is None else _checkout(visit, checkout_id, params.get("t"))
    if visit is None or number is None or settings.payments is None:
        return not_found(request, settings)
    try:
        gateway = _gateway(settings)
        step = paying.checkout_step(db, settings, gateway, number)
        return _after(visit, step, paying.booked_result(db, settings, step))
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, exc)


@router.post("/b/{owner_slug}/{slug}/pay/{checkout_id}")
def pay(
    owner_slug: str,
    slug: str,
    checkout_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> Response:
    """Confirm the payment with the payment method Stripe.js made from the card."""
    fields = posted.fields
    visit = open_visit(request, settings, db, owner_slug, slug, fields.get("tz"))
    number = None if visit is None else _checkout(visit, checkout_id, fields.get("t"))
    if visit is None or number is None or settings.payments is None:
        return not_found(request, settings)
    try:
        check_origin(settings, request.headers)
    except FormRefused as exc:
        return message_page(
            request, settings, exc.status, "Nothing was booked", exc.message, back=visit.base
        )
    method = (fields.get("payment_method") or "").strip()
    try:
        gateway = _gateway(settings)
        if not method.startswith(("pm_", "card_", "src_")):
            step = paying.checkout_step(db, settings, gateway, number)
            return _pay_page(visit, step, problem="Enter your card details, then pay.", status=422)
        step, result = paying.pay(db, settings, gateway, number, method)
    except PaymentDeclined as exc:
        log.info("booking page: checkout %s: card declined (%s)", number, exc.code)
        try:
            step = paying.checkout_step(db, settings, _gateway(settings), number)
        except (PaymentError, ConfigError) as again:
            return _problem(visit, again)
        return _pay_page(visit, step, problem=f"{PAYMENT_DECLINED} ({exc.message})", status=402)
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, exc)
    log.info("booking page: checkout %s payment %s", number, step.state)
    return _after(visit, step, result)


@router.api_route("/b/{owner_slug}/{slug}/pay/{checkout_id}/return", methods=READ)
def payment_return(
    owner_slug: str,
    slug: str,
    checkout_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
) -> Response:
    """Back from Stripe.js (3-D Secure): the payment re-read from Stripe, the package booked
    once if it was paid (the webhook may have done it already)."""
    params = request.query_params
    visit = open_visit(request, settings, db, owner_slug, slug, params.get("tz"))
    number = None if visit is None else _checkout(visit, checkout_id, params.get("t"))
    if visit is None or number is None or settings.payments is None:
        return not_found(request, settings)
    try:
        gateway = _gateway(settings)
        step = paying.checkout_step(db, settings, gateway, number)
        result = paying.booked_result(db, settings, step)
        if step.intent_id and step.state is StepState.PAY:
            step, result = paying.settle(db, settings, gateway, step.intent_id)
    except (PaymentError, ConfigError) as exc:
        return _problem(visit, exc)
    return _after(visit, step, result)
