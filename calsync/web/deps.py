"""What routes get from the app: the database, the poller, and the API key check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from calsync.config import Settings
from calsync.store.db import Database
from calsync.sync.poller import Poller
from calsync.web.errors import ApiSwitchedOff, Unauthorized

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="admin_api_key",
    description="The admin_api_key from calsync.toml (or CALSYNC_ADMIN_API_KEY).",
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_poller(request: Request) -> Poller:
    poller: Poller = request.app.state.poller
    return poller


def check_admin_key(settings: Settings, authorization: str | None) -> None:
    """Pass if ``authorization`` is ``Bearer <admin_api_key>``; else raise ApiSwitchedOff (no
    key configured) or Unauthorized."""
    key = settings.admin_api_key
    if not key:
        raise ApiSwitchedOff(
            "the admin API is switched off because no key is configured: set admin_api_key "
            "in calsync.toml (or the environment variable CALSYNC_ADMIN_API_KEY) and restart"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    # Compared as bytes in constant time: how long a wrong key took says nothing about the key.
    if not secrets.compare_digest(given.strip().encode(), key.encode()):
        raise Unauthorized(
            "a valid API key is required: send the header 'Authorization: Bearer <admin_api_key>'"
        )


# Only describes the scheme in the OpenAPI document; AdminKeyMiddleware enforces it, before
# anything reads the request (a dependency would run after the body is parsed).
bearer_scheme = Security(_bearer)

DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PollerDep = Annotated[Poller, Depends(get_poller)]
