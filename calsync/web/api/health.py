"""``GET /healthz``: is this process up, can it reach its database, and is the database's
schema the one this version needs (no key needed)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from calsync.web.deps import DbDep
from calsync.web.schemas import Health

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "The database cannot be reached, or its schema is not this version's.",
        }
    },
)
def healthz(db: DbDep) -> Health | JSONResponse:
    """200 when a ``SELECT 1`` on the database works and its migrations are the ones this
    version of calsync needs, else 503. Says nothing else (no key)."""
    try:
        with db.reading() as session:
            session.execute(text("SELECT 1"))
        current = db.is_current()
    except SQLAlchemyError as exc:
        log.warning("health check: database %s unavailable: %s", db.safe_url, exc)
        down = Health(status="unavailable", database="unavailable", migrations="unknown")
        return JSONResponse(status_code=503, content=down.model_dump())
    if not current:
        log.warning(
            "health check: the database %s is not migrated for this version: run `calsync init`",
            db.safe_url,
        )
        behind = Health(status="unavailable", database="ok", migrations="not_current")
        return JSONResponse(status_code=503, content=behind.model_dump())
    return Health(status="ok", database="ok", migrations="current")
