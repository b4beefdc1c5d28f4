"""event types

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:09:49.967695
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("slot_step_minutes", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("weekly_hours", sa.JSON(), nullable=False),
        sa.Column("date_overrides", sa.JSON(), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("minimum_notice_minutes", sa.Integer(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("booking_calendar_id", sa.Integer(), nullable=True),
        sa.Column("price", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_calendar_id"],
            ["calendar_connections.id"],
            name=op.f("fk_event_types_booking_calendar_id_calendar_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_event_types_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_types")),
        sa.UniqueConstraint("slug", name=op.f("uq_event_types_slug")),
    )
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_types_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "event_type_conflicts",
        sa.Column("event_type_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_event_type_conflicts_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["event_types.id"],
            name=op.f("fk_event_type_conflicts_event_type_id_event_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "event_type_id", "connection_id", name=op.f("pk_event_type_conflicts")
        ),
    )


def downgrade() -> None:
    op.drop_table("event_type_conflicts")
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_types_owner_id"))

    op.drop_table("event_types")
