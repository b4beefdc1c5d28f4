"""``/api/owners``: the people whose calendars calsync keeps."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from calsync.access import sign_in as console_links
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


class ConsoleInviteOut(BaseModel):
    owner_id: int
    email: str
    expires_at: datetime


@router.post("/{owner_id}/console-invite", responses=NOT_FOUND)
def invite_to_console(owner_id: DbId, db: DbDep, settings: SettingsDep) -> ConsoleInviteOut:
    """Email the owner a one-time link to their web console (``/console``), through the outbox.

    The link works once, for 15 minutes; it is not in this answer (only the owner's mailbox
    gets it). Later the owner asks for a new one on ``/console/sign-in``."""
    sent = console_links.invite_by_id(db, settings, owner_id)
    return ConsoleInviteOut(owner_id=sent.owner_id, email=sent.email, expires_at=sent.expires_at)
