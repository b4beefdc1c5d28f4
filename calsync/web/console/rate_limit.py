"""The console's share of the shared rate limits (``web/manage/rate_limit.py``, counted in the
database or Redis so every web process shares them).

Every console request counts per client address, with the manage page's budgets (reads and
changes a minute). Asking for a sign-in link also counts under the address asked for and the
client address on a budget of its own, ``LINK_REQUESTS_PER_MINUTE``: each request sends an
email, so the form must not become a way to flood someone's mailbox.
"""

from __future__ import annotations

import hashlib

from fastapi import FastAPI, Request

from calsync.store.db import Database
from calsync.web.manage.rate_limit import Budget, RateLimits, SharedLimiter

LINK_REQUESTS_PER_MINUTE = 3


def install_limits(app: FastAPI) -> None:
    """The console's limiters, next to the manage page's (whose limits and Redis they share;
    limits switched off for the manage page are off here too)."""
    shared: SharedLimiter = app.state.manage_limiter
    app.state.console_limiter = shared
    off = shared.limits == RateLimits.off()
    mail = RateLimits(None, None if off else LINK_REQUESTS_PER_MINUTE)
    app.state.console_mail_limiter = SharedLimiter(mail, redis=shared.redis)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_console_requests(request: Request) -> None:
    """Dependency of every console route: RateLimited (429) when the client address is over
    its budget. Not async: it waits for the database."""
    limiter: SharedLimiter = request.app.state.console_limiter
    budget = Budget.READ if request.method in ("GET", "HEAD") else Budget.CHANGE
    limiter.check(request.app.state.db, budget, f"console-address:{_client(request)}")


def limit_link_requests(request: Request, db: Database, email: str) -> None:
    """Count one sign-in link asked for ``email``; RateLimited when over the budget."""
    limiter: SharedLimiter = request.app.state.console_mail_limiter
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    limiter.check(
        db, Budget.CHANGE, f"console-link:{address}", f"console-link-from:{_client(request)}"
    )
