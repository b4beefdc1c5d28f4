"""``calsync outbox …``: the emails calsync has sent or will send."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from calsync.cli.common import JsonOption, app, iso, out, print_json, state
from calsync.limits import MAX_INT32
from calsync.states import OutboxStatus

outbox_app = typer.Typer(
    no_args_is_help=True, help="Emails: what was sent, what waits, what failed."
)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        OutboxStatus | None, typer.Option(help="Only messages in this state.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List outbox messages with their state and last error."""
    from calsync.notify import outbox

    rows: list[dict[str, Any]] = [
        {
            "id": m.id,
            "booking_id": m.booking_id,
            "recipient": m.recipient,
            "role": m.role,
            "subject": m.subject,
            "status": m.status.value,
            "attempts": m.attempts,
            "next_attempt_at": iso(m.next_attempt_at),
            "sent_at": iso(m.sent_at),
            "error": m.last_error,
        }
        for m in outbox.list_messages(state.db(), status)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "to", "subject", "status", "when (UTC)", "error")
    for row in rows:
        style = "red" if row["status"] == "failed" else None
        table.add_row(
            str(row["id"]),
            row["recipient"],
            row["subject"],
            row["status"],
            _when(row),
            row["error"] or "",
            style=style,
        )
    out.print(table)


def _when(row: dict[str, Any]) -> str:
    """What happened to a message and when, instead of a bare count of failed tries (which
    showed "0" for a message sent at the first try)."""
    tries = f"{row['attempts']} {'try' if row['attempts'] == 1 else 'tries'}"
    failed = f"{tries} failed; " if row["attempts"] else ""
    if row["status"] == "sent":
        return f"sent {_minute(row['sent_at'])}"
    if row["status"] == "ready":
        return f"{failed}next try {_minute(row['next_attempt_at'])}"
    if row["status"] == "failed":
        return f"gave up after {tries}"
    if row["status"] == "held":
        return "waits for its change"
    return "not sent"


def _minute(text: str | None) -> str:
    return (text or "")[:16].replace("T", " ")


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[
        list[int] | None,
        typer.Argument(min=1, max=MAX_INT32, help="Ids; default: every failed one."),
    ] = None,
) -> None:
    """Queue failed messages again (after fixing an address or the mail server)."""
    from calsync.notify import outbox

    count = outbox.retry(state.db(), message_id or None)
    out.print(f"{count} message(s) queued again; the worker sends them within seconds.")
