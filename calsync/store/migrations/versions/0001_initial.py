"""owners, calendar connections and the mirror

Revision ID: 0001
Revises:
Create Date: 2026-11-24 21:47:43.361272
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "owners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
        sa.UniqueConstraint("email", name=op.f("uq_owners_email")),
    )
    op.create_table(
        "calendar_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column(
            "provider",
            sa.Enum("caldav", "google", name="providerkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=True),
        sa.Column("secret_encrypted", sa.Text(), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "conflicts", "bookings", "both", name="calendarrole", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "all_day",
            sa.Enum(
                "follow_transp", "busy", "free", name="alldaymode", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "new",
                "ok",
                "failing",
                "auth_failed",
                name="connectionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expanded_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expanded_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_calendar_connections_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connections")),
    )
    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calendar_connections_due", ["next_poll_at", "lease_until"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_calendar_connections_owner_id"), ["owner_id"], unique=False
        )

    op.create_table(
        "mirrored_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_mirrored_events_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrored_events")),
        sa.UniqueConstraint(
            "connection_id", "href", name=op.f("uq_mirrored_events_connection_id_href")
        ),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("ok", "failed", "lease_lost", name="syncoutcome", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("upserted", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_sync_runs_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_connection_id"), ["connection_id"], unique=False
        )

    op.create_table(
        "busy_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_busy_intervals_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["mirrored_events.id"],
            name=op.f("fk_busy_intervals_event_id_mirrored_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_busy_intervals")),
    )
    with op.batch_alter_table("busy_intervals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_busy_intervals_connection_start", ["connection_id", "start"], unique=False
        )
        batch_op.create_index("ix_busy_intervals_event", ["event_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("busy_intervals", schema=None) as batch_op:
        batch_op.drop_index("ix_busy_intervals_event")
        batch_op.drop_index("ix_busy_intervals_connection_start")

    op.drop_table("busy_intervals")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_connection_id"))

    op.drop_table("sync_runs")
    op.drop_table("mirrored_events")
    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_connections_owner_id"))
        batch_op.drop_index("ix_calendar_connections_due")

    op.drop_table("calendar_connections")
    op.drop_table("owners")
