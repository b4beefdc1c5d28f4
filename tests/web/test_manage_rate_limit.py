"""The manage page's rate limits are kept in the database: two app instances (as two
``calsync web`` processes would be) sharing one database share one budget, on SQLite and on
PostgreSQL, and a refused request counts nothing. The same with Redis (the one on
127.0.0.1:6379, or CALSYNC_TEST_REDIS_URL; skipped without one)."""

from __future__ import annotations

import os
import secrets
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from redis.exceptions import RedisError
from sqlalchemy import func, select

from calsync.config import Settings
from calsync.store import rate_limits
from calsync.store.db import Database
from calsync.store.models import RateLimitHit
from calsync.store.rate_limits import RedisCounter
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits, SharedLimiter
from tests.support.servers import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def two_apps(settings: Settings, db: Database) -> Iterator[tuple[TestClient, TestClient]]:
    limits = RateLimits(reads_per_minute=3, changes_per_minute=1)
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(TestClient(create_app(settings, db=db, manage_limits=limits)))
            for _ in range(2)
        )
        yield first, second


def page(token: str) -> str:
    return f"/m/{token}"


def test_two_web_processes_share_one_budget(two_apps: tuple[TestClient, TestClient]) -> None:
    first, second = two_apps
    link = page(secrets.token_urlsafe(32))
    assert [first.get(link).status_code for _ in range(2)] == [404, 404]  # no such booking
    assert second.get(link).status_code == 404
    refused = second.get(link)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert first.get(link).status_code == 429
    # The client's address has used its budget too, whatever link it tries next.
    assert first.get(page(secrets.token_urlsafe(32))).status_code == 429
    # Changes have a budget of their own.
    assert first.post(f"{link}/cancel").status_code != 429
    assert second.post(f"{link}/cancel").status_code == 429


def test_a_refused_request_counts_nothing_and_old_counts_expire(db: Database) -> None:
    keys = ["read:token:abc", "read:address:192.0.2.1"]
    assert rate_limits.count_request(db, keys, 2, 60, now=1000.0) is None
    assert rate_limits.count_request(db, keys[:1], 2, 60, now=1010.0) is None
    assert rate_limits.count_request(db, keys, 2, 60, now=1020.0) == 40  # the oldest + 60 s
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(RateLimitHit)) == 3
    # A minute after the first request, its count is gone (and its row with it).
    assert rate_limits.count_request(db, keys, 2, 60, now=1060.5) is None
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(RateLimitHit)) == 3


def test_concurrent_requests_never_pass_the_budget(db: Database) -> None:
    allowed, threads = 5, 12
    passed: list[bool] = []
    start = threading.Barrier(threads)

    def one() -> None:
        start.wait()
        passed.append(
            rate_limits.count_request(db, ["change:token:x"], allowed, 60, 5000.0) is None
        )

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert passed.count(True) == allowed


REDIS_URL = os.environ.get("CALSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_counter() -> RedisCounter:
    counter = RedisCounter(REDIS_URL, prefix=f"calsync-test:{uuid.uuid4().hex}:")
    try:
        counter.count_request(["probe"], 1000, 1, 0.0)
    except RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    return counter


def test_with_redis_two_web_processes_share_one_budget(settings: Settings, db: Database) -> None:
    counter = redis_counter()
    limits = RateLimits(reads_per_minute=3, changes_per_minute=1)
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(TestClient(create_app(settings, db=db, manage_limits=limits)))
            for _ in range(2)
        )
        for client in (first, second):
            client.app.state.manage_limiter = SharedLimiter(limits, redis=counter)  # type: ignore[attr-defined]
        link = page(secrets.token_urlsafe(32))
        assert [first.get(link).status_code, second.get(link).status_code] == [404, 404]
        assert first.get(link).status_code == 404
        refused = second.get(link)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(RateLimitHit)) == 0


def test_redis_counts_like_the_database() -> None:
    counter = redis_counter()
    keys = ["read:token:abc", "read:address:192.0.2.1"]
    assert counter.count_request(keys, 2, 60, now=1000.0) is None
    assert counter.count_request(keys[:1], 2, 60, now=1010.0) is None
    assert counter.count_request(keys, 2, 60, now=1020.0) == 40
    assert counter.count_request(keys, 2, 60, now=1060.5) is None
    counter.close()


def test_a_redis_that_is_down_lets_the_page_answer(settings: Settings, db: Database) -> None:
    limits = RateLimits(reads_per_minute=1, changes_per_minute=1)
    down = RedisCounter(f"redis://:secret-word@127.0.0.1:{free_port()}/0")
    app = create_app(settings, db=db, manage_limits=limits)
    app.state.manage_limiter = SharedLimiter(limits, redis=down)
    with TestClient(app) as client:
        link = page(secrets.token_urlsafe(32))
        assert [client.get(link).status_code for _ in range(3)] == [404] * 3
