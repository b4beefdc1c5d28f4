"""Sliding-window request counts kept in the database, so every web process sharing it
shares one budget (the manage page's rate limits; ``web/manage/rate_limit.py``).

One row per counted request and key, kept for the window. A check and its count are one
transaction that first serializes on the keys (PostgreSQL: transaction-scoped advisory locks;
SQLite: the write lock its IMMEDIATE transaction already holds), so two processes cannot both
take the last request of a budget. With ``redis_url`` set, ``RedisCounter`` keeps the same
counts in Redis instead (one atomic script a check).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select

from calsync.store.db import Database
from calsync.store.models import RateLimitHit

SWEEP_CHANCE = 0.01  # share of checks that also delete every key's expired rows


def count_request(
    db: Database, keys: Sequence[str], allowed: int, window: float, now: float
) -> int | None:
    """Count one request under every key and return None; or, when any key already has
    ``allowed`` requests in the last ``window`` seconds, count nothing and return the seconds
    until one more is allowed."""
    since = now - window
    with db.writing() as session:
        if not db.is_sqlite:
            for key in sorted(set(keys)):  # one order everywhere: no deadlock between processes
                session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
        expired = RateLimitHit.at <= since
        if random.random() < SWEEP_CHANCE:
            session.execute(delete(RateLimitHit).where(expired))
        else:
            session.execute(delete(RateLimitHit).where(RateLimitHit.key.in_(keys), expired))
        full = session.execute(
            select(func.min(RateLimitHit.at))
            .where(RateLimitHit.key.in_(keys), RateLimitHit.at > since)
            .group_by(RateLimitHit.key)
            .having(func.count() >= allowed)
        ).scalars()
        oldest = min(full, default=None)
        if oldest is not None:
            return max(1, math.ceil(oldest + window - now))
        session.execute(insert(RateLimitHit), [{"key": key, "at": now} for key in keys])
    return None


# The same count in Redis, one sorted set per key (members: requests, scores: their times),
# checked and counted in one script, which Redis runs atomically.
_REDIS_COUNT = """
local now, window, allowed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local oldest = nil
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= allowed then
    local at = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    if oldest == nil or at < oldest then oldest = at end
  end
end
if oldest then return tostring(oldest) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, math.ceil(window) + 1)
end
return false
"""


class RedisCounter:
    """``count_request`` in Redis (with ``redis_url`` set) instead of the database."""

    def __init__(self, url: str, *, prefix: str = "calsync:rate:") -> None:
        import redis  # only installations that configure Redis load it

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_REDIS_COUNT)
        self._prefix = prefix

    def count_request(
        self, keys: Sequence[str], allowed: int, window: float, now: float
    ) -> int | None:
        oldest = self._script(
            keys=[self._prefix + key for key in keys],
            args=[repr(now), repr(window), allowed, uuid.uuid4().hex],
        )
        if oldest is None:
            return None
        return max(1, math.ceil(float(oldest) + window - now))

    def close(self) -> None:
        self._client.close()
