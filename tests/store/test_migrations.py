"""`calsync init` upgrades an older database in place, keeping its data."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from calsync.store.db import MIGRATIONS, Database
from calsync.sync import connections as services


def test_an_old_schema_is_upgraded_and_keeps_its_data(database_url: str) -> None:
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    command.upgrade(config, "0001")
    services.add_owner(db, name="Early", email="early@example.org", timezone="UTC")
    assert not db.is_current()

    db.migrate()
    assert db.is_current()
    assert [o.email for o in services.list_owners(db)] == ["early@example.org"]
    db.dispose()
