"""Sliding-window rate limits for the manage page, per token and per client address.

The counts are kept **in the database** (``store/rate_limits.py``), or in Redis when
``redis_url`` is set, so every ``calsync web`` process shares one budget, and a restart forgets
nothing. The limits are there to
slow down a script that guesses tokens or hammers one link, and to keep a link from being used
to flood the owner's calendar.

Reads (GET and HEAD) get a generous budget and changes (POST) a tight one. Each request is
counted under its token's hash (valid or not) and under the client's address, and refused when
either key is over its budget. The client address is what the ASGI server reports: behind a
reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips`` so that it is the
customer's address and not the proxy's (otherwise every customer shares one budget).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request
from redis.exceptions import RedisError

from calsync.store import rate_limits
from calsync.store.db import Database
from calsync.token_hash import hash_token

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0


class Budget(StrEnum):
    READ = "read"  # GET and HEAD
    CHANGE = "change"  # POST


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per key (token, client address) in a sliding minute; None: no limit."""

    reads_per_minute: int | None = 120
    changes_per_minute: int | None = 20

    @classmethod
    def off(cls) -> RateLimits:
        """No limits at all (for tests that send many requests on purpose)."""
        return cls(None, None)

    def allowed(self, budget: Budget) -> int | None:
        return self.reads_per_minute if budget is Budget.READ else self.changes_per_minute


class RateLimited(Exception):
    """Too many requests; ``retry_after`` is how many seconds until one is allowed again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; try again in {retry_after} seconds")
        self.retry_after = retry_after


class SharedLimiter:
    """Counts requests per key over the last ``WINDOW_SECONDS`` in the database, or in Redis
    when given a ``RedisCounter``."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        redis: rate_limits.RedisCounter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.redis = redis
        self._clock = clock  # wall time: the processes sharing a database share no other clock

    def scaled(self, factor: int) -> SharedLimiter:
        """The same counter with ``factor`` times the budgets (for keys many people share)."""
        reads, changes = self.limits.reads_per_minute, self.limits.changes_per_minute
        limits = RateLimits(
            None if reads is None else reads * factor,
            None if changes is None else changes * factor,
        )
        return SharedLimiter(limits, redis=self.redis, clock=self._clock)

    def check(self, db: Database, budget: Budget, *keys: str) -> None:
        """Count one request under every key, or raise RateLimited (counting nothing) when
        any key has used up its budget."""
        allowed = self.limits.allowed(budget)
        if allowed is None:
            return
        scoped = [f"{budget.value}:{key}" for key in keys]
        now = self._clock()
        if self.redis is None:
            retry_after = rate_limits.count_request(db, scoped, allowed, WINDOW_SECONDS, now)
        else:
            try:
                retry_after = self.redis.count_request(scoped, allowed, WINDOW_SECONDS, now)
            except RedisError as exc:
                # The limits slow down abuse; a Redis outage must not take the page down too.
                log.warning("rate limits not counted: Redis cannot be used: %s", type(exc).__name__)
                return
        if retry_after is not None:
            raise RateLimited(retry_after)


def limit_manage_requests(request: Request) -> None:
    """Dependency of every manage page route: count the request under its token and the
    client's address; RateLimited (answered 429 by errors.py) when either is over budget.
    Not async: it waits for the database, so FastAPI runs it on a worker thread."""
    limiter: SharedLimiter = request.app.state.manage_limiter
    budget = Budget.READ if request.method in ("GET", "HEAD") else Budget.CHANGE
    token = str(request.path_params.get("token", "")).split("/", 1)[0]
    client = request.client.host if request.client else "unknown"
    limiter.check(request.app.state.db, budget, f"token:{hash_token(token)}", f"address:{client}")
