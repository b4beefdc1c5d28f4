"""``GET /api/payments``: charges and refunds through Stripe (what ``calsync payments list``
shows). A booking's payments also appear in its history (``GET /api/bookings/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from calsync.payments import service
from calsync.web.api.booking_schemas import PaymentOut
from calsync.web.deps import DbDep

router = APIRouter(prefix="/payments", tags=["payments"])


@router.get("")
def list_payments(
    db: DbDep,
    booking_id: str | None = Query(None, max_length=32, description="Only this booking's."),
) -> list[PaymentOut]:
    """Every charge and refund, oldest first; a refund in state ``failed`` was refused by
    Stripe and must be paid back by hand."""
    return [PaymentOut.from_row(p) for p in service.payments_of(db, booking_id)]
