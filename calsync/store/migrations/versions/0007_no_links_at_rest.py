"""no working manage link at rest: redact the mirror's copies, drop the bodies of sent emails

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

# calsync's own function, so that old rows end exactly as new ones are stored. Were it ever
# changed, the rows redacted here would still be redacted: it only ever removes tokens.
from calsync.calendars.ical.event_edit import redact_link_tokens

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    # The tables' shape stays; only what they hold changes.
    bind = op.get_bind()
    outbox = sa.table("outbox", sa.column("raw", sa.LargeBinary), sa.column("status", sa.String))
    bind.execute(sa.update(outbox).where(outbox.c.status.in_(["sent", "dropped"])).values(raw=b""))
    events = sa.table("mirrored_events", sa.column("id", sa.Integer), sa.column("data", sa.Text))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(events.c.id, events.c.data)
            .where(events.c.id > last)
            .order_by(events.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for event_id, data in rows:
            redacted = redact_link_tokens(data)
            if redacted != data:
                bind.execute(sa.update(events).where(events.c.id == event_id).values(data=redacted))
        last = rows[-1][0]


def downgrade() -> None:
    # Nothing to restore: the tokens are gone for good, which is the point.
    pass
