"""Paid reschedules and refunds end to end below the web: real Radicale, real localstripe,
both databases. The fee is charged before the calendar changes, the change applies once, and
every failure leaves the booking as it was (or refunds what was paid)."""

from __future__ import annotations

import email
import email.policy
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from calsync.bookings import changes
from calsync.bookings.packages import SlotTaken, get_booking
from calsync.config import PaymentSettings, Settings
from calsync.notify.outbox import sealing_box, unseal
from calsync.payments import service
from calsync.payments.errors import PaymentDeclined, PaymentsUnavailable
from calsync.payments.gateway import StripeGateway
from calsync.payments.service import StepState
from calsync.policy.change_policy import ChangePolicy, Fee, FeeKind
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    Booking,
    ChangeStatus,
    HistoryAction,
    OutboxMessage,
    PaymentKind,
    PaymentState,
    RescheduleRequest,
    SessionStatus,
)
from tests.bookings.test_changes import Setup
from tests.support.servers import ServerProcess, free_port
from tests.support.world import at

FEE = ChangePolicy(reschedule_fee=Fee(FeeKind.FIXED, Decimal("10")))


@pytest.fixture
def paid_settings(settings: Settings, payment_settings: PaymentSettings) -> Settings:
    return settings.model_copy(update={"payments": payment_settings})


@pytest.fixture
def gateway(payment_settings: PaymentSettings) -> StripeGateway:
    return StripeGateway.from_settings(payment_settings)


def _setup(db: Database, settings: Settings, server: ServerProcess, policy: ChangePolicy) -> Setup:
    return Setup(db, settings, server, server.new_calendar(), policy=policy)


def _mails(db: Database, settings: Settings, change_id: int) -> list[str]:
    """The plain-text body of each email queued for the change."""
    box = sealing_box(settings)
    with db.reading() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.change_id == change_id))
        raws = [unseal(box, row.raw) for row in rows]
    texts = []
    for raw in raws:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        texts.append(body.get_content())
    return texts


def _start_two_of_three(setup: Setup, settings: Settings):
    mon = setup.monday
    booking = setup.book(at(mon, 9), at(mon, 11), at(mon, 13))
    first, _, third = booking.sessions
    moves = {first.id: at(mon + timedelta(days=1), 10), third.id: at(mon + timedelta(days=2), 15)}
    outcome = changes.reschedule(
        setup.db, settings, booking.id, moves, actor=Actor.CUSTOMER, idempotency_key="k1"
    )
    return booking, moves, outcome


def test_a_fee_is_paid_before_two_of_three_sessions_move_once(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    change = outcome.change
    assert change.status is ChangeStatus.AWAITING_PAYMENT
    # Nothing moved yet: the sessions keep their times until the fee is paid.
    unchanged = get_booking(db, booking.id)
    assert [s.start for s in unchanged.sessions] == [s.start for s in booking.sessions]
    assert setup.event(booking.sessions[0].href)["DTSTART"].dt == booking.sessions[0].start

    step = service.payment_step(db, paid_settings, gateway, change.id)
    assert (step.state, step.amount, step.currency) == (StepState.PAY, 2000, "EUR")
    assert step.client_secret and step.intent_id
    intent = gateway.retrieve_intent(step.intent_id)
    assert intent.metadata["calsync_change_id"] == str(change.id)
    assert intent.metadata["calsync_booking_id"] == booking.id

    paid = service.pay(db, paid_settings, gateway, change.id, "pm_card_visa")
    assert paid.state is StepState.PAID
    moved = get_booking(db, booking.id)
    for booked in moved.sessions:
        expected = moves.get(booked.id, booked.start)
        assert booked.start == expected
        assert setup.event(booked.href)["DTSTART"].dt == expected
    (applied,) = changes.changes_of(db, booking.id)
    assert applied.status is ChangeStatus.APPLIED
    mails = _mails(db, paid_settings, change.id)
    assert mails and all(f"Stripe payment {step.intent_id}" in m for m in mails)
    assert all("20.00 EUR" in m for m in mails)

    # The webhook arriving after the return URL (or a replay) changes nothing twice.
    again = service.settle(db, paid_settings, gateway, step.intent_id)
    assert again.state is StepState.PAID
    assert len(_mails(db, paid_settings, change.id)) == len(mails)
    history = [h.action for h in get_booking(db, booking.id).history]
    assert history.count(HistoryAction.PAID) == 1
    assert history.count(HistoryAction.RESCHEDULED) == 2


def test_held_times_are_busy_for_others_and_free_again_when_the_hold_ends(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    held = moves[booking.sessions[0].id]
    with pytest.raises(SlotTaken):
        setup.book(held, email="other@example.org")
    later = outcome.change.created_at + timedelta(minutes=16)
    assert service.expire_holds(db, paid_settings, gateway, now=later) == 1
    assert service.expire_holds(db, paid_settings, gateway, now=later) == 0
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.UNPAID
    assert [s.start for s in get_booking(db, booking.id).sessions] == [
        s.start for s in booking.sessions
    ]
    other = setup.book(held, email="other@example.org")
    assert other.sessions[0].start == held


def test_two_customers_cannot_both_hold_one_slot(
    db: Database, paid_settings: Settings, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    mon = setup.monday
    one = setup.book(at(mon, 9), email="one@example.org")
    two = setup.book(at(mon, 11), email="two@example.org")
    wanted = at(mon + timedelta(days=1), 10)
    results: list[object] = []

    def move(booking: Booking) -> None:
        try:
            results.append(
                changes.reschedule(
                    db,
                    paid_settings,
                    booking.id,
                    {booking.sessions[0].id: wanted},
                    actor=Actor.CUSTOMER,
                ).change.status
            )
        except SlotTaken as exc:
            results.append(exc)

    threads = [threading.Thread(target=move, args=(b,)) for b in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)).count(str(ChangeStatus.AWAITING_PAYMENT)) == 1
    assert sum(isinstance(r, SlotTaken) for r in results) == 1


def test_a_declined_card_changes_nothing_and_another_card_pays(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    with pytest.raises(PaymentDeclined):
        service.pay(db, paid_settings, gateway, outcome.change.id, "pm_card_chargeCustomerFail")
    assert [s.start for s in get_booking(db, booking.id).sessions] == [
        s.start for s in booking.sessions
    ]
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.AWAITING_PAYMENT
    assert service.pay(db, paid_settings, gateway, change.id, "pm_card_visa").state is (
        StepState.PAID
    )
    charges = [p for p in service.payments_of(db, booking.id) if p.kind is PaymentKind.CHARGE]
    assert [p.state for p in charges] == [PaymentState.DECLINED, PaymentState.SUCCEEDED]


def test_a_payment_after_the_hold_ended_is_refunded_not_applied(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    assert step.intent_id
    # The customer pays in Stripe's page just as the hold runs out (the worker's release lands
    # first; the intent could not be cancelled because it was being paid).
    service.release(db, outcome.change.id, service.EXPIRED)
    gateway.confirm_intent(step.intent_id, "pm_card_visa")
    late = service.settle(db, paid_settings, gateway, step.intent_id)
    assert late.state is StepState.REFUNDED
    assert late.message == service.LATE
    assert [s.start for s in get_booking(db, booking.id).sessions] == [
        s.start for s in booking.sessions
    ]
    refunds = [p for p in service.payments_of(db, booking.id) if p.kind is PaymentKind.REFUND]
    assert [(p.state, p.amount) for p in refunds] == [(PaymentState.SUCCEEDED, 2000)]
    assert refunds[0].stripe_id and refunds[0].stripe_id.startswith("re_")


def test_stripe_unreachable_at_confirm_releases_the_hold_and_charges_nothing(
    db: Database,
    settings: Settings,
    payment_settings: PaymentSettings,
    radicale_server: ServerProcess,
) -> None:
    dead = payment_settings.model_copy(update={"api_base": f"http://127.0.0.1:{free_port()}"})
    paid_settings = settings.model_copy(update={"payments": dead})
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    with pytest.raises(PaymentsUnavailable):
        service.payment_step(
            db, paid_settings, StripeGateway.from_settings(dead), outcome.change.id
        )
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.UNPAID
    assert change.message == service.UNREACHABLE
    # The held time is free again at once.
    assert setup.book(moves[booking.sessions[0].id], email="other@example.org")


def test_calendar_down_after_payment_keeps_the_change_pending_and_applies_it_once(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    radicale_server.stop()
    try:
        paid = service.pay(db, paid_settings, gateway, outcome.change.id, "pm_card_visa")
        assert paid.state is StepState.PAID
        (change,) = changes.changes_of(db, booking.id)
        assert change.status is ChangeStatus.PENDING
    finally:
        radicale_server.start()
    with db.writing() as session:
        from calsync.store.models import Change

        stored = session.get(Change, change.id)
        assert stored is not None
        stored.next_attempt_at = stored.created_at
    assert changes.apply_pending(db, paid_settings) == 1
    assert service.settle(db, paid_settings, gateway, step.intent_id or "").state is StepState.PAID
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED
    first = get_booking(db, booking.id).sessions[0]
    assert setup.event(first.href)["DTSTART"].dt == moves[first.id]
    charges = service.payments_of(db, booking.id)
    assert [(p.kind, p.state) for p in charges] == [(PaymentKind.CHARGE, PaymentState.SUCCEEDED)]


def _paid_booking(setup: Setup, gateway: StripeGateway, *starts):
    booking = setup.book(*starts)
    intent = gateway.create_intent(30000, "EUR", {}, f"test-booking-{booking.id}")
    gateway.confirm_intent(intent.id, "pm_card_visa")
    with setup.db.writing() as session:
        stored = session.get(Booking, booking.id)
        assert stored is not None
        stored.payment_intent = intent.id
    return get_booking(setup.db, booking.id), intent.id


@pytest.mark.parametrize(
    ("refund", "cancelled", "expected"),
    [
        (Fee(FeeKind.PERCENT, Decimal("50")), 1, 5000),  # half of 100.00, one of three
        (Fee(FeeKind.PERCENT, Decimal("100")), 2, 20000),
        (Fee(FeeKind.FIXED, Decimal("33.335")), 1, 3334),  # rounded half up to the cent
        (Fee(FeeKind.FIXED, Decimal("20")), 3, 6000),
    ],
)
def test_a_cancel_of_a_paid_booking_is_refunded_per_the_policy(
    db: Database,
    paid_settings: Settings,
    gateway: StripeGateway,
    radicale_server: ServerProcess,
    refund: Fee,
    cancelled: int,
    expected: int,
) -> None:
    setup = _setup(db, paid_settings, radicale_server, ChangePolicy(cancel_refund=refund))
    mon = setup.monday
    booking, intent = _paid_booking(setup, gateway, at(mon, 9), at(mon, 11), at(mon, 13))
    ids = [s.id for s in booking.sessions[:cancelled]]
    outcome = changes.cancel(db, paid_settings, booking.id, ids, actor=Actor.CUSTOMER)
    assert outcome.change.status is ChangeStatus.APPLIED
    (done,) = service.pay_refunds(db, gateway)
    assert (done.state, done.amount, done.payment_intent) == (
        PaymentState.SUCCEEDED,
        expected,
        intent,
    )
    assert service.pay_refunds(db, gateway) == []  # sent once
    mails = _mails(db, paid_settings, outcome.change.id)
    assert mails and all("paid back through Stripe" in m for m in mails)
    history = [h.action for h in get_booking(db, booking.id).history]
    assert history.count(HistoryAction.REFUNDED) == 1


def test_a_refund_stripe_refuses_leaves_the_cancel_done_and_the_refund_failed(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    policy = ChangePolicy(cancel_refund=Fee(FeeKind.PERCENT, Decimal("100")))
    setup = _setup(db, paid_settings, radicale_server, policy)
    booking = setup.book(at(setup.monday, 9))
    unpaid = gateway.create_intent(10000, "EUR", {}, f"test-unpaid-{booking.id}")
    with db.writing() as session:
        stored = session.get(Booking, booking.id)
        assert stored is not None
        stored.payment_intent = unpaid.id  # never paid: Stripe refuses to refund it
    changes.cancel(db, paid_settings, booking.id, [booking.sessions[0].id], actor=Actor.CUSTOMER)
    (failed,) = service.pay_refunds(db, gateway)
    assert failed.state is PaymentState.FAILED and failed.message
    assert get_booking(db, booking.id).sessions[0].status is SessionStatus.CANCELLED
    assert [p.state for p in service.payments_of(db, booking.id)] == [PaymentState.FAILED]


def test_owner_moves_are_never_charged(
    db: Database, paid_settings: Settings, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking = setup.book(at(setup.monday, 9))
    outcome = changes.reschedule(
        db,
        paid_settings,
        booking.id,
        {booking.sessions[0].id: at(setup.monday, 15)},
        actor=Actor.OWNER,
    )
    assert outcome.change.status is ChangeStatus.APPLIED
    assert service.payments_of(db, booking.id) == []


def test_without_payments_a_fee_is_recorded_and_the_change_applies_as_before(
    db: Database, settings: Settings, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, settings, radicale_server, FEE)
    booking = setup.book(at(setup.monday, 9))
    outcome = changes.reschedule(
        db,
        settings,
        booking.id,
        {booking.sessions[0].id: at(setup.monday, 15)},
        actor=Actor.CUSTOMER,
    )
    assert outcome.change.status is ChangeStatus.APPLIED
    assert outcome.fee == Decimal("10.00")
    assert service.payments_of(db, booking.id) == []


def test_a_hold_paid_as_it_expires_is_refunded_without_any_webhook(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    assert step.intent_id and step.expires_at
    # Paid at Stripe just before the hold runs out; the webhook never comes.
    gateway.confirm_intent(step.intent_id, "pm_card_visa")
    later = step.expires_at + timedelta(seconds=1)
    assert service.expire_holds(db, paid_settings, gateway, now=later) == 1
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.UNPAID
    assert change.message == service.LATE
    refunds = [p for p in service.payments_of(db, booking.id) if p.kind is PaymentKind.REFUND]
    assert [(p.state, p.amount) for p in refunds] == [(PaymentState.SUCCEEDED, 2000)]
    assert [s.start for s in get_booking(db, booking.id).sessions] == [
        s.start for s in booking.sessions
    ]


def test_the_worker_applies_a_payment_whose_webhook_never_came(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    from calsync.worker import payment_chores

    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    step = service.payment_step(db, paid_settings, gateway, outcome.change.id)
    assert step.intent_id
    # The customer paid (Stripe.js, 3-D Secure) but neither the return URL nor a webhook came.
    gateway.confirm_intent(step.intent_id, "pm_card_visa")
    payment_chores(db, paid_settings)
    (change,) = changes.changes_of(db, booking.id)
    assert change.status is ChangeStatus.APPLIED
    moved = get_booking(db, booking.id)
    assert [s.start for s in moved.sessions] == [moves.get(s.id, s.start) for s in booking.sessions]


def _queued_full_refund(
    db: Database, settings: Settings, gateway: StripeGateway, server: ServerProcess
) -> tuple[Booking, str, int]:
    policy = ChangePolicy(cancel_refund=Fee(FeeKind.PERCENT, Decimal("100")))
    setup = _setup(db, settings, server, policy)
    booking, intent = _paid_booking(setup, gateway, at(setup.monday, 9))
    outcome = changes.cancel(
        db, settings, booking.id, [booking.sessions[0].id], actor=Actor.CUSTOMER
    )
    (refund,) = [p for p in service.payments_of(db, booking.id) if p.kind is PaymentKind.REFUND]
    assert refund.change_id == outcome.change.id
    return booking, intent, refund.id


def test_refunds_sent_from_several_places_at_once_pay_back_once(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    booking, intent, refund_id = _queued_full_refund(db, paid_settings, gateway, radicale_server)
    # The worker's beat, the manage page's cancel and the CLI, all at the same moment.
    start = threading.Barrier(3)
    problems: list[BaseException] = []

    def send() -> None:
        try:
            start.wait()
            service.pay_refunds(db, gateway)
        except BaseException as exc:
            problems.append(exc)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert len(gateway.refunds_of(intent)) == 1
    (refund,) = [p for p in service.payments_of(db, booking.id) if p.id == refund_id]
    assert refund.state is PaymentState.SUCCEEDED


def test_a_refund_stripe_made_before_a_crash_is_recorded_not_failed(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    _, intent, refund_id = _queued_full_refund(db, paid_settings, gateway, radicale_server)
    # An earlier run's refund reached Stripe, but calsync stopped before recording it (and
    # Stripe's 24 hours for the key may be over): the retry must not refund a second time.
    made = gateway.refund(
        intent, 30000, f"test-earlier-{refund_id}", {"calsync_payment_id": str(refund_id)}
    )
    (done,) = service.pay_refunds(db, gateway)
    assert (done.id, done.state, done.stripe_id) == (refund_id, PaymentState.SUCCEEDED, made.id)
    assert len(gateway.refunds_of(intent)) == 1


def test_a_cancel_sends_only_its_own_refund(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    policy = ChangePolicy(cancel_refund=Fee(FeeKind.PERCENT, Decimal("100")))
    setup = _setup(db, paid_settings, radicale_server, policy)
    cancels = []
    for hour in (9, 13):
        booking, _ = _paid_booking(setup, gateway, at(setup.monday, hour))
        ids = [booking.sessions[0].id]
        cancels.append(changes.cancel(db, paid_settings, booking.id, ids, actor=Actor.CUSTOMER))
    first, second = (outcome.change.id for outcome in cancels)
    (sent,) = service.pay_refunds(db, gateway, for_change=second)
    assert sent.change_id == second and sent.state is PaymentState.SUCCEEDED
    (left,) = [
        p for p in service.payments_of(db) if p.kind is PaymentKind.REFUND and p.id != sent.id
    ]
    assert (left.change_id, left.state) == (first, PaymentState.OPEN)


def test_charge_keys_never_repeat_after_a_database_reset(
    db: Database, paid_settings: Settings, radicale_server: ServerProcess
) -> None:
    from calsync.bookings import paid_changes

    # Change ids count from 1 again after a reset; Stripe keeps keys for 24 hours.
    first = paid_changes.stripe_key(paid_settings, "change-1-charge-1")
    again = paid_changes.stripe_key(paid_settings, "change-1-charge-1")
    assert first != again and "change-1-charge-1" in first


def test_an_intent_for_another_change_is_refunded_not_applied(
    db: Database, paid_settings: Settings, gateway: StripeGateway, radicale_server: ServerProcess
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, _, outcome = _start_two_of_three(setup, paid_settings)
    change_id = outcome.change.id
    # A key that Stripe still remembers from before a reset answers with that old intent:
    # another change's, for another amount.
    old = gateway.create_intent(
        999, "EUR", {"calsync_change_id": str(change_id + 100)}, f"test-old-{booking.id}"
    )
    from calsync.store.models import Payment

    with db.writing() as session:
        (payment,) = session.scalars(select(Payment).where(Payment.change_id == change_id))
        payment.stripe_id = payment.payment_intent = old.id
    gateway.confirm_intent(old.id, "pm_card_visa")
    step = service.settle(db, paid_settings, gateway, old.id)
    assert step.state is not StepState.PAID
    assert [s.start for s in get_booking(db, booking.id).sessions] == [
        s.start for s in booking.sessions
    ]
    refunds = [p for p in service.payments_of(db, booking.id) if p.kind is PaymentKind.REFUND]
    assert [(p.state, p.amount) for p in refunds] == [(PaymentState.SUCCEEDED, 999)]


@pytest.mark.parametrize("owner_asked", [False, True])
def test_a_paid_move_counts_against_the_allowance_as_the_plan_said(
    db: Database,
    paid_settings: Settings,
    gateway: StripeGateway,
    radicale_server: ServerProcess,
    owner_asked: bool,
) -> None:
    setup = _setup(db, paid_settings, radicale_server, FEE)
    booking, moves, outcome = _start_two_of_three(setup, paid_settings)
    if owner_asked:
        # A move the owner asked for (a used reschedule request) never counts against the
        # customer's allowance, even if it carried a fee.
        with db.writing() as session:
            session.add(
                RescheduleRequest(
                    booking_id=booking.id,
                    session_ids=list(moves),
                    token_hash="0" * 64,
                    expires_at=booking.sessions[0].start,
                    used_at=booking.sessions[0].start,
                    change_id=outcome.change.id,
                )
            )
    paid = service.pay(db, paid_settings, gateway, outcome.change.id, "pm_card_visa")
    assert paid.state is StepState.PAID
    counts = {s.id: s.reschedule_count for s in get_booking(db, booking.id).sessions}
    expected = 0 if owner_asked else 1
    assert [counts[sid] for sid in moves] == [expected, expected]
