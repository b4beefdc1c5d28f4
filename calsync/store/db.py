"""Database engine and sessions, for SQLite (one process) and PostgreSQL (many workers).

SQLite serializes writers itself, but only when a transaction announces it will write
(``BEGIN IMMEDIATE``); a deferred transaction that upgrades from read to write can fail with
"database is locked" regardless of busy_timeout. ``Database.writing()`` therefore begins
IMMEDIATE on SQLite. On PostgreSQL it is a plain transaction; callers lock rows explicitly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
#: How long ``Database.persist`` keeps trying while the database cannot be reached: about what
#: a PostgreSQL restart or a failover takes.
PERSIST_SECONDS = 30.0

log = logging.getLogger(__name__)
T = TypeVar("T")


def _newest_revision() -> str:
    # The migrations are named 0001_…, 0002_…: the newest is the highest number.
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("0*.py"))


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened."""


def unreachable(exc: BaseException) -> bool:
    """True for a refused or lost database connection (a restart, a failover): something to
    wait out and try again, not a bug."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist yet (connecting would create it empty);
    None for an existing file, an in-memory database or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, int] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # As many pooled connections as on PostgreSQL, so a busy web process reuses them
            # instead of opening (and configuring) new ones.
            pool = {"pool_size": 10, "max_overflow": 10}
        # No pre-ping: a connection to a file cannot go stale, and the ping is one more
        # statement per transaction.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """An engine plus the two kinds of transaction calsync uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._reading = sessionmaker(self.engine, expire_on_commit=False)
        writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._writing = sessionmaker(writer, expire_on_commit=False)
        self._writer = writer

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A short transaction for reads (commits at the end, rolls back on error)."""
        with self._reading.begin() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that will write; on SQLite it holds the write lock from the start."""
        with self._writing.begin() as session:
            yield session

    @contextmanager
    def writing_core(self) -> Iterator[Connection]:
        """``writing()`` for Core statements only: a bare connection, without the ORM session's
        bookkeeping (for statements run once per poll)."""
        with self._writer.begin() as connection:
            yield connection

    def persist(
        self,
        work: Callable[[Session], T],
        *,
        within: float = PERSIST_SECONDS,
        sleep: Callable[[float], object] = time.sleep,
    ) -> T:
        """Run ``work`` in a writing transaction, and run it again in a new one while the
        database cannot be reached (refused or lost connection), for up to ``within`` seconds.

        For the few writes that record what already happened outside the database (an event
        written to the owner's calendar): losing them would leave the two apart for good, so
        they wait out a database restart. ``work`` must do the same thing when run again.
        Raises the last error when the database is still away.
        """
        deadline = time.monotonic() + within
        wait = 0.2
        while True:
            try:
                with self.writing() as session:
                    return work(session)
            except DBAPIError as exc:
                if not unreachable(exc) or time.monotonic() + wait > deadline:
                    raise
                log.warning("the database cannot be reached; trying again in %.1f s", wait)
                sleep(wait)
                wait = min(wait * 2, 5.0)

    def migrate(self) -> str:
        """Create or upgrade the schema to the newest migration; returns the revision."""
        # Imported here: alembic is slow to import and only this command needs it.
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = self.engine
        try:
            command.upgrade(config, "head")
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot open the database {self.safe_url}: {exc.orig}"
            ) from exc
        with self.engine.connect() as connection:
            return str(
                connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            )

    def is_current(self) -> bool:
        """True when the schema is at the newest migration this version of calsync has."""
        if not inspect(self.engine).has_table("alembic_version"):
            return False
        with self.engine.connect() as connection:
            current = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        return current == _newest_revision()

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
