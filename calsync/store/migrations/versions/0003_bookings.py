"""bookings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:22:30.341616
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("event_type_id", sa.Integer(), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_email", sa.String(length=320), nullable=False),
        sa.Column("customer_timezone", sa.String(length=64), nullable=False),
        sa.Column("stakeholders", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("price", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active", "cancelled", "failed", name="bookingstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum("booked", "adopted", name="bookingsource", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_encrypted", sa.Text(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["event_types.id"],
            name=op.f("fk_bookings_event_type_id_event_types"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_bookings_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_bookings_token_hash")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "booked_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "booked",
                "rescheduled",
                "cancelled",
                name="sessionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("reschedule_count", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("href", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booked_sessions_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_booked_sessions_connection_id_calendar_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booked_sessions")),
        sa.UniqueConstraint("uid", name=op.f("uq_booked_sessions_uid")),
    )
    with op.batch_alter_table("booked_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booked_sessions_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index("ix_booked_sessions_event", ["connection_id", "href"], unique=False)
        batch_op.create_index(batch_op.f("ix_booked_sessions_start"), ["start"], unique=False)

    op.create_table(
        "booking_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
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
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_changes_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["booked_sessions.id"],
            name=op.f("fk_booking_changes_session_id_booked_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_changes")),
    )
    with op.batch_alter_table("booking_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booking_changes_booking_id"), ["booking_id"], unique=False
        )

    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "adopt",
                sa.Enum(
                    "off",
                    "all",
                    "attendees",
                    "category",
                    name="adoptionrule",
                    native_enum=False,
                    length=32,
                ),
                nullable=False,
                server_default="off",
            )
        )
        batch_op.add_column(sa.Column("adopt_category", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("adopt_event_type_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendar_connections", schema=None) as batch_op:
        batch_op.drop_column("adopt_event_type_id")
        batch_op.drop_column("adopt_category")
        batch_op.drop_column("adopt")

    with op.batch_alter_table("booking_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booking_changes_booking_id"))

    op.drop_table("booking_changes")
    with op.batch_alter_table("booked_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_booked_sessions_start"))
        batch_op.drop_index("ix_booked_sessions_event")
        batch_op.drop_index(batch_op.f("ix_booked_sessions_booking_id"))

    op.drop_table("booked_sessions")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_owner_id"))

    op.drop_table("bookings")
