"""What calsync does with Stripe: the PaymentIntent of a change awaiting payment, the change
applied exactly once when it is paid, holds released when they run out, refunds paid.

Every step is idempotent and safe to run from two places at once (a webhook and the return
URL, two workers): the state that decides lives in the database and is changed under the
owner's lock (``bookings/held.py``); Stripe is asked outside any transaction, with an
idempotency key per charge or refund (``bookings/paid_changes.stripe_key``); and what Stripe
says is always re-read from Stripe (``retrieve_intent``), never taken from a request body.

Raises ``payments/errors.py``'s tree and ``HoldEnded`` below; faces word them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, selectinload

from calsync.bookings.apply import apply_change
from calsync.bookings.changes import carry_out, recorded_counts_allowance
from calsync.bookings.held import lock_owner
from calsync.bookings.paid_changes import stripe_key
from calsync.config import Settings
from calsync.payments.errors import (
    PaymentDeclined,
    PaymentError,
    PaymentRefused,
    PaymentsUnavailable,
)
from calsync.payments.gateway import Intent, IntentStatus, Refund, StripeGateway
from calsync.policy.money import minor_text
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    Booking,
    BookingChange,
    BookingStatus,
    Change,
    ChangeStatus,
    HistoryAction,
    Payment,
    PaymentHold,
    PaymentKind,
    PaymentState,
    utcnow,
)
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)

#: Why a paid change was not applied (shown to the customer, kept on the change).
LATE = (
    "The payment arrived after the times were released, so nothing was changed and the fee "
    "is being refunded in full. Please choose new times again."
)
STALE = (
    "The booking changed while the payment was on its way, so nothing was changed and the fee "
    "is being refunded in full. Please choose new times again."
)
EXPIRED = "The times were held for you but the fee was not paid in time; they are free again."
#: How long a released charge is still re-read from Stripe, in case its cancel failed.
RECHECK_RELEASED = timedelta(days=1)
MISMATCH = (
    "The payment did not match this change, so nothing was changed and it is being refunded in "
    "full. Please choose new times again."
)
#: How long a run that claimed a refund has to send it before another run may take it over.
REFUND_LEASE = timedelta(minutes=5)
#: How many pending refunds one worker beat re-reads from Stripe (the rest wait a beat).
PENDING_BATCH = 50
UNREACHABLE = "The payment service could not be reached, so the times were released."


class HoldEnded(PaymentError):
    """The change is no longer waiting for a payment (paid already, or its hold ran out)."""


class PaymentUnconfirmed(PaymentsUnavailable):
    """The confirm got no answer and Stripe could not be asked again: the card may have been
    charged, so the hold stays; the worker re-reads the intent (``check_open_intents``)."""


class StepState(StrEnum):
    PAY = "pay"  # waiting for the card
    ACTION = "action"  # Stripe.js must ask the customer (3-D Secure)
    PAID = "paid"  # paid; the change is applied (or pending for the calendar)
    REFUNDED = "refunded"  # paid too late; the money goes back
    ENDED = "ended"  # the hold ran out unpaid


@dataclass(frozen=True, slots=True)
class PaymentStep:
    """What the payment step of a change shows and does."""

    state: StepState
    change_id: int
    booking_id: str
    amount: int
    currency: str
    intent_id: str | None
    client_secret: str | None
    expires_at: datetime | None
    message: str | None = None

    @property
    def amount_text(self) -> str:
        return minor_text(self.amount, self.currency)


def _charge(session: Session, change_id: int) -> Payment:
    """The change's current charge (its latest attempt)."""
    payment = session.scalars(
        select(Payment)
        .where(Payment.change_id == change_id, Payment.kind == PaymentKind.CHARGE)
        .order_by(Payment.attempt.desc())
        .limit(1)
    ).one_or_none()
    if payment is None:
        raise HoldEnded("this change has no payment to make")
    return payment


def _expiry(session: Session, change_id: int) -> datetime | None:
    return session.scalars(
        select(PaymentHold.expires_at).where(PaymentHold.change_id == change_id).limit(1)
    ).one_or_none()


def _step(session: Session, change: Change, payment: Payment, secret: str | None) -> PaymentStep:
    state = {
        ChangeStatus.AWAITING_PAYMENT: StepState.PAY,
        ChangeStatus.UNPAID: StepState.ENDED,
    }.get(change.status, StepState.PAID)
    if change.status is ChangeStatus.UNPAID and payment.state is PaymentState.SUCCEEDED:
        state = StepState.REFUNDED
    return PaymentStep(
        state,
        change.id,
        change.booking_id,
        payment.amount,
        payment.currency,
        payment.stripe_id,
        secret,
        _expiry(session, change.id),
        change.message or payment.message,
    )


def payment_step(
    db: Database, settings: Settings, gateway: StripeGateway, change_id: int
) -> PaymentStep:
    """The payment step of an awaiting change: its PaymentIntent, made on first need (with the
    charge's idempotency key, so two tabs get the same one). Stripe unreachable: the hold is
    released at once (nothing stays held, nothing is charged) and PaymentsUnavailable raised."""
    with db.reading() as session:
        change = session.get(Change, change_id)
        if change is None:
            raise HoldEnded("no such change")
        payment = _charge(session, change_id)
        if change.status is not ChangeStatus.AWAITING_PAYMENT or payment.stripe_id:
            step = _step(session, change, payment, None)
        else:
            step = None
        booking_id, amount, currency, key = (
            change.booking_id,
            payment.amount,
            payment.currency,
            payment.idempotency_key,
        )
        intent_id, payment_id = payment.stripe_id, payment.id
    if step is not None and step.state is not StepState.PAY:
        return step
    if intent_id is not None:
        intent = gateway.retrieve_intent(intent_id)
    else:
        metadata = {
            "calsync_booking_id": booking_id,
            "calsync_change_id": str(change_id),
            "calsync_payment_id": str(payment_id),
        }
        try:
            intent = gateway.create_intent(amount, currency, metadata, key)
        except PaymentsUnavailable:
            release(db, change_id, UNREACHABLE)
            raise
        with db.writing() as session:
            # Two tabs may each make an intent: the first stored wins, never overwritten.
            won = session.execute(
                update(Payment)
                .where(Payment.id == payment_id, Payment.stripe_id.is_(None))
                .values(stripe_id=intent.id, payment_intent=intent.id)
                .execution_options(synchronize_session=False)
            )
            stored_id = session.scalars(
                select(Payment.stripe_id).where(Payment.id == payment_id)
            ).one()
        if getattr(won, "rowcount", 0) != 1 and stored_id and stored_id != intent.id:
            try:
                gateway.cancel_intent(intent.id)
            except PaymentError as exc:
                log.warning("spare intent %s not cancelled: %s", intent.id, exc)
            intent = gateway.retrieve_intent(stored_id)
    with db.reading() as session:
        change = session.get(Change, change_id)
        assert change is not None
        return _step(session, change, _charge(session, change_id), intent.client_secret)


def pay(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    change_id: int,
    payment_method: str,
    factory: ProviderFactory | None = None,
) -> PaymentStep:
    """Confirm the change's intent with a payment method Stripe.js made in the browser (no
    card data reaches calsync). Declined: nothing changes, the charge is marked declined and a
    fresh intent is ready for another card (PaymentDeclined raised). Paid: ``settle``."""
    step = payment_step(db, settings, gateway, change_id)
    if step.state is not StepState.PAY:
        raise HoldEnded(step.message or "this change is not waiting for a payment")
    assert step.intent_id is not None
    try:
        intent = gateway.confirm_intent(step.intent_id, payment_method)
    except PaymentDeclined as exc:
        _declined(db, settings, change_id, step.intent_id, exc.message)
        raise
    except PaymentError as exc:
        # The card may have been charged all the same (an answer lost to a timeout, a second
        # click confirming an intent the first one paid): what Stripe holds decides.
        intent = _reread_after(gateway, step.intent_id, exc)
    if intent.status is IntentStatus.REQUIRES_ACTION:
        return _replace(step, StepState.ACTION, intent.client_secret)
    return settle(db, settings, gateway, intent.id, factory)


def _reread_after(gateway: StripeGateway, intent_id: str, failed: PaymentError) -> Intent:
    """The intent after a confirm that failed with ``failed``. Paid, or waiting for 3-D Secure:
    returned, for ``pay`` to carry on. Not paid: ``failed`` again (the hold stays; a refused
    confirm charged nothing). Stripe not answering, or the payment still processing:
    PaymentUnconfirmed, and the worker finds out."""
    try:
        intent = gateway.retrieve_intent(intent_id)
    except PaymentError as exc:
        raise PaymentUnconfirmed(exc.message, code=exc.code) from failed
    if intent.status in (IntentStatus.SUCCEEDED, IntentStatus.REQUIRES_ACTION):
        return intent
    if isinstance(failed, PaymentsUnavailable) or intent.status is IntentStatus.PROCESSING:
        raise PaymentUnconfirmed(failed.message, code=failed.code) from failed
    raise failed


def _replace(step: PaymentStep, state: StepState, secret: str | None) -> PaymentStep:
    return PaymentStep(
        state,
        step.change_id,
        step.booking_id,
        step.amount,
        step.currency,
        step.intent_id,
        secret,
        step.expires_at,
        step.message,
    )


def _declined(db: Database, settings: Settings, change_id: int, intent_id: str, why: str) -> None:
    """The charge is declined; the next attempt gets a fresh intent with its own key (an intent
    whose card was declined is not confirmed again: localstripe cannot, and a fresh one keeps
    each attempt's record plain)."""
    with db.writing() as session:
        payment = session.scalars(select(Payment).where(Payment.stripe_id == intent_id)).one()
        if payment.state is not PaymentState.OPEN:
            return
        payment.state = PaymentState.DECLINED
        payment.message = why
        change = session.get(Change, change_id)
        if change is not None and change.status is ChangeStatus.AWAITING_PAYMENT:
            attempt = payment.attempt + 1
            session.add(
                Payment(
                    kind=PaymentKind.CHARGE,
                    booking_id=payment.booking_id,
                    change_id=change_id,
                    amount=payment.amount,
                    currency=payment.currency,
                    idempotency_key=stripe_key(settings, f"change-{change_id}-charge-{attempt}"),
                    booking_version=payment.booking_version,
                    attempt=attempt,
                    message=why,
                )
            )


def settle(
    db: Database,
    settings: Settings,
    gateway: StripeGateway,
    intent_id: str,
    factory: ProviderFactory | None = None,
) -> PaymentStep:
    """What a payment of ``intent_id`` means, re-read from Stripe: paid, the change is carried
    out and applied exactly once (a second call, a webhook racing the return URL, a replayed
    event change nothing); paid after the hold ended or after the booking changed, the fee is
    refunded in full. A calendar that is down leaves the change pending for the worker: the
    payment is kept and never taken again."""
    intent = gateway.retrieve_intent(intent_id)
    now = utcnow()
    with db.reading() as session:
        found = session.scalars(select(Payment).where(Payment.stripe_id == intent_id)).one_or_none()
        if found is None or found.change_id is None:
            raise HoldEnded(f"{intent_id} is not a payment calsync asked for")
        change_id, booking_id = found.change_id, found.booking_id
        owner_id = session.scalars(select(Booking.owner_id).where(Booking.id == booking_id)).one()
    if intent.status is not IntentStatus.SUCCEEDED:
        if intent.status is IntentStatus.REQUIRES_PAYMENT_METHOD and intent.error:
            _declined(db, settings, change_id, intent_id, intent.error)
        with db.reading() as session:
            change = session.get(Change, change_id)
            assert change is not None
            step = _step(session, change, _charge(session, change_id), intent.client_secret)
        return step
    apply_it = False
    refund_id = None
    with db.writing() as session:
        lock_owner(session, owner_id)
        payment = session.scalars(select(Payment).where(Payment.stripe_id == intent_id)).one()
        change = session.get(Change, change_id)
        assert change is not None
        mismatch = _mismatch(intent, payment)
        if mismatch is not None and payment.state is not PaymentState.SUCCEEDED:
            # Not the payment this row asked for (a key Stripe still remembered from before a
            # database reset answers with an old intent): never applied, what it took goes back.
            log.error("intent %s does not match payment %s: %s", intent_id, payment.id, mismatch)
            payment.state = PaymentState.SUCCEEDED
            payment.message = MISMATCH
            if change.status is ChangeStatus.AWAITING_PAYMENT:
                change.status = ChangeStatus.UNPAID
                change.message = MISMATCH
                for held in session.scalars(
                    select(PaymentHold).where(
                        PaymentHold.change_id == change_id, PaymentHold.released_at.is_(None)
                    )
                ):
                    held.released_at = now
            refund = Payment(
                kind=PaymentKind.REFUND,
                booking_id=booking_id,
                change_id=change_id,
                amount=intent.amount,
                currency=intent.currency.upper(),
                payment_intent=intent_id,
                idempotency_key=stripe_key(settings, f"change-{change_id}-mismatch-refund"),
            )
            session.add(refund)
            session.flush()
            refund_id = refund.id
        elif payment.state is not PaymentState.SUCCEEDED:
            payment.state = PaymentState.SUCCEEDED
            payment.message = None
            booking = session.scalars(
                select(Booking)
                .options(selectinload(Booking.sessions))
                .where(Booking.id == booking_id)
            ).one()
            for held in session.scalars(
                select(PaymentHold).where(
                    PaymentHold.change_id == change_id, PaymentHold.released_at.is_(None)
                )
            ):
                held.released_at = now  # the sessions themselves take the times now
            paid = minor_text(payment.amount, payment.currency)
            booking.history.append(
                BookingChange(
                    actor=Actor.CUSTOMER,
                    action=HistoryAction.PAID,
                    details={"amount": paid, "payment": intent_id, "change": change_id},
                )
            )
            usable = (
                change.status is ChangeStatus.AWAITING_PAYMENT
                and booking.version == payment.booking_version
                and booking.status is BookingStatus.ACTIVE
            )
            if usable:
                change.status = ChangeStatus.PENDING
                change.next_attempt_at = now
                receipt = f"paid {paid}, Stripe payment {intent_id}"
                carry_out(
                    session,
                    settings,
                    booking,
                    change,
                    counts_allowance=recorded_counts_allowance(session, change),
                    receipt=receipt,
                )
                apply_it = True
            else:
                # Never applied to times that may be gone: the whole fee goes back.
                late = change.status is not ChangeStatus.AWAITING_PAYMENT
                change.status = ChangeStatus.UNPAID
                change.message = LATE if late else STALE
                refund = Payment(
                    kind=PaymentKind.REFUND,
                    booking_id=booking_id,
                    change_id=change_id,
                    amount=payment.amount,
                    currency=payment.currency,
                    payment_intent=intent_id,
                    idempotency_key=stripe_key(settings, f"change-{change_id}-late-refund"),
                )
                session.add(refund)
                session.flush()
                refund_id = refund.id
                log.warning(
                    "payment %s arrived for change %s that no longer waits; refunding",
                    intent_id,
                    change_id,
                )
    if apply_it:
        apply_change(db, settings, change_id, factory or open_provider(settings))
    if refund_id is not None:
        pay_refunds(db, gateway, only=refund_id)
    with db.reading() as session:
        change = session.get(Change, change_id)
        assert change is not None
        return _step(session, change, _charge(session, change_id), None)


def _mismatch(intent: Intent, payment: Payment) -> str | None:
    """Why ``intent`` is not the charge ``payment`` asked for, or None when it is."""
    if intent.change_id != payment.change_id:
        return f"it is for change {intent.change_id}, not {payment.change_id}"
    if (intent.amount, intent.currency.upper()) != (payment.amount, payment.currency.upper()):
        took, asked = (intent.amount, intent.currency), (payment.amount, payment.currency)
        return f"it is for {took}, not {asked}"
    return None


def release(db: Database, change_id: int, why: str, now: datetime | None = None) -> bool:
    """End an awaiting change unpaid: its holds released, its open charges cancelled, the
    sessions as they were. False if it was not waiting any more (paid meanwhile)."""
    now = now or utcnow()
    with db.writing() as session:
        change = session.get(Change, change_id)
        if change is None:
            return False
        owner_id = session.scalars(
            select(Booking.owner_id).where(Booking.id == change.booking_id)
        ).one()
        lock_owner(session, owner_id)
        session.refresh(change)
        if change.status is not ChangeStatus.AWAITING_PAYMENT:
            return False
        change.status = ChangeStatus.UNPAID
        change.message = why
        for held in session.scalars(
            select(PaymentHold).where(
                PaymentHold.change_id == change_id, PaymentHold.released_at.is_(None)
            )
        ):
            held.released_at = now
        for payment in session.scalars(
            select(Payment).where(
                Payment.change_id == change_id,
                Payment.kind == PaymentKind.CHARGE,
                Payment.state.in_([PaymentState.OPEN, PaymentState.DECLINED]),
            )
        ):
            payment.state = PaymentState.CANCELED
    return True


def expire_holds(
    db: Database,
    settings: Settings,
    gateway: StripeGateway | None,
    now: datetime | None = None,
) -> int:
    """Release every hold that ran out unpaid (the worker's job); their intents are cancelled
    at Stripe where it still can be. An intent that cannot be cancelled is re-read at once: paid
    at the last moment, ``settle`` refunds it (no webhook needed); Stripe away, the worker's
    ``check_open_intents`` looks again on its next beat."""
    now = now or utcnow()
    with db.reading() as session:
        due = list(
            session.scalars(
                select(Change.id)
                .join(PaymentHold, PaymentHold.change_id == Change.id)
                .where(
                    Change.status == ChangeStatus.AWAITING_PAYMENT,
                    PaymentHold.expires_at <= now,
                )
                .distinct()
            )
        )
    released = 0
    for change_id in due:
        if not release(db, change_id, EXPIRED, now):
            continue
        released += 1
        if gateway is None:
            continue
        with db.reading() as session:
            intents = list(
                session.scalars(
                    select(Payment.stripe_id).where(
                        Payment.change_id == change_id, Payment.stripe_id.is_not(None)
                    )
                )
            )
        for intent_id in intents:
            assert intent_id is not None
            try:
                gateway.cancel_intent(intent_id)
            except PaymentError:
                # Paid at the last moment (or Stripe away): re-read it rather than wait for a
                # webhook that may never come; settle refunds a payment for a released hold.
                log.info("intent %s of expired change %s not cancelled", intent_id, change_id)
                _settle_if_paid(db, settings, gateway, intent_id)
    return released


def _settle_if_paid(
    db: Database, settings: Settings, gateway: StripeGateway, intent_id: str
) -> bool:
    """Re-read ``intent_id`` and settle it if Stripe took the money; False when it is not paid
    (or Stripe cannot be asked now: the next worker beat asks again)."""
    try:
        intent = gateway.retrieve_intent(intent_id)
        if intent.status is not IntentStatus.SUCCEEDED:
            return False
        settle(db, settings, gateway, intent_id)
    except PaymentError as exc:
        log.warning("intent %s not settled now (%s); the worker asks again", intent_id, exc)
        return False
    return True


def check_open_intents(
    db: Database, settings: Settings, gateway: StripeGateway, now: datetime | None = None
) -> int:
    """Re-read from Stripe every intent calsync still waits on (a charge not yet recorded as
    paid, or one released in the last day whose cancel at Stripe may have failed) and settle
    those that were paid, so a lost webhook and a closed tab never leave money taken with
    nothing applied or refunded. The worker runs this every beat; it returns how many were
    settled. (Released charges are looked at for a day only, so old ones cost no calls.)"""
    since = (now or utcnow()) - RECHECK_RELEASED
    with db.reading() as session:
        intents = list(
            session.scalars(
                select(Payment.stripe_id)
                .join(Change, Change.id == Payment.change_id)
                .where(
                    Payment.kind == PaymentKind.CHARGE,
                    Payment.stripe_id.is_not(None),
                    or_(
                        and_(
                            Payment.state == PaymentState.OPEN,
                            Change.status == ChangeStatus.AWAITING_PAYMENT,
                        ),
                        and_(
                            Payment.state == PaymentState.CANCELED,
                            Change.status == ChangeStatus.UNPAID,
                            Payment.updated_at >= since,
                        ),
                    ),
                )
                .order_by(Payment.id)
            )
        )
    return sum(
        _settle_if_paid(db, settings, gateway, intent_id) for intent_id in intents if intent_id
    )


def pay_refunds(
    db: Database,
    gateway: StripeGateway,
    *,
    only: int | None = None,
    for_change: int | None = None,
    now: datetime | None = None,
) -> list[Payment]:
    """Send the open refunds (``only`` one, or those of the change ``for_change``) to Stripe.

    Safe from every worker beat, the manage page and the CLI at once: each refund is claimed
    first (state SENDING with a lease, like the outbox's claim), so only one place sends it;
    a claim left by a run that died is taken over when its lease ends. Before sending, the
    intent's refunds are listed: one carrying this refund's ``calsync_payment_id`` means an
    earlier run's refund reached Stripe, and it is recorded instead of refunding twice (the
    idempotency key alone does not cover that after Stripe's 24 hours). Refused by Stripe:
    marked failed with Stripe's words, for ``calsync payments list``; Stripe away or busy with
    the same key: left open for the next run."""
    now = now or utcnow()
    with db.reading() as session:
        query = select(Payment.id).where(Payment.kind == PaymentKind.REFUND, _sendable(now))
        if only is not None:
            query = query.where(Payment.id == only)
        if for_change is not None:
            query = query.where(Payment.change_id == for_change)
        due = list(session.scalars(query.order_by(Payment.id)))
    done = []
    for payment_id in due:
        if not _claim_refund(db, payment_id, now):
            continue  # another run is sending it
        with db.reading() as session:
            payment = session.get(Payment, payment_id)
            assert payment is not None
            intent, amount, key = payment.payment_intent, payment.amount, payment.idempotency_key
        state, stripe_id, message = PaymentState.SUCCEEDED, None, None
        try:
            if not intent:
                raise PaymentRefused("the booking has no Stripe payment to refund")
            made = _refund_made(gateway, intent, payment_id)
            if made is None:
                try:
                    made = gateway.refund(
                        intent, amount, key, {"calsync_payment_id": str(payment_id)}
                    )
                except PaymentRefused:
                    # Refused, unless a refund of ours got through meanwhile.
                    made = _refund_made(gateway, intent, payment_id)
                    if made is None:
                        raise
            stripe_id = made.id
            state, message = _refund_state(made)
        except PaymentRefused as exc:
            state, message = PaymentState.FAILED, exc.message
        except PaymentsUnavailable:
            log.warning("refund %s not sent: Stripe unreachable; retried later", payment_id)
            _unclaim_refund(db, payment_id)
            continue
        with db.writing() as session:
            payment = session.get(Payment, payment_id)
            assert payment is not None
            if payment.state is not PaymentState.SENDING:
                continue
            payment.state, payment.stripe_id, payment.message = state, stripe_id, message
            if state is not PaymentState.PENDING:
                _record_refund(session, payment)
            done.append(payment)
    return done


def _refund_state(made: Refund) -> tuple[PaymentState, str | None]:
    """What a refund Stripe answered means for its row: paid, not paid yet (Stripe pays some
    refunds days later, or fails them then), or failed (the owner pays it back by hand)."""
    if made.status == "succeeded":
        return PaymentState.SUCCEEDED, None
    if made.status in ("failed", "canceled"):
        return PaymentState.FAILED, f"Stripe could not pay refund {made.id} back ({made.status})"
    return PaymentState.PENDING, None


def _record_refund(session: Session, payment: Payment) -> None:
    """The booking's history line for a refund that reached its end (paid or failed)."""
    booking = session.get(Booking, payment.booking_id)
    assert booking is not None
    booking.history.append(
        BookingChange(
            actor=Actor.SYSTEM,
            action=HistoryAction.REFUNDED
            if payment.state is PaymentState.SUCCEEDED
            else HistoryAction.REFUND_FAILED,
            details={
                "amount": minor_text(payment.amount, payment.currency),
                "refund": payment.stripe_id,
                "payment": payment.payment_intent,
                "error": payment.message,
            },
        )
    )


def refund_update(
    db: Database, gateway: StripeGateway, refund_id: str, now: datetime | None = None
) -> bool:
    """Re-read the pending refund ``refund_id`` (re_…) from Stripe and record it paid or failed
    (a webhook says it changed, or the worker asks). Idempotent: only a row still pending moves,
    with one conditional UPDATE, so a replayed event or two workers record it once. False when
    there is nothing to record (not ours, not pending, still pending at Stripe)."""
    with db.reading() as session:
        payment_id = session.scalars(
            select(Payment.id).where(
                Payment.kind == PaymentKind.REFUND,
                Payment.stripe_id == refund_id,
                Payment.state == PaymentState.PENDING,
            )
        ).one_or_none()
    if payment_id is None:
        return False
    state, message = _refund_state(gateway.retrieve_refund(refund_id))
    with db.writing() as session:
        # Still pending: touched, so the worker's bounded re-read takes the others first.
        moved = session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.state == PaymentState.PENDING)
            .values(state=state, message=message, updated_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )
        if state is PaymentState.PENDING or getattr(moved, "rowcount", 0) != 1:
            return False
        payment = session.get(Payment, payment_id)
        assert payment is not None
        session.refresh(payment)
        _record_refund(session, payment)
    if state is PaymentState.FAILED:
        log.error("refund %s (%s) failed at Stripe: pay it back by hand", payment_id, refund_id)
    return True


def check_pending_refunds(
    db: Database, gateway: StripeGateway, now: datetime | None = None, limit: int = PENDING_BATCH
) -> int:
    """Re-read from Stripe the refunds it answered "pending" (at most ``limit`` a beat, those
    looked at longest ago first) and record those paid or failed meanwhile, in case their
    webhook never came. The worker runs this every beat; it returns how many were recorded."""
    with db.reading() as session:
        pending = list(
            session.scalars(
                select(Payment.stripe_id)
                .where(
                    Payment.kind == PaymentKind.REFUND,
                    Payment.state == PaymentState.PENDING,
                    Payment.stripe_id.is_not(None),
                )
                .order_by(Payment.updated_at, Payment.id)
                .limit(limit)
            )
        )
    recorded = 0
    for refund_id in pending:
        assert refund_id is not None
        try:
            recorded += refund_update(db, gateway, refund_id, now)
        except PaymentError as exc:
            log.warning("refund %s not re-read now (%s); the worker asks again", refund_id, exc)
    return recorded


def _sendable(now: datetime) -> ColumnElement[bool]:
    """An open refund, or one whose sender's lease ran out."""
    return or_(
        Payment.state == PaymentState.OPEN,
        and_(Payment.state == PaymentState.SENDING, Payment.updated_at <= now - REFUND_LEASE),
    )


def _claim_refund(db: Database, payment_id: int, now: datetime) -> bool:
    """Take the refund for this run (one conditional UPDATE: two runs cannot both win)."""
    with db.writing() as session:
        result = session.execute(
            update(Payment)
            .where(Payment.id == payment_id, _sendable(now))
            .values(state=PaymentState.SENDING, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


def _unclaim_refund(db: Database, payment_id: int) -> None:
    with db.writing() as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.state == PaymentState.SENDING)
            .values(state=PaymentState.OPEN)
            .execution_options(synchronize_session=False)
        )


def _refund_made(gateway: StripeGateway, intent_id: str, payment_id: int) -> Refund | None:
    """The refund Stripe already made for calsync's refund ``payment_id``, if any. A list
    Stripe will not give (localstripe fails for an intent never paid) counts as none: the
    refund request itself then decides, its idempotency key still guarding a retry."""
    try:
        made = gateway.refunds_of(intent_id)
    except PaymentError as exc:
        log.info("refunds of %s not listed (%s)", intent_id, exc)
        return None
    for refund in made:
        if refund.metadata.get("calsync_payment_id") == str(payment_id) and refund.status in (
            "succeeded",
            "pending",
        ):
            return refund
    return None


def payments_of(db: Database, booking_id: str | None = None) -> list[Payment]:
    """Every charge and refund (of one booking), oldest first."""
    with db.reading() as session:
        query = select(Payment).order_by(Payment.id)
        if booking_id is not None:
            query = query.where(Payment.booking_id == booking_id)
        return list(session.scalars(query))


def change_of_intent(db: Database, intent_id: str) -> int | None:
    with db.reading() as session:
        return session.scalars(
            select(Payment.change_id).where(Payment.stripe_id == intent_id)
        ).one_or_none()
