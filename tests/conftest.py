"""Shared fixtures: settings, and a fresh migrated database on SQLite and on PostgreSQL.

PostgreSQL tests use the server named by CALSYNC_TEST_POSTGRES_URL (default: the local
server on 127.0.0.1:5432, database ``test``); each test gets a database of its own, made and
dropped around it. Where the server is unreachable those tests are skipped, unless
CALSYNC_TEST_REQUIRE_POSTGRES=1 (as in CI), where they fail.

Speed, without sharing anything between tests:

- The migrations run once per session and database kind, into a template; a test that asks for
  ``db`` gets a copy of it (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL),
  the same schema ``migrate()`` would have made, in milliseconds instead of a third of a second.
  Tests of the migrations themselves start from an empty database (``postgres_url`` or a
  ``database_url`` without ``db``) and still run them.
- PostgreSQL's DROP DATABASE waits for a checkpoint (up to seconds on a busy disk), so a test's
  database is dropped by a background thread while the next tests run; the session waits for
  the last drop before it ends. Each database has a unique name, so no test can see another's.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from calsync.calendars.google import account as google_connect
from calsync.config import Settings, SyncSettings
from calsync.store.db import Database

pytest_plugins = [
    "tests.support.servers",
    "tests.support.stripe",
    "tests.support.own_postgres",
    "tests.support.mail",
]

POSTGRES_URL = os.environ.get(
    "CALSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


def _admin_conninfo() -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(_admin_conninfo(), connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip()


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    problem = _postgres_problem()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {problem}"
        if os.environ.get("CALSYNC_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return _admin_conninfo()


class _Dropper:
    """Drops databases on background threads (see the module docstring for why).

    Two threads, so that two drops can share one checkpoint. A failed drop is kept and reported
    when the session ends: a database left behind is a leak worth hearing about.
    """

    def __init__(self, admin: str, threads: int = 2) -> None:
        self._admin = admin
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.failures: list[str] = []
        self._threads = [
            threading.Thread(target=self._run, name=f"drop-databases-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def drop(self, name: str) -> None:
        self._queue.put(name)

    def _run(self) -> None:
        while (name := self._queue.get()) is not None:
            try:
                with psycopg.connect(self._admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # reported by close(); a thread must not die of it
                self.failures.append(f"{name}: {exc}")

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


@pytest.fixture(scope="session")
def _postgres_dropper(postgres_admin: str) -> Iterator[_Dropper]:
    dropper = _Dropper(postgres_admin)
    yield dropper
    dropper.close()
    assert not dropper.failures, f"databases not dropped: {dropper.failures}"


def _create_postgres_database(admin: str, template: str | None = None) -> str:
    name = f"calsync_test_{uuid.uuid4().hex[:12]}"
    # WAL_LOG (PostgreSQL 15's default) copies without the two checkpoints FILE_COPY takes.
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def _postgres_url_of(name: str) -> str:
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_admin: str, _postgres_dropper: _Dropper) -> Iterator[str]:
    """The name of a PostgreSQL database migrated to the newest revision, used only as the
    template of each test's ``db`` (nothing stays connected to it)."""
    name = _create_postgres_database(postgres_admin)
    database = Database(_postgres_url_of(name))
    try:
        database.migrate()
    finally:
        database.dispose()
    yield name
    _postgres_dropper.drop(name)


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest revision, copied for each test's ``db``."""
    path = tmp_path_factory.mktemp("migrated") / "calsync.db"
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
    finally:
        database.dispose()
    # The last connection's close checkpointed the WAL into the file: the file is all of it.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def postgres_url(postgres_admin: str, _postgres_dropper: _Dropper) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = _create_postgres_database(postgres_admin)
    yield _postgres_url_of(name)
    _postgres_dropper.drop(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database of each kind; empty, or already migrated when the test also uses ``db``."""
    migrated = "db" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "calsync.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), path)
        yield f"sqlite:///{path}"
        return
    admin: str = request.getfixturevalue("postgres_admin")
    dropper: _Dropper = request.getfixturevalue("_postgres_dropper")
    template = request.getfixturevalue("_migrated_postgres") if migrated else None
    name = _create_postgres_database(admin, template)
    yield _postgres_url_of(name)
    dropper.drop(name)


def make_settings(database_url: str, **sync: float) -> Settings:
    values = {"poll_interval_seconds": 60, "poll_jitter_seconds": 0, "lease_seconds": 30}
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        sync=SyncSettings(**(values | sync)),
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    # database_url is a copy of the migrated template when ``db`` is asked for (see above).
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _forget_kept_google_credentials() -> Iterator[None]:
    """Google access tokens are kept per process (``google_connect``); no test may lean on a
    token an earlier test's fake handed out."""
    google_connect._KEPT_CREDENTIALS.clear()
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test``), tests that share a module-scoped fixture (a browser,
    a plain web server) run on one worker, so the fixture starts once, not once per worker.
    Takes effect with ``--dist loadgroup``; elsewhere the mark means nothing."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        shared = any(
            definition.scope == "module"
            for name in item.fixturenames
            for definition in info.name2fixturedefs.get(name, ())
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
