"""whether an adopted booking's customer is emailed their confirmation with the link

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_connections") as batch:
        batch.add_column(
            sa.Column(
                "adopt_email_customer", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("calendar_connections") as batch:
        batch.drop_column("adopt_email_customer")
