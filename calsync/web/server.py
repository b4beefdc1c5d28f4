"""Running the web app under uvicorn, for ``calsync serve`` and ``calsync web``."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from calsync.config import LogFormat, Settings
from calsync.web.app import create_app, open_database


def run_server(settings: Settings, *, host: str, port: int, run_poller: bool) -> None:
    """Serve until SIGINT/SIGTERM, in this one process.

    ``run_poller``: also poll calendars in the background (``calsync serve``); ``calsync web``
    leaves that to ``calsync worker`` processes. Raises DatabaseUnavailable before serving
    anything when the database has not been set up (or cannot be reached).
    """
    db = open_database(settings)
    try:
        _serve(create_app(settings, db=db, run_poller=run_poller), settings, host, port)
    finally:
        db.dispose()


def _serve(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        # "on", not "auto": uvicorn would otherwise treat a failed startup as "no lifespan
        # support" and serve without a database.
        lifespan="on",
        log_level=settings.log_level.value.lower(),
        # JSON logs: uvicorn's records go to the handler calsync configured (one format for
        # every line) instead of uvicorn's own text handlers.
        log_config=None
        if settings.logging.format is LogFormat.JSON
        else uvicorn.config.LOGGING_CONFIG,
        server_header=False,
    )
