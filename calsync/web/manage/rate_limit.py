"""Sliding-window rate limits for the manage page, per token and per client address.

The limits live **in this process's memory**: each ``calsync web`` process counts on its own,
so N processes behind a load balancer allow up to N times the limit, and a restart forgets
every count. That is enough for what the limits are for (slowing down a script that guesses
tokens or hammers one link, keeping a link from being used to flood the owner's calendar); a
limit shared between processes would need the database or a cache server.

Reads (GET and HEAD) get a generous budget and changes (POST) a tight one. Each request is
counted under its token's hash (valid or not) and under the client's address, and refused when
either key is over its budget. The client address is what the ASGI server reports: behind a
reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips`` so that it is the
customer's address and not the proxy's (otherwise every customer shares one budget).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request

from calsync.bookings.links import hash_token

WINDOW_SECONDS = 60.0
SWEEP_EVERY = 1000  # requests between sweeps of keys that have gone quiet


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


class SlidingWindowLimiter:
    """Counts requests per key over the last ``WINDOW_SECONDS``; thread-safe, per process."""

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._seen: dict[tuple[str, ...], deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def check(self, budget: Budget, *keys: str) -> None:
        """Count one request under every key, or raise RateLimited (counting nothing) when
        any key has used up its budget."""
        allowed = self.limits.allowed(budget)
        if allowed is None:
            return
        now = self._clock()
        with self._lock:
            self._maybe_sweep(now)
            windows = [self._window((budget.value, key), now) for key in keys]
            full = [w for w in windows if len(w) >= allowed]
            if full:
                oldest = min(w[0] for w in full)
                raise RateLimited(max(1, math.ceil(oldest + WINDOW_SECONDS - now)))
            for window in windows:
                window.append(now)

    def _window(self, key: tuple[str, ...], now: float) -> deque[float]:
        window = self._seen.setdefault(key, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        return window

    def _maybe_sweep(self, now: float) -> None:
        self._since_sweep += 1
        if self._since_sweep < SWEEP_EVERY:
            return
        self._since_sweep = 0
        quiet = [k for k, w in self._seen.items() if not w or w[-1] <= now - WINDOW_SECONDS]
        for key in quiet:
            del self._seen[key]


async def limit_manage_requests(request: Request) -> None:
    """Dependency of every manage page route: count the request under its token and the
    client's address; RateLimited (answered 429 by errors.py) when either is over budget."""
    limiter: SlidingWindowLimiter = request.app.state.manage_limiter
    budget = Budget.READ if request.method in ("GET", "HEAD") else Budget.CHANGE
    token = str(request.path_params.get("token", "")).split("/", 1)[0]
    client = request.client.host if request.client else "unknown"
    limiter.check(budget, f"token:{hash_token(token)}", f"address:{client}")
