"""reschedule requests: the owner asks the customer to choose new times for some sessions

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reschedule_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.String(length=32), nullable=False),
        sa.Column("session_ids", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_reschedule_requests_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["changes.id"],
            name=op.f("fk_reschedule_requests_change_id_changes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reschedule_requests")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_reschedule_requests_token_hash")),
    )
    with op.batch_alter_table("reschedule_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reschedule_requests_booking_id"), ["booking_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reschedule_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reschedule_requests_booking_id"))
    op.drop_table("reschedule_requests")
