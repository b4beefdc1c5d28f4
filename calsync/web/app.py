"""The app factory: ``create_app(settings)`` builds the FastAPI app; nothing starts at import.

The lifespan opens the database (unless one is given, as tests do), makes the poller that
``POST /api/calendars/{id}/sync`` uses, and with ``run_poller`` starts it polling in the
background (``calsync serve``); shutdown stops it and closes the database. The web tier keeps
no other state, so any number of ``calsync web`` processes can share one PostgreSQL database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from calsync import __version__
from calsync.bookings.polling import booking_poller
from calsync.config import Settings, load_settings
from calsync.observe.metrics import scrape_registry
from calsync.store.db import Database, DatabaseUnavailable, missing_sqlite_file
from calsync.store.rate_limits import RedisCounter
from calsync.web import errors, telemetry, webhooks
from calsync.web.api import bookings, calendars, event_types, health, owners, payments
from calsync.web.book import payment as book_payment
from calsync.web.book import routes as book_page
from calsync.web.console import routes as console
from calsync.web.deps import bearer_scheme, check_admin_key
from calsync.web.manage import routes as manage
from calsync.web.manage.rate_limit import RateLimits, SharedLimiter
from calsync.web.manage.render import StaticAssets
from calsync.web.schemas import Failed, ValidationFailed
from calsync.web.signin import routes as google_signin
from calsync.worker import start_background

API_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": Failed, "description": "Missing or wrong API key."},
    422: {"model": ValidationFailed, "description": "The request has problems, field by field."},
    503: {"model": Failed, "description": "No admin_api_key configured, or no database."},
}


DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
# Swagger UI's files come with the swagger-ui-bundle package, so the docs work offline.
DOCS_ASSETS_URL = "/static/swagger-ui"
# The API's description is no secret, and a browser cannot send the key to open the docs.
PUBLIC_API_PATHS = frozenset({DOCS_URL, OPENAPI_URL, f"{DOCS_URL}/oauth2-redirect"})


class AdminKeyMiddleware:
    """Refuses every ``/api`` request without the admin key before anything else reads it
    (unknown paths and malformed bodies included), so callers without the key learn nothing."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        protected = path == "/api" or path.startswith("/api/")
        if scope["type"] == "http" and protected and path not in PUBLIC_API_PATHS:
            try:
                check_admin_key(self.settings, Headers(scope=scope).get("authorization"))
            except (errors.Unauthorized, errors.ApiSwitchedOff) as exc:
                await errors.refusal(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def open_database(settings: Settings) -> Database:
    """The configured database; DatabaseUnavailable when it cannot be reached or has not been
    set up yet."""
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        # Connecting would leave an empty file behind that looks like a database.
        raise DatabaseUnavailable(
            f"there is no database at {missing} yet: run `calsync init` to create it"
        )
    db = Database(settings.database_url)
    try:
        current = db.is_current()
    except OperationalError as exc:
        db.dispose()
        raise DatabaseUnavailable(f"cannot open the database {db.safe_url}: {exc.orig}") from exc
    if not current:
        db.dispose()
        raise DatabaseUnavailable(
            f"the database {db.safe_url} is not set up yet: run `calsync init` first"
        )
    return db


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    run_poller: bool = False,
    manage_limits: RateLimits | None = None,
) -> FastAPI:
    """The web app; with ``db`` it uses (and leaves open) that database instead of its own.

    ``manage_limits``: the manage page's rate limits (default: from ``settings.web``, 120 reads
    and 20 changes a minute per token and per client address, counted in the database, or in
    Redis with ``settings.redis_url``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if db is None:
            database = await to_thread.run_sync(open_database, settings)
        else:
            database = db
        # One poller for polls asked for through the API, and with run_poller the background
        # work (polling and pending changes) on its own scheduler.
        poller = booking_poller(database, settings)
        background = start_background(database, settings) if run_poller else None
        app.state.db = database
        app.state.availability_limiter = CapacityLimiter(settings.web.availability_threads)
        app.state.poller = poller
        app.state.metrics_registry = scrape_registry(database)
        # uvicorn's access log writes every path: manage tokens are replaced by a short hash.
        redaction = manage.RedactManageTokens()
        logging.getLogger("uvicorn.access").addFilter(redaction)
        try:
            yield
        finally:
            logging.getLogger("uvicorn.access").removeFilter(redaction)
            # Waits for a poll in progress to finish, so off the event loop.
            await to_thread.run_sync(poller.stop)
            if background is not None:
                await to_thread.run_sync(background.stop)
            if db is None:
                database.dispose()

    app = FastAPI(
        title="calsync admin API",
        version=__version__,
        description="Owners, calendars, event types, availability and bookings. Every /api route "
        "needs `Authorization: Bearer <admin_api_key>`.",
        lifespan=lifespan,
        docs_url=None,  # served by _add_docs from local files, not from a CDN
        openapi_url=OPENAPI_URL,
        redoc_url=None,
    )
    app.state.settings = settings
    configured = RateLimits(
        settings.web.manage_reads_per_minute or None,
        settings.web.manage_changes_per_minute or None,
    )
    redis = RedisCounter(settings.redis_url) if settings.redis_url else None
    app.state.manage_limiter = SharedLimiter(manage_limits or configured, redis=redis)
    app.add_middleware(AdminKeyMiddleware, settings=settings)
    # Added last, so outermost: the id and the timing cover the key check and every error.
    app.add_middleware(telemetry.RequestTelemetry)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(telemetry.router)
    app.include_router(manage.router)
    app.include_router(book_page.router)
    app.include_router(book_payment.router)
    app.include_router(webhooks.router)
    app.include_router(google_signin.pages)
    console.install(app)
    _add_docs(app)
    app.mount("/static", StaticAssets(), name="static")
    api = APIRouter(prefix="/api", dependencies=[bearer_scheme], responses=API_RESPONSES)
    for module in (owners, calendars, event_types, bookings, payments):
        api.include_router(module.router)
    api.include_router(google_signin.api_router)
    app.include_router(api)
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at DOCS_URL, its scripts and styles from this machine (FastAPI's pattern for
    self-hosted docs assets)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - docs",
            oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon-32x32.png",
        )

    @app.get(f"{DOCS_URL}/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory calsync.web.app:app_from_environment`` (reads calsync.toml)."""
    return create_app(load_settings())
