"""``/console/email-problems``: the owner's emails that could not be delivered, with retry.

The owner's messages are those about their bookings and those sent to them about no booking
(``isolation.messages_of``). A failed message was refused for good by the mail server (an
address that does not exist, say); "Try again" queues it like ``calsync outbox retry``, for
after the address or the mail settings were fixed.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.notify import outbox
from calsync.store.models import OutboxMessage, OutboxStatus
from calsync.web.console.auth import ConsoleFormDep, CurrentOwner
from calsync.web.console.calendars import when
from calsync.web.console.isolation import messages_of, owned_message
from calsync.web.console.rate_limit import limit_console_requests
from calsync.web.console.render import Section, console_page, go
from calsync.web.deps import DbDep, SettingsDep

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]
DONE = {
    "one": "The email is queued again; it goes out within a minute.",
    "all": "The emails are queued again; they go out within a minute.",
    "none": "There was nothing left to send again.",
}


@router.api_route("/console/email-problems", methods=READ)
def problems_page(
    request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep
) -> Response:
    with db.reading() as session:
        failed = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.FAILED, messages_of(owner))
                .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
                .limit(200)
            )
        )
    rows = [{"message": row, "created": when(owner, row.created_at)} for row in failed]
    return console_page(
        request,
        settings,
        owner,
        "email_problems.html",
        current=Section.EMAIL_PROBLEMS,
        rows=rows,
        done=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/console/email-problems/{message_id}/retry")
def retry_one(message_id: str, form: ConsoleFormDep, db: DbDep, settings: SettingsDep) -> Response:
    row = owned_message(db, form.owner, message_id)
    queued = outbox.retry(db, [row.id])
    return go(settings, f"/email-problems?done={'one' if queued else 'none'}")


@router.post("/console/email-problems/retry-all")
def retry_all(form: ConsoleFormDep, db: DbDep, settings: SettingsDep) -> Response:
    with db.reading() as session:
        ids = list(
            session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.status == OutboxStatus.FAILED, messages_of(form.owner)
                )
            )
        )
    queued = outbox.retry(db, ids) if ids else 0
    return go(settings, f"/email-problems?done={'all' if queued else 'none'}")
