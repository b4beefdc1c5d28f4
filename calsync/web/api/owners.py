"""``/api/owners``: the people whose calendars calsync keeps."""

from __future__ import annotations

from fastapi import APIRouter

from calsync.sync import connections as services
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.schemas import NOT_FOUND, DbId, OwnerCreate, OwnerOut, failure

router = APIRouter(prefix="/owners", tags=["owners"])


@router.post("", status_code=201, responses={400: failure("The email is taken.")})
def create_owner(body: OwnerCreate, db: DbDep, settings: SettingsDep) -> OwnerOut:
    """Add an owner. 400 when the email is taken."""
    owner = services.add_owner(db, name=body.name, email=body.email, timezone=body.timezone)
    return OwnerOut.from_row(owner, settings.base_url)


@router.get("")
def list_owners(db: DbDep, settings: SettingsDep) -> list[OwnerOut]:
    return [OwnerOut.from_row(owner, settings.base_url) for owner in services.list_owners(db)]


@router.get("/{owner_id}", responses=NOT_FOUND)
def get_owner(owner_id: DbId, db: DbDep, settings: SettingsDep) -> OwnerOut:
    return OwnerOut.from_row(services.get_owner(db, owner_id), settings.base_url)
