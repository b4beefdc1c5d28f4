"""``calsync book``, ``booking …``, ``adopt`` and ``calendar adoption``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from calsync.bookings import adoption, changes, event_types, links
from calsync.bookings import packages as bookings
from calsync.cli.common import (
    JsonOption,
    app,
    calendar_app,
    iso,
    out,
    parse_instant,
    print_json,
    state,
)
from calsync.input_rules import MAX_INT32
from calsync.store.models import Actor, AdoptionRule, Booking, Change
from calsync.sync import connections as services

booking_app = typer.Typer(no_args_is_help=True, help="Bookings and their manage links.")
app.add_typer(booking_app, name="booking")


@app.command()
def book(
    event_type: Annotated[str, typer.Option("--event-type", help="Id or slug.")],
    customer_email: Annotated[str, typer.Option(help="The customer's email address.")],
    customer_name: Annotated[str, typer.Option(help="The customer's name.")],
    start: Annotated[list[str], typer.Option(help="Start of a session; repeat for a package.")],
    customer_timezone: Annotated[str | None, typer.Option(help="The customer's zone.")] = None,
    stakeholder: Annotated[
        list[str] | None, typer.Option(help="Email of someone who hears of every change.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Book a package of sessions into the owner's calendar."""
    db = state.db()
    key: int | str = int(event_type) if event_type.isdigit() else event_type
    chosen = event_types.get_event_type(db, key)
    zone = ZoneInfo(chosen.timezone)
    request = bookings.BookingRequest(
        event_type=chosen.id,
        customer_name=customer_name,
        customer_email=customer_email,
        starts=tuple(parse_instant(text, zone) for text in start),
        customer_timezone=customer_timezone,
        stakeholders=tuple(stakeholder or ()),
    )
    result = bookings.book(db, state.settings, request)
    if as_json:
        print_json(describe(result.booking, result.manage_url))
        return
    out.print(f"Booked {len(result.sessions)} session(s): booking {result.booking.id}")
    out.print(f"Manage link: {result.manage_url}", soft_wrap=True, highlight=False)


def describe(booking: Booking, link: str | None, recorded: Sequence[Change] = ()) -> dict[str, Any]:
    """The booking as the API's ``GET /api/bookings/{id}`` answers it (one schema for both)."""
    # Imported here: the web schemas bring FastAPI, which light commands do not need.
    from calsync.web.api.booking_schemas import BookingOut

    shape = BookingOut.from_row(booking, link, recorded)
    data: dict[str, Any] = shape.model_dump(mode="json", by_alias=True)
    return data


@booking_app.command("show")
def booking_show(booking_id: str, as_json: JsonOption = False) -> None:
    """A booking with its sessions (in the customer's zone), its link and its history."""
    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    data = describe(
        booking, links.current_link(state.settings, booking), changes.changes_of(db, booking_id)
    )
    if as_json:
        print_json(data)
        return
    out.print(
        f"[bold]{data['title']}[/bold] for {booking.customer_name} <{booking.customer_email}>"
    )
    out.print(f"status {data['status']}, link: {data['manage_url'] or 'revoked'}", soft_wrap=True)
    table = Table("#", "start", "end", "status", title=f"Sessions ({booking.customer_timezone})")
    for s in data["sessions"]:
        table.add_row(str(s["position"]), s["start"], s["end"], s["status"])
    out.print(table)
    for c in data["changes"]:
        moved = ", ".join(
            f"#{i['position']} {i['from']['start'][:16]} → "
            + (i["to"]["start"][:16] if i["to"] else "cancelled")
            for i in c["items"]
        )
        out.print(f"change {c['id']} ({c['kind']} by {c['actor']}, {c['status']}): {moved}")
    for h in data["history"]:
        out.print(
            f"{h['at'][:19]}  {h['actor']}: {h['action']}"
            + (f" ({h['reason']})" if h["reason"] else "")
        )


def _session_ids(booking: Booking, positions: list[int]) -> list[int]:
    by_position = {s.position: s.id for s in booking.sessions}
    missing = [p for p in positions if p not in by_position]
    if missing:
        raise services.ServiceError(
            f"the booking has no session {missing[0]} (it has 1 to {len(by_position)})"
        )
    return [by_position[p] for p in positions]


@booking_app.command("reschedule")
def booking_reschedule(
    booking_id: str,
    session: Annotated[
        list[int],
        typer.Option(min=1, max=MAX_INT32, help="Session number (1 = first); repeatable."),
    ],
    to: Annotated[list[str], typer.Option(help="New start, one per --session, in order.")],
    reason: Annotated[str | None, typer.Option(help="Why (shown to the customer).")] = None,
) -> None:
    """Move sessions as the owner (not bound by the cancel/reschedule policy)."""
    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    if len(session) != len(to):
        raise services.ServiceError("give one --to for every --session")
    zone = ZoneInfo(booking.customer_timezone)
    moves = dict(
        zip(_session_ids(booking, session), (parse_instant(t, zone) for t in to), strict=True)
    )
    outcome = changes.reschedule(
        db, state.settings, booking_id, moves, actor=Actor.OWNER, reason=reason
    )
    out.print(
        f"Change {outcome.change.id}: {outcome.change.status.value}. "
        + (outcome.change.message or "")
    )


@booking_app.command("cancel")
def booking_cancel(
    booking_id: str,
    session: Annotated[
        list[int],
        typer.Option(min=1, max=MAX_INT32, help="Session number (1 = first); repeatable."),
    ],
    reason: Annotated[str | None, typer.Option(help="Why (shown to the customer).")] = None,
) -> None:
    """Cancel sessions as the owner (not bound by the cancel/reschedule policy)."""
    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    outcome = changes.cancel(
        db,
        state.settings,
        booking_id,
        _session_ids(booking, session),
        actor=Actor.OWNER,
        reason=reason,
    )
    out.print(
        f"Change {outcome.change.id}: {outcome.change.status.value}. "
        + (outcome.change.message or "")
    )


@booking_app.command("relink")
def booking_relink(booking_id: str) -> None:
    """Issue a new manage link (the old one stops working) and write it into the events."""
    url = bookings.relink(state.db(), state.settings, booking_id)
    out.print(f"New manage link: {url}", soft_wrap=True, highlight=False)


@booking_app.command("revoke")
def booking_revoke(booking_id: str) -> None:
    """Make the booking's manage link stop working now."""
    bookings.revoke_link(state.db(), booking_id)
    out.print("The link no longer works. `calsync booking relink` issues a new one.")


@calendar_app.command("adoption")
def calendar_adoption(
    calendar_id: int,
    rule: Annotated[AdoptionRule, typer.Option(help="Which existing events become bookings.")],
    event_type: Annotated[
        str | None, typer.Option("--event-type", help="Event type of adopted bookings.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="With --rule category: its name.")] = None,
) -> None:
    """Set the adoption rule of a calendar (off by default)."""
    chosen = None
    db = state.db()
    if event_type is not None:
        key: int | str = int(event_type) if event_type.isdigit() else event_type
        chosen = event_types.get_event_type(db, key)
    services.set_adoption(db, calendar_id, rule, chosen.id if chosen else None, category)
    out.print(f"Calendar {calendar_id}: adoption rule {rule.value}.")
    if rule is not AdoptionRule.OFF:
        out.print(
            "The poller adopts events as they are added or changed. For the ones already "
            f"there: `calsync adopt --calendar {calendar_id} --dry-run`, then without --dry-run."
        )


@app.command()
def adopt(
    calendar: Annotated[int, typer.Option(min=1, max=MAX_INT32, help="Calendar id.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be adopted.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Turn the calendar's matching events into bookings now (the poller also does this)."""
    db = state.db()
    if dry_run:
        found = adoption.find_candidates(db, calendar)
        rows = [
            {
                "uid": c.uid,
                "summary": c.summary,
                "start": iso(c.start),
                "customer": c.customer_email,
            }
            for c in found
        ]
        if as_json:
            print_json(rows)
            return
        table = Table("start", "summary", "customer", title="Would be adopted")
        for row in rows:
            table.add_row(row["start"], row["summary"], row["customer"])
        out.print(table if rows else "Nothing would be adopted.")
        return
    adopted = adoption.adopt(db, state.settings, calendar)
    if as_json:
        print_json([{"id": b.id, "uid": b.sessions[0].uid} for b in adopted])
        return
    out.print(f"Adopted {len(adopted)} event(s).")
