"""What routes get from the app: the database, the poller, and the API key check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from calsync.config import Settings
from calsync.sync.db import Database
from calsync.sync.poller import Poller
from calsync.web.errors import ApiSwitchedOff, Unauthorized

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="admin_api_key",
    description="The admin_api_key from calsync.toml (or CALSYNC_ADMIN_API_KEY).",
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_poller(request: Request) -> Poller:
    poller: Poller = request.app.state.poller
    return poller


def require_admin_key(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries ``Authorization: Bearer <admin_api_key>``."""
    key = settings.admin_api_key
    if not key:
        raise ApiSwitchedOff(
            "the admin API is switched off because no key is configured: set admin_api_key "
            "in calsync.toml (or the environment variable CALSYNC_ADMIN_API_KEY) and restart"
        )
    given = credentials.credentials if credentials is not None else ""
    # Compared as bytes in constant time: how long a wrong key took says nothing about the key.
    if not secrets.compare_digest(given.encode(), key.encode()):
        raise Unauthorized(
            "a valid API key is required: send the header 'Authorization: Bearer <admin_api_key>'"
        )


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PollerDep = Annotated[Poller, Depends(get_poller)]
