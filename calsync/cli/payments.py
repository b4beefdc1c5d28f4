"""``calsync payments …``: the charges and refunds made through Stripe."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from calsync.cli.common import JsonOption, app, iso, out, print_json, state

payments_app = typer.Typer(
    no_args_is_help=True, help="Stripe payments: reschedule fees charged, refunds paid or failed."
)
app.add_typer(payments_app, name="payments")


@payments_app.command("list")
def payments_list(
    booking: Annotated[str | None, typer.Option("--booking", help="Only this booking.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List charges and refunds with their state, booking and change; a refund Stripe refused
    is shown as failed (pay it back by hand)."""
    from calsync.payments import service
    from calsync.policy.money import minor_text

    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "kind": p.kind.value,
            "state": p.state.value,
            "amount": minor_text(p.amount, p.currency),
            "amount_minor": p.amount,
            "currency": p.currency,
            "booking_id": p.booking_id,
            "change_id": p.change_id,
            "stripe_id": p.stripe_id,
            "payment_intent": p.payment_intent,
            "message": p.message,
            "created_at": iso(p.created_at),
        }
        for p in service.payments_of(state.db(), booking)
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No payments yet.")
        return
    table = Table("id", "kind", "state", "amount", "booking", "change", "stripe id", "note")
    for row in rows:
        style = "red" if row["state"] == "failed" else None
        table.add_row(
            str(row["id"]),
            row["kind"],
            row["state"],
            row["amount"],
            row["booking_id"],
            str(row["change_id"] or ""),
            row["stripe_id"] or "",
            row["message"] or "",
            style=style,
        )
    out.print(table)
