"""`calsync init` upgrades an older database in place, keeping its data."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from calsync.store.db import MIGRATIONS, Database
from calsync.sync import connections as services


def test_an_old_schema_is_upgraded_and_keeps_its_data(database_url: str) -> None:
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    command.upgrade(config, "0001")
    # Rows as the 0001 schema holds them (today's code writes columns it did not have).
    with db.engine.begin() as connection:
        for email in ("early@example.org", "early@example.net", "x.y+z@example.org"):
            connection.execute(
                text(
                    "INSERT INTO owners (name, email, timezone, created_at) "
                    "VALUES ('Early', :email, 'UTC', CURRENT_TIMESTAMP)"
                ),
                {"email": email},
            )
    assert not db.is_current()

    db.migrate()
    assert db.is_current()
    owners = services.list_owners(db)
    assert [o.email for o in owners] == [
        "early@example.org",
        "early@example.net",
        "x.y+z@example.org",
    ]
    # 0010 gives every owner a unique booking page slug from the email's local part.
    assert [o.slug for o in owners] == ["early", "early-2", "x-y-z"]
    db.dispose()
