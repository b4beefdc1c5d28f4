"""Shared fixtures: settings, and a fresh migrated database on SQLite and on PostgreSQL.

PostgreSQL tests use the server named by CALSYNC_TEST_POSTGRES_URL (default: the local
server on 127.0.0.1:5432, database ``test``); each test gets a database of its own, made and
dropped around it. Where the server is unreachable those tests are skipped, unless
CALSYNC_TEST_REQUIRE_POSTGRES=1 (as in CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from calsync.calendars.google import account as google_connect
from calsync.config import Settings, SyncSettings
from calsync.store.db import Database

pytest_plugins = ["tests.support.servers", "tests.support.stripe"]

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


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"calsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/calsync.db"
    return request.getfixturevalue("postgres_url")


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
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _forget_kept_google_credentials() -> Iterator[None]:
    """Google access tokens are kept per process (``google_connect``); no test may lean on a
    token an earlier test's fake handed out."""
    google_connect._KEPT_CREDENTIALS.clear()
    yield
