"""the owner's console: one-time sign-in links and server-side sessions (hashed tokens)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 11:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _columns(table: str) -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("owners.id", ondelete="CASCADE", name=f"fk_{table}_owner_id_owners"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "console_sign_in_links",
        *_columns("console_sign_in_links"),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_console_sign_in_links_token_hash"),
    )
    op.create_index("ix_console_sign_in_links_owner_id", "console_sign_in_links", ["owner_id"])
    op.create_table(
        "console_sessions",
        *_columns("console_sessions"),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_console_sessions_token_hash"),
    )
    op.create_index("ix_console_sessions_owner_id", "console_sessions", ["owner_id"])
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_index("ix_console_sessions_owner_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_console_sign_in_links_owner_id", table_name="console_sign_in_links")
    op.drop_table("console_sign_in_links")
