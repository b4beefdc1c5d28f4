"""Leases and backoff (store/leases.py): what the poller, the change applier and the outbox
share. Claims on both databases; on PostgreSQL two workers claiming at once get different rows
without waiting for each other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from calsync.store import leases
from calsync.store.db import Database
from calsync.store.models import OutboxMessage, OutboxStatus

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
BASE = timedelta(seconds=30)
CAP = timedelta(minutes=30)


def add_messages(db: Database, count: int) -> list[int]:
    with db.writing() as session:
        rows = [
            OutboxMessage(
                booking_id=None,
                recipient=f"r{i}@example.org",
                role="owner",
                subject="s",
                message_id=f"<m{i}@example.org>",
                raw=b"",
                status=OutboxStatus.READY,
                next_attempt_at=NOW - timedelta(minutes=1),
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def claim(db: Database, owner: str, *, now: datetime = NOW, limit: int = 10) -> list[int]:
    with db.writing() as session:
        return leases.claim(
            session,
            OutboxMessage,
            now=now,
            lease=LEASE,
            limit=limit,
            where=[OutboxMessage.next_attempt_at <= now],
            order_by=[OutboxMessage.id],
            owner=owner,
        )


def test_a_claimed_row_is_nobody_elses_until_its_lease_passes_or_is_released(
    db: Database,
) -> None:
    first, second, third = add_messages(db, 3)
    assert claim(db, "a", limit=2) == [first, second]
    assert claim(db, "b") == [third]
    assert claim(db, "c") == []
    with db.reading() as session:
        row = session.get(OutboxMessage, first)
        assert row is not None
        assert (row.lease_owner, row.lease_until) == ("a", NOW + LEASE)

    with db.writing() as session:
        leases.release(session, OutboxMessage, [first, third], owner="a")  # third is b's
    assert claim(db, "c", now=NOW + timedelta(minutes=1)) == [first]

    # A stalled worker's lease runs out: the row goes to the next claimer.
    assert claim(db, "d", now=NOW + LEASE + timedelta(seconds=1)) == [second, third]


def test_renew_extends_only_the_leases_still_held(db: Database) -> None:
    first, second = add_messages(db, 2)
    assert claim(db, "a") == [first, second]
    later = NOW + LEASE + timedelta(minutes=5)
    after_expiry = NOW + LEASE + timedelta(seconds=1)
    assert claim(db, "b", now=after_expiry, limit=1) == [first]  # a stalled; b took it over
    with db.writing() as session:
        assert leases.renew(session, OutboxMessage, [first, second], owner="a", until=later) == [
            second
        ]
    assert claim(db, "c", now=after_expiry) == []  # second is a's again, until `later`


def test_two_workers_claiming_at_once_get_different_rows_without_waiting(
    database_url: str, db: Database
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the second claim waits, by design")
    add_messages(db, 4)
    got: dict[str, list[int]] = {}
    with db.writing() as session:
        got["a"] = leases.claim(
            session, OutboxMessage, now=NOW, lease=LEASE, limit=2, owner="a"
        )  # its rows stay locked until this transaction ends
        other = threading.Thread(target=lambda: got.setdefault("b", claim(db, "b")))
        other.start()
        other.join(timeout=30)  # a guard against a hang, not a timing assertion
        assert not other.is_alive(), "the second worker waited for the first one's rows"
    assert len(got["a"]) == len(got["b"]) == 2
    assert not set(got["a"]) & set(got["b"])


def test_backoff_grows_doubling_from_the_base_to_the_cap() -> None:
    waits = [leases.backoff(n, base=BASE, cap=CAP) for n in range(0, 9)]
    assert waits[:4] == [BASE, BASE, 2 * BASE, 4 * BASE]
    assert waits[-1] == CAP == max(waits)
    assert waits == sorted(waits)
    assert leases.backoff(10_000, base=BASE, cap=CAP) == CAP  # no overflow either


def test_backoff_jitter_stays_within_its_bounds_and_varies() -> None:
    def low(a: float, b: float) -> float:
        return a

    def high(a: float, b: float) -> float:
        return b

    jitter = timedelta(seconds=10)
    assert leases.backoff(3, base=BASE, cap=CAP, jitter=jitter, uniform=low) == 4 * BASE
    assert leases.backoff(3, base=BASE, cap=CAP, jitter=jitter, uniform=high) == 4 * BASE + jitter
    # The spread is a share of the capped wait: at the cap the wait still varies.
    assert leases.backoff(40, base=BASE, cap=CAP, spread=0.25, uniform=high) == CAP * 1.25
    samples = {leases.backoff(40, base=BASE, cap=CAP, spread=0.25) for _ in range(20)}
    assert len(samples) > 1
    assert all(CAP <= wait <= CAP * 1.25 for wait in samples)
