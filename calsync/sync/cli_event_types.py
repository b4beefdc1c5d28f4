"""``calsync event-type …`` and ``calsync availability``."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
    policy_to_data,
)
from calsync.policy.hours import (
    overrides_to_data,
    parse_overrides,
    parse_weekly_hours,
    weekly_to_data,
)
from calsync.sync.cli_common import (
    JsonOption,
    app,
    event_type_app,
    out,
    parse_instant,
    print_json,
    state,
)

if TYPE_CHECKING:
    from calsync.sync.models import EventType

Minutes = Annotated[int, typer.Option(min=0, help="Minutes.")]


def _fee(text: str | None, option: str) -> Fee | None:
    """``"5"`` (a fixed amount per session) or ``"10%"`` (of the per-session value)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not match:
        from calsync.sync import event_types

        raise event_types.InvalidInput([(option, f"{text!r} is not an amount like 5 or 10%")])
    kind = FeeKind.PERCENT if match.group(2) else FeeKind.FIXED
    return Fee(kind, Decimal(match.group(1)))


def _rule(permission: Permission, notice: int | None, reason: ReasonRule) -> ActionRule:
    return ActionRule(permission, None if notice is None else timedelta(minutes=notice), reason)


@event_type_app.command("add")
def event_type_add(
    owner: Annotated[str, typer.Option(help="Email of the owner.")],
    slug: Annotated[str, typer.Option(help="Short name used in links and commands.")],
    duration: Annotated[int, typer.Option(min=1, help="Length of a session in minutes.")],
    title: Annotated[str | None, typer.Option(help="Name customers see.")] = None,
    step: Annotated[int | None, typer.Option(min=1, help="Minutes between slot starts.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Zone of the hours (default: owner's).")
    ] = None,
    hours: Annotated[
        list[str] | None,
        typer.Option(help="Working hours, e.g. 'mon-fri 09:00-12:00,13:00-17:00'; repeatable."),
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(help="Other hours on a date: '2026-12-24=closed', '2026-12-31=10:00-12:00'."),
    ] = None,
    buffer_before: Minutes = 0,
    buffer_after: Minutes = 0,
    notice: Annotated[int, typer.Option(min=0, help="Minimum notice in minutes.")] = 0,
    horizon: Annotated[int, typer.Option(help="How many days ahead can be booked.")] = 60,
    daily_cap: Annotated[int | None, typer.Option(help="At most this many sessions a day.")] = None,
    conflicts: Annotated[
        list[int] | None, typer.Option(help="Calendar ids whose busy time counts (default: all).")
    ] = None,
    booking_calendar: Annotated[int | None, typer.Option(help="Calendar id for bookings.")] = None,
    price: Annotated[str, typer.Option(help="Price of a booking (a whole package).")] = "0",
    currency: Annotated[str, typer.Option(help="Three-letter currency code.")] = "EUR",
    cancel: Annotated[
        Permission, typer.Option(help="When customers may cancel.")
    ] = Permission.ANYTIME,
    cancel_notice: Annotated[int | None, typer.Option(help="With 'until': minutes before.")] = None,
    cancel_reason: Annotated[ReasonRule, typer.Option()] = ReasonRule.OFF,
    reschedule: Annotated[Permission, typer.Option()] = Permission.ANYTIME,
    reschedule_notice: Annotated[int | None, typer.Option()] = None,
    reschedule_reason: Annotated[ReasonRule, typer.Option()] = ReasonRule.OFF,
    max_reschedules: Annotated[
        int | None, typer.Option(help="Per session; default unlimited.")
    ] = None,
    reschedule_fee: Annotated[str | None, typer.Option(help="Per session: '5' or '10%'.")] = None,
    cancel_refund: Annotated[str | None, typer.Option(help="Per session: '100%' or '20'.")] = None,
    policy_text: Annotated[str, typer.Option(help="Policy as customers read it.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Define an event type: duration, hours, buffers, notice and the cancel/reschedule policy."""
    from calsync.sync import event_types, services

    db = state.db()
    owner_row = services.find_owner(db, owner)
    spec = event_types.EventTypeSpec(
        owner_email=owner,
        slug=slug,
        title=title or slug.replace("-", " ").capitalize(),
        duration=timedelta(minutes=duration),
        slot_step=timedelta(minutes=step) if step else None,
        timezone=timezone or owner_row.timezone,
        weekly_hours=parse_weekly_hours(hours or ["mon-fri 09:00-17:00"]),
        date_overrides=parse_overrides(override or []),
        buffer_before=timedelta(minutes=buffer_before),
        buffer_after=timedelta(minutes=buffer_after),
        minimum_notice=timedelta(minutes=notice),
        horizon_days=horizon,
        daily_cap=daily_cap,
        conflict_calendar_ids=tuple(conflicts or ()),
        booking_calendar_id=booking_calendar,
        price=event_types.parse_decimal(price, "price"),
        currency=currency.upper(),
        policy=ChangePolicy(
            cancel=_rule(cancel, cancel_notice, cancel_reason),
            reschedule=_rule(reschedule, reschedule_notice, reschedule_reason),
            max_reschedules=max_reschedules,
            reschedule_fee=_fee(reschedule_fee, "reschedule_fee"),
            cancel_refund=_fee(cancel_refund, "cancel_refund"),
            text=policy_text,
        ),
    )
    saved = event_types.save_event_type(db, spec)
    if as_json:
        print_json(describe(saved))
    else:
        out.print(f"Added event type {saved.slug!r} (id {saved.id}).")


def describe(event_type: EventType) -> dict[str, Any]:
    from calsync.sync import event_types

    spec = event_types.spec_of(event_type)
    return {
        "id": event_type.id,
        "owner": event_type.owner.email,
        "slug": spec.slug,
        "title": spec.title,
        "duration_minutes": event_type.duration_minutes,
        "slot_step_minutes": event_type.slot_step_minutes,
        "timezone": spec.timezone,
        "weekly_hours": weekly_to_data(spec.weekly_hours),
        "date_overrides": overrides_to_data(spec.date_overrides),
        "buffer_before_minutes": event_type.buffer_before_minutes,
        "buffer_after_minutes": event_type.buffer_after_minutes,
        "minimum_notice_minutes": event_type.minimum_notice_minutes,
        "horizon_days": spec.horizon_days,
        "daily_cap": spec.daily_cap,
        "conflict_calendar_ids": list(spec.conflict_calendar_ids),
        "booking_calendar_id": spec.booking_calendar_id,
        "price": str(spec.price),
        "currency": spec.currency,
        "policy": policy_to_data(spec.policy),
    }


@event_type_app.command("list")
def event_type_list(as_json: JsonOption = False) -> None:
    """List event types."""
    from calsync.sync import event_types

    rows = [describe(e) for e in event_types.list_event_types(state.db())]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "slug", "owner", "minutes", "zone", "hours")
    for row in rows:
        hours = "; ".join(
            f"{day} " + ",".join(f"{s}-{e}" for s, e in ranges)
            for day, ranges in row["weekly_hours"].items()
        )
        table.add_row(
            str(row["id"]),
            row["slug"],
            row["owner"],
            str(row["duration_minutes"]),
            row["timezone"],
            hours,
        )
    out.print(table)


@event_type_app.command("show")
def event_type_show(
    event_type: Annotated[str, typer.Argument(help="Id or slug.")], as_json: JsonOption = False
) -> None:
    """Show one event type in full."""
    from calsync.sync import event_types

    key: int | str = int(event_type) if event_type.isdigit() else event_type
    data = describe(event_types.get_event_type(state.db(), key))
    if as_json:
        print_json(data)
        return
    for name, value in _readable(data):
        out.print(f"[bold]{name}[/bold]: {escape(value)}", highlight=False)


def _ranges(ranges: list[list[str]]) -> str:
    return ",".join(f"{start}-{end}" for start, end in ranges) or "closed"


def _rule_text(rule: dict[str, Any]) -> str:
    when = {
        "anytime": "any time",
        "until": f"until {rule['notice_minutes']} minutes before the session",
        "never": "never",
    }[rule["permission"]]
    return when if rule["reason"] == "off" else f"{when}, reason {rule['reason']}"


def _fee_text(fee: dict[str, str] | None, currency: str) -> str:
    if fee is None:
        return "none"
    return f"{fee['amount']}%" if fee["kind"] == "percent" else f"{fee['amount']} {currency}"


def _readable(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``event-type show`` as lines a person reads (``--json`` gives the data itself)."""
    policy = data["policy"]
    step = data["slot_step_minutes"] or data["duration_minutes"]
    conflicts = data["conflict_calendar_ids"]
    return [
        ("id", str(data["id"])),
        ("slug", data["slug"]),
        ("title", data["title"]),
        ("owner", data["owner"]),
        ("duration", f"{data['duration_minutes']} minutes, a slot every {step} minutes"),
        ("zone", data["timezone"]),
        ("hours", "; ".join(f"{d} {_ranges(r)}" for d, r in data["weekly_hours"].items())),
        (
            "date overrides",
            "; ".join(f"{d} {_ranges(r)}" for d, r in data["date_overrides"].items()) or "none",
        ),
        (
            "buffers",
            f"{data['buffer_before_minutes']} minutes before, "
            f"{data['buffer_after_minutes']} minutes after",
        ),
        ("minimum notice", f"{data['minimum_notice_minutes']} minutes"),
        ("horizon", f"{data['horizon_days']} days ahead"),
        ("daily cap", "none" if data["daily_cap"] is None else f"{data['daily_cap']} sessions"),
        # An empty list means every calendar of the owner counts.
        (
            "conflict calendars",
            ", ".join(str(c) for c in conflicts) if conflicts else "all calendars",
        ),
        ("booking calendar", str(data["booking_calendar_id"] or "none")),
        ("price", f"{data['price']} {data['currency']}"),
        ("cancel", _rule_text(policy["cancel"])),
        ("reschedule", _rule_text(policy["reschedule"])),
        (
            "reschedules per session",
            "unlimited" if policy["max_reschedules"] is None else str(policy["max_reschedules"]),
        ),
        ("reschedule fee", _fee_text(policy["reschedule_fee"], data["currency"])),
        ("cancel refund", _fee_text(policy["cancel_refund"], data["currency"])),
        ("policy text", policy["text"] or "none"),
    ]


@app.command()
def availability(
    event_type: Annotated[str, typer.Option("--event-type", help="Id or slug.")],
    from_: Annotated[str, typer.Option("--from", help="Start: date or ISO datetime.")],
    to: Annotated[str, typer.Option(help="End: date or ISO datetime (exclusive).")],
    tz: Annotated[str | None, typer.Option(help="Zone to read and show times in.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Free slots of an event type, from the busy time calsync has mirrored."""
    from calsync.sync import event_types, services

    db = state.db()
    key: int | str = int(event_type) if event_type.isdigit() else event_type
    chosen = event_types.get_event_type(db, key)
    zone = ZoneInfo(services.check_timezone(tz or chosen.timezone))
    slots = event_types.find_slots(db, chosen, parse_instant(from_, zone), parse_instant(to, zone))
    if as_json:
        print_json(
            [
                {
                    "start": s.start.astimezone(zone).isoformat(),
                    "end": s.end.astimezone(zone).isoformat(),
                }
                for s in slots
            ]
        )
        return
    table = Table("day", "free slots", title=f"{chosen.title}: free times ({zone.key})")
    by_day: dict[str, list[str]] = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        by_day.setdefault(f"{local:%a %Y-%m-%d}", []).append(f"{local:%H:%M}")
    for day, starts in by_day.items():
        table.add_row(day, " ".join(starts))
    out.print(table if slots else "No free slots in that range.")
