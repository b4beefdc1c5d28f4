"""the booking page's paid checkouts: the times held while the customer pays for a package

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 12:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id", sa.Integer(), sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "event_type_id",
            sa.Integer(),
            sa.ForeignKey("event_types.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("submit_key", sa.String(120), nullable=False, unique=True),
        sa.Column("stripe_id", sa.String(255), unique=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("booking_id", sa.String(32), sa.ForeignKey("bookings.id", ondelete="SET NULL")),
        sa.Column("refund_id", sa.String(255)),
        sa.Column("message", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "checkout_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "checkout_id",
            sa.Integer(),
            sa.ForeignKey("checkouts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "owner_id", sa.Integer(), sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_checkout_holds_owner", "checkout_holds", ["owner_id", "start"])
    op.create_index("ix_checkout_holds_checkout_id", "checkout_holds", ["checkout_id"])


def downgrade() -> None:
    op.drop_table("checkout_holds")
    op.drop_table("checkouts")
