"""items a customer's request-time refresh stored in the mirror, for the worker to follow up

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_mirror_follow_ups_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_follow_ups")),
    )
    with op.batch_alter_table("mirror_follow_ups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mirror_follow_ups_connection_id"), ["connection_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mirror_follow_ups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mirror_follow_ups_connection_id"))
    op.drop_table("mirror_follow_ups")
