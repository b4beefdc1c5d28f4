"""changes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:45:33.237011
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("reschedule", "cancel", name="changekind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "actor",
            sa.Enum(
                "customer",
                "owner",
                "owner_calendar",
                "system",
                name="actor",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "applied", "conflict", name="changestatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("fee", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_changes_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sa.UniqueConstraint(
            "booking_id", "idempotency_key", name=op.f("uq_changes_booking_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_changes_booking_id"), ["booking_id"], unique=False)

    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "cancel_mode",
                sa.Enum("mark", "delete", name="cancelmode", native_enum=False, length=32),
                nullable=False,
                server_default="mark",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.drop_column("cancel_mode")

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_changes_booking_id"))

    op.drop_table("changes")
