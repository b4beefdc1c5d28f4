"""The manage page's rate limits are kept in the database: two app instances (as two
``calsync web`` processes would be) sharing one database share one budget, on SQLite and on
PostgreSQL, and a refused request counts nothing."""

from __future__ import annotations

import secrets
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import func, select

from calsync.config import Settings
from calsync.store import rate_limits
from calsync.store.db import Database
from calsync.store.models import RateLimitHit
from calsync.web.app import create_app
from calsync.web.manage.rate_limit import RateLimits

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
