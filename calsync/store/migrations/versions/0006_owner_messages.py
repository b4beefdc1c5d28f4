"""outbox messages without a booking (notices to the owner about their calendars)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot ALTER a column in place, so Alembic copies the table there.
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("booking_id", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE booking_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("booking_id", existing_type=sa.String(length=32), nullable=False)
