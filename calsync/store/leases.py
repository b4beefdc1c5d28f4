"""Leases on work rows, and the backoff between attempts: one home for the poller (calendar
connections), the change applier (pending changes) and the outbox (messages).

A lease is two columns on the row, ``lease_until`` (and, where the row records who holds it,
``lease_owner``): a row whose lease is unset or past is free. ``claim`` takes free rows in one
write transaction; on PostgreSQL ``FOR UPDATE SKIP LOCKED`` makes concurrent workers pass over
each other's rows instead of waiting, and SQLite (which ignores the clause) has its IMMEDIATE
write transaction exclude other writers anyway. A worker that stalls past its lease loses the
row to the next claimer, so a holder checks its lease again before it stores a result
(``lease_owner`` is the fence).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

__all__ = ["backoff", "claim", "release", "renew"]


def claim(
    session: Session,
    model: Any,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    where: Iterable[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
    owner: str | None = None,
) -> list[int]:
    """Lease up to ``limit`` free rows of ``model`` matching ``where`` until ``now + lease``;
    their ids. ``owner`` is written to ``lease_owner`` (for models that record it).

    Run it inside ``Database.writing()``: the lease is taken when that transaction commits.
    """
    query = (
        select(model.id)
        .where(or_(model.lease_until.is_(None), model.lease_until < now), *where)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(query))
    if ids:
        values: dict[str, Any] = {"lease_until": now + lease}
        if owner is not None:
            values["lease_owner"] = owner
        session.execute(update(model).where(model.id.in_(ids)).values(values))
    return ids


def renew(
    session: Session, model: Any, ids: Iterable[int], *, owner: str, until: datetime
) -> list[int]:
    """Extend ``owner``'s leases on ``ids`` to ``until``; the ids it still held."""
    wanted = list(ids)
    if not wanted:
        return []
    held = list(
        session.scalars(
            select(model.id)
            .where(model.id.in_(wanted), model.lease_owner == owner)
            .with_for_update(skip_locked=True)
        )
    )
    if held:
        session.execute(update(model).where(model.id.in_(held)).values(lease_until=until))
    return held


def release(session: Session, model: Any, ids: Iterable[int], *, owner: str | None = None) -> None:
    """Give the leases on ``ids`` back (only ``owner``'s, when given): free for the next claim."""
    wanted = list(ids)
    if not wanted:
        return
    query = update(model).where(model.id.in_(wanted))
    values: dict[str, Any] = {"lease_until": None}
    if owner is not None:
        query = query.where(model.lease_owner == owner)
        values["lease_owner"] = None
    session.execute(query.values(values))


def backoff(
    failures: int,
    *,
    base: timedelta,
    cap: timedelta,
    jitter: timedelta = timedelta(0),
    spread: float = 0.0,
    uniform: Callable[[float, float], float] = random.uniform,
) -> timedelta:
    """The wait after ``failures`` failures in a row: ``base`` (no or one failure), doubling
    with each further failure, at most ``cap``; then up to ``jitter`` more, and up to
    ``spread`` times the wait more, so that workers that failed together do not come back
    together.

    The callers keep their own caps because what waits differs: a customer's change that has
    not reached the calendar (the applier: 30 minutes), a message to a mail server that is down
    (the outbox: 6 hours), a calendar being polled (the poller: ``sync.max_backoff_seconds``).
    """
    doublings = min(max(failures - 1, 0), 60)  # 2**60 × any base is past every cap
    seconds = min(cap.total_seconds(), base.total_seconds() * 2.0**doublings)
    extra = uniform(0.0, jitter.total_seconds()) if jitter else 0.0
    extra += seconds * uniform(0.0, spread) if spread else 0.0
    return timedelta(seconds=seconds + extra)
