"""Alembic environment: runs against the engine calsync hands over (see Database.migrate).

On SQLite, a batch migration rebuilds a table (new table, copy, drop the old one); with foreign
keys enforced, dropping the old ``owners`` table would cascade into every calendar, mirrored
event and booking. So foreign keys are off while migrating, as SQLite's documentation asks
for such table rebuilds, and checked once at the end.
"""

from alembic import context

from calsync.store.models import Base

config = context.config
engine = config.attributes["engine"]


def _sqlite_foreign_keys(connection: object, on: bool) -> None:
    # PRAGMA foreign_keys is a no-op inside a transaction: set it on the driver's connection,
    # which calsync runs in autocommit outside its own BEGIN.
    raw = connection.connection.dbapi_connection  # type: ignore[attr-defined]
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows without their parent: {broken}")
        connection.commit()
    finally:
        if sqlite:
            _sqlite_foreign_keys(connection, on=True)
