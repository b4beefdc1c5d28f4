"""payments through Stripe: charges and refunds, held times, the PaymentIntent of a booking

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("payment_intent", sa.String(255), nullable=True))
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", _enum("paymentkind", "charge", "refund"), nullable=False),
        sa.Column(
            "state",
            _enum("paymentstate", "open", "succeeded", "declined", "canceled", "failed"),
            nullable=False,
        ),
        sa.Column(
            "booking_id",
            sa.String(32),
            sa.ForeignKey("bookings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("change_id", sa.Integer(), sa.ForeignKey("changes.id", ondelete="SET NULL")),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("stripe_id", sa.String(255), unique=True),
        sa.Column("payment_intent", sa.String(255)),
        sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
        sa.Column("booking_version", sa.Integer()),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_payments_booking_id", "payments", ["booking_id"])
    op.create_index("ix_payments_payment_intent", "payments", ["payment_intent"])
    op.create_table(
        "payment_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id", sa.Integer(), sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "change_id",
            sa.Integer(),
            sa.ForeignKey("changes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_payment_holds_change_id", "payment_holds", ["change_id"])
    op.create_index("ix_payment_holds_owner", "payment_holds", ["owner_id", "released_at", "start"])


def downgrade() -> None:
    op.drop_table("payment_holds")
    op.drop_table("payments")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("payment_intent")
