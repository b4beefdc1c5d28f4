"""``calsync book``, ``booking …``, ``adopt`` and ``calendar adoption``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

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
from calsync.limits import MAX_INT32
from calsync.states import AdoptionRule

if TYPE_CHECKING:
    from calsync.store.db import Database
    from calsync.store.models import Booking, Change

booking_app = typer.Typer(no_args_is_help=True, help="Bookings and their manage links.")
app.add_typer(booking_app, name="booking")


@app.command()
def book(
    event_type: Annotated[str, typer.Option("--event-type", help="Id or slug.")],
    customer_email: Annotated[str, typer.Option(help="The customer's email address.")],
    customer_name: Annotated[str, typer.Option(help="The customer's name.")],
    start: Annotated[
        list[str],
        typer.Option(
            help="Start of a session; repeat for a package. A time without an offset "
            "(2026-12-07T14:30) is in the event type's zone."
        ),
    ],
    customer_timezone: Annotated[str | None, typer.Option(help="The customer's zone.")] = None,
    stakeholder: Annotated[
        list[str] | None, typer.Option(help="Email of someone who hears of every change.")
    ] = None,
    payment: Annotated[
        str | None,
        typer.Option(
            "--payment",
            help="The Stripe PaymentIntent (pi_…) that paid for it: cancellations are then "
            "refunded through Stripe per the policy.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Book a package of sessions into the owner's calendar."""
    from calsync.bookings import event_types
    from calsync.bookings import packages as bookings

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
        payment_intent=payment,
    )
    result = bookings.book(db, state.settings, request)
    if as_json:
        print_json(describe(result.booking, result.manage_url))
        return
    out.print(f"Booked {len(result.sessions)} session(s): booking {result.booking.id}")
    for booked in result.sessions:
        out.print(f"  session {booked.position}: {when_text(booked.start, zone)}", highlight=False)
    out.print(f"Manage link: {result.manage_url}", soft_wrap=True, highlight=False)


def when_text(instant: datetime, zone: ZoneInfo) -> str:
    """An instant as a person reads it, with its zone: ``Mon 2026-12-07 14:30 Europe/Berlin``."""
    return f"{instant.astimezone(zone):%a %Y-%m-%d %H:%M} {zone.key}"


def booking_zone(db: Database, booking: Booking) -> ZoneInfo:
    """The zone times without an offset are read in: the event type's (the customer's when
    the event type was deleted)."""
    from calsync.bookings import event_types
    from calsync.sync import connections as services

    if booking.event_type_id is not None:
        try:
            return ZoneInfo(event_types.get_event_type(db, booking.event_type_id).timezone)
        except services.NotFoundError:
            pass
    return ZoneInfo(booking.customer_timezone)


def describe(booking: Booking, link: str | None, recorded: Sequence[Change] = ()) -> dict[str, Any]:
    """The booking as the API's ``GET /api/bookings/{id}`` answers it (one schema for both)."""
    # Imported here: the web schemas bring FastAPI, which light commands do not need.
    from calsync.web.api.booking_schemas import BookingOut

    shape = BookingOut.from_row(booking, link, recorded)
    data: dict[str, Any] = shape.model_dump(mode="json", by_alias=True)
    return data


@booking_app.command("list")
def booking_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's (email).")] = None,
    event_type: Annotated[
        str | None, typer.Option("--event-type", help="Only this event type (id or slug).")
    ] = None,
    upcoming: Annotated[
        bool, typer.Option("--upcoming", help="Only bookings with a session still to come.")
    ] = False,
    past: Annotated[bool, typer.Option("--past", help="Only bookings that are over.")] = False,
    customer: Annotated[
        str | None, typer.Option(help="Only customers whose email or name contains this.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List bookings, soonest first, with their manage links."""
    from calsync.bookings import links
    from calsync.bookings import listing as booking_list_
    from calsync.sync import connections as services

    if upcoming and past:
        raise services.ServiceError("give --upcoming or --past, not both")
    db = state.db()
    key: int | str | None = event_type
    if event_type is not None and event_type.isdigit():
        key = int(event_type)
    when = booking_list_.When.UPCOMING if upcoming else booking_list_.When.PAST if past else None
    found = booking_list_.list_bookings(
        db,
        booking_list_.BookingFilter(
            owner_email=owner,
            event_type=key,
            when=when or booking_list_.When.ALL,
            customer=customer,
        ),
    )
    rows = [describe(b, links.current_link(state.settings, b)) for b in found]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No bookings match. `calsync book --help` makes one.")
        return
    table = Table("id", "title", "customer", "first session", "sessions", "status")
    for booking in found:
        first = min(booking.sessions, key=lambda s: s.start)
        table.add_row(
            booking.id,
            escape(booking.title),
            escape(f"{booking.customer_name} <{booking.customer_email}>"),
            when_text(first.start, booking_zone(db, booking)),
            str(len(booking.sessions)),
            booking.status.value,
        )
    out.print(table)


def change_data(change: Change) -> dict[str, Any]:
    return {
        "id": change.id,
        "kind": change.kind.value,
        "actor": change.actor.value,
        "status": change.status.value,
        "reason": change.reason,
        "fee": change.fee,
        "message": change.message,
        "sessions": [
            {
                "position": i.position,
                "from": i.before.to_data(),
                "to": i.after.to_data() if i.after else None,
            }
            for i in change.items
        ],
        "at": iso(change.created_at),
    }


@booking_app.command("show")
def booking_show(booking_id: str, as_json: JsonOption = False) -> None:
    """A booking with its sessions (in the customer's zone), its link and its history."""
    from calsync.bookings import changes, links
    from calsync.bookings import packages as bookings

    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    data = describe(
        booking, links.current_link(state.settings, booking), changes.changes_of(db, booking_id)
    )
    if as_json:
        print_json(data)
        return
    zone = ZoneInfo(booking.customer_timezone)
    out.print(
        f"[bold]{escape(data['title'])}[/bold] for "
        f"{escape(booking.customer_name)} <{booking.customer_email}>",
        highlight=False,
    )
    out.print(f"status {data['status']}, link: {data['manage_url'] or 'revoked'}", soft_wrap=True)
    # Every time below in one zone, the customer's, named once (--json keeps the offsets).
    out.print(f"Times in {zone.key} (the customer's zone).", highlight=False)
    table = Table("#", "start", "end", "status", title="Sessions")
    for s in data["sessions"]:
        table.add_row(
            str(s["position"]), _when(s["start"], zone), _when(s["end"], zone), s["status"]
        )
    out.print(table)
    for c in data["changes"]:
        moved = ", ".join(
            f"#{i['position']} {_when(i['from']['start'], zone)} → "
            + (_when(i["to"]["start"], zone) if i["to"] else "cancelled")
            for i in c["items"]
        )
        out.print(f"change {c['id']} ({c['kind']} by {c['actor']}, {c['status']}): {moved}")
    for h in data["history"]:
        out.print(
            f"{_when(h['at'], zone)}  {h['actor']}: {h['action']}"
            + (f" ({escape(h['reason'])})" if h["reason"] else ""),
            highlight=False,
        )


def _when(text: str, zone: ZoneInfo) -> str:
    """An ISO time (UTC or with any offset) as a wall time in ``zone``."""
    return f"{datetime.fromisoformat(text).astimezone(zone):%a %Y-%m-%d %H:%M}"


def _session_ids(booking: Booking, positions: list[int]) -> list[int]:
    by_position = {s.position: s.id for s in booking.sessions}
    missing = [p for p in positions if p not in by_position]
    if missing:
        from calsync.sync import connections as services

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
    to: Annotated[
        list[str],
        typer.Option(
            help="New start, one per --session, in order. A time without an offset "
            "(2026-12-07T14:30) is in the event type's zone."
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="Why (shown to the customer).")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Move even onto busy time, outside hours, inside the notice or off the slot grid.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Move sessions as the owner: checked against busy time and the event type's hours
    (--force skips that); never charged a fee nor counted against the customer's allowance."""
    from calsync.bookings import changes
    from calsync.bookings import packages as bookings
    from calsync.store.models import Actor
    from calsync.sync import connections as services

    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    if len(session) != len(to):
        raise services.ServiceError("give one --to for every --session")
    zone = booking_zone(db, booking)
    moves = dict(
        zip(_session_ids(booking, session), (parse_instant(t, zone) for t in to), strict=True)
    )
    outcome = changes.reschedule(
        db, state.settings, booking_id, moves, actor=Actor.OWNER, reason=reason, force=force
    )
    if as_json:
        print_json(change_data(outcome.change))
        return
    out.print(
        f"Change {outcome.change.id}: {outcome.change.status.value}. "
        + (outcome.change.message or ""),
        highlight=False,
    )
    if force:
        out.print(
            "--force: the busy-time, working-hours, notice and slot-grid checks were skipped.",
            highlight=False,
        )
    customer = ZoneInfo(booking.customer_timezone)
    for moved in outcome.sessions:
        text = f"  session {moved.position} now starts {when_text(moved.start, zone)}"
        if customer.key != zone.key:
            text += f" ({when_text(moved.start, customer)} for the customer)"
        out.print(text, highlight=False)


@booking_app.command("cancel")
def booking_cancel(
    booking_id: str,
    session: Annotated[
        list[int],
        typer.Option(min=1, max=MAX_INT32, help="Session number (1 = first); repeatable."),
    ],
    reason: Annotated[str | None, typer.Option(help="Why (shown to the customer).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel sessions as the owner (not bound by the cancel/reschedule policy)."""
    from calsync.bookings import changes
    from calsync.bookings import packages as bookings
    from calsync.store.models import Actor

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
    refunds = _send_refunds(outcome.change.id)
    if as_json:
        print_json(change_data(outcome.change))
        return
    out.print(
        f"Change {outcome.change.id}: {outcome.change.status.value}. "
        + (outcome.change.message or "")
    )
    for line in refunds:
        out.print(line, highlight=False)


def _send_refunds(change_id: int) -> list[str]:
    """Send the refund a cancel of a booking paid through Stripe queued (the worker would,
    on its next beat); one line for each, saying how it went."""
    if state.settings.payments is None:
        return []
    from calsync.payments import service
    from calsync.payments.gateway import StripeGateway
    from calsync.policy.money import minor_text

    db = state.db()
    gateway = StripeGateway.from_settings(state.settings.payments)
    lines = []
    for refund in service.pay_refunds(db, gateway, for_change=change_id):
        amount = minor_text(refund.amount, refund.currency)
        what = refund.stripe_id if refund.stripe_id else f"FAILED: {refund.message}"
        lines.append(f"Refund {amount}: {refund.state.value} ({what})")
    return lines


@booking_app.command("request-reschedule")
def booking_request_reschedule(
    booking_id: str,
    session: Annotated[
        list[int],
        typer.Option(min=1, max=MAX_INT32, help="Session number (1 = first); repeatable."),
    ],
    message: Annotated[
        str | None, typer.Option(help="Your words to the customer (why, what suits you).")
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, max=90, help="How many days the customer has to choose.")
    ] = 14,
    as_json: JsonOption = False,
) -> None:
    """Ask the customer to choose new times for these sessions: they get an email whose
    "Choose new times" button opens their booking with the sessions ticked; no fee, notice,
    allowance or reason rule applies to that move. A newer request replaces an open one."""
    from calsync.bookings import packages as bookings
    from calsync.bookings import reschedule_requests

    db = state.db()
    booking = bookings.get_booking(db, booking_id)
    issued = reschedule_requests.request_reschedule(
        db, state.settings, booking_id, _session_ids(booking, session), message=message, days=days
    )
    if as_json:
        print_json(
            {
                "id": issued.id,
                "sessions": list(issued.positions),
                "expires_at": iso(issued.expires_at),
                "url": issued.url,
            }
        )
        return
    numbers = ", ".join(str(p) for p in issued.positions)
    until = when_text(issued.expires_at, booking_zone(db, booking))
    out.print(
        f"Request {issued.id}: {escape(booking.customer_name)} <{booking.customer_email}> is "
        f"asked to choose new times for session {numbers}, until {until}. The email is queued "
        "(sent by `calsync serve` or `calsync worker`; see `calsync outbox list`).",
        highlight=False,
    )
    out.print(f"Their link: {issued.url}", soft_wrap=True, highlight=False)


@booking_app.command("revoke-request")
def booking_revoke_request(
    booking_id: str,
    request: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_INT32, help="The request's id (default: the open one)."),
    ] = None,
) -> None:
    """Withdraw the booking's open reschedule request: its link stops offering the free move."""
    from calsync.bookings import reschedule_requests

    ended = reschedule_requests.revoke_request(state.db(), booking_id, request)
    out.print(
        f"Request {', '.join(map(str, ended))} withdrawn; the sessions stay as they are.",
        highlight=False,
    )


@booking_app.command("resend-confirmation")
def booking_resend_confirmation(booking_id: str) -> None:
    """Email the customer their confirmation again (sessions as they are now, invites, link)."""
    from calsync.bookings import confirmations

    to = confirmations.resend_confirmation(state.db(), state.settings, booking_id)
    out.print(
        f"Queued the confirmation to {to} (sent by `calsync serve` or `calsync worker`; see "
        "`calsync outbox list`).",
        highlight=False,
    )


@booking_app.command("relink")
def booking_relink(
    booking_id: str,
    email: Annotated[
        bool,
        typer.Option("--email", help="Email the customer their confirmation with the new link."),
    ] = False,
) -> None:
    """Issue a new manage link (the old one stops working) and write it into the events."""
    from calsync.bookings import notices
    from calsync.bookings import packages as bookings

    db = state.db()
    url = bookings.relink(db, state.settings, booking_id)
    out.print(f"New manage link: {url}", soft_wrap=True, highlight=False)
    if email:
        booking = bookings.get_booking(db, booking_id)
        with db.writing() as session:
            notices.queue_new_link(
                session,
                state.settings,
                booking,
                booking.owner,
                change_key=f"relink-{booking.id}-{booking.version}",
            )
        out.print(
            f"Queued an email with the new link to {booking.customer_email} (sent by "
            "`calsync serve` or `calsync worker`; see `calsync outbox list`).",
            highlight=False,
        )


@booking_app.command("revoke")
def booking_revoke(booking_id: str) -> None:
    """Make the booking's manage link stop working now."""
    from calsync.bookings import packages as bookings

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
    email_customer: Annotated[
        bool,
        typer.Option(
            "--email-customer",
            help="Email each adopted booking's customer their confirmation with the "
            "Cancel/Reschedule link (off: the link is only written into the event).",
        ),
    ] = False,
) -> None:
    """Set the adoption rule of a calendar (off by default)."""
    from calsync.bookings import event_types
    from calsync.sync import connections as services

    chosen = None
    db = state.db()
    if event_type is not None:
        key: int | str = int(event_type) if event_type.isdigit() else event_type
        chosen = event_types.get_event_type(db, key)
    services.set_adoption(
        db,
        calendar_id,
        rule,
        chosen.id if chosen else None,
        category,
        email_customer=email_customer,
    )
    emailed = ", customers emailed their link" if email_customer else ""
    out.print(f"Calendar {calendar_id}: adoption rule {rule.value}{emailed}.")
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
    from calsync.bookings import adoption, links
    from calsync.bookings import packages as bookings
    from calsync.sync import connections as services

    db = state.db()
    connection = services.get_calendar(db, calendar)
    if connection.adopt is AdoptionRule.OFF:
        raise services.ServiceError(
            f"adoption is off for calendar {calendar}, so nothing is adopted: turn it on with "
            f"`calsync calendar adoption {calendar} --rule RULE --event-type SLUG` "
            "(see `calsync calendar adoption --help` for the rules), then run this again"
        )
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
    adopted = [bookings.get_booking(db, b.id) for b in adoption.adopt(db, state.settings, calendar)]
    rows = [
        {
            "id": b.id,
            "uid": b.sessions[0].uid,
            "start": iso(b.sessions[0].start),
            "customer": b.customer_email,
            "manage_url": links.current_link(state.settings, b),
        }
        for b in adopted
    ]
    if as_json:
        print_json(rows)
        return
    out.print(f"Adopted {len(adopted)} event(s).")
    for booking, row in zip(adopted, rows, strict=True):
        start = when_text(booking.sessions[0].start, booking_zone(db, booking))
        out.print(
            f"  booking {row['id']}: {start}, {row['customer']}, manage link {row['manage_url']}",
            soft_wrap=True,
            highlight=False,
        )
