"""the public booking page: owners' slugs, event types' page offers, bookings' submit keys

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:50:00
"""

import sqlalchemy as sa
from alembic import op

# calsync's own function, so existing owners get the slug a new owner with that email would.
from calsync.store.models import owner_slug

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(length=100), nullable=True))
    bind = op.get_bind()
    owners = sa.table(
        "owners", sa.column("id", sa.Integer), sa.column("email", sa.String), sa.column("slug")
    )
    taken: set[str] = set()
    for owner_id, email in bind.execute(
        sa.select(owners.c.id, owners.c.email).order_by(owners.c.id)
    ).all():
        slug = owner_slug(email, taken)
        taken.add(slug)
        bind.execute(sa.update(owners).where(owners.c.id == owner_id).values(slug=slug))
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(length=100), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_owners_slug"), ["slug"])
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("booking_page", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_bookings_idempotency_key"), ["idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_bookings_idempotency_key"), type_="unique")
        batch_op.drop_column("notes")
        batch_op.drop_column("idempotency_key")
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.drop_column("booking_page")
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_owners_slug"), type_="unique")
        batch_op.drop_column("slug")
