"""``calsync event-type …`` and ``calsync availability``."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from calsync.cli.common import (
    JsonOption,
    app,
    event_type_app,
    out,
    parse_instant,
    print_json,
    state,
)
from calsync.limits import MAX_INT32
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
from calsync.policy.packages import PackageOffer, PageOffer, offer_to_data, parse_package

if TYPE_CHECKING:
    from calsync.bookings import event_types
    from calsync.store.models import EventType


def _fee(text: str | None, option: str) -> Fee | None:
    """``"5"`` (a fixed amount per session) or ``"10%"`` (of the per-session value)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not match:
        from calsync.bookings import event_types

        raise event_types.InvalidInput([(option, f"{text!r} is not an amount like 5 or 10%")])
    kind = FeeKind.PERCENT if match.group(2) else FeeKind.FIXED
    return Fee(kind, Decimal(match.group(1)))


def _rule(permission: Permission, notice: int | None, reason: ReasonRule) -> ActionRule:
    return ActionRule(permission, None if notice is None else timedelta(minutes=notice), reason)


# The options of `event-type add` and `event-type edit`, defined once. In `edit` every option
# defaults to None: "keep what is stored".
Owner = Annotated[str | None, typer.Option("--owner", help="Email of the owner.")]
Slug = Annotated[str | None, typer.Option("--slug", help="Short name used in links and commands.")]
Duration = Annotated[
    int | None,
    typer.Option("--duration", min=1, max=MAX_INT32, help="Length of a session in minutes."),
]
Title = Annotated[str | None, typer.Option("--title", help="Name customers see.")]
Step = Annotated[
    int | None,
    typer.Option(
        "--step", min=1, max=MAX_INT32, help="Minutes between slot starts (default: the duration)."
    ),
]
Zone = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="Zone of the hours (default: owner's). Times given without an offset to "
        "`book --start` and `booking reschedule --to` are read in this zone.",
    ),
]
Hours = Annotated[
    list[str] | None,
    typer.Option(
        "--hours",
        help="Working hours, e.g. 'mon-fri 09:00-12:00,13:00-17:00'; repeatable. "
        "Default: Mon–Fri 09:00–17:00.",
    ),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        help="Other hours on a date: '2026-12-24=closed', '2026-12-31=10:00-12:00'.",
    ),
]
BufferBefore = Annotated[
    int | None,
    typer.Option("--buffer-before", min=0, max=MAX_INT32, help="Minutes free before a session."),
]
BufferAfter = Annotated[
    int | None,
    typer.Option("--buffer-after", min=0, max=MAX_INT32, help="Minutes free after a session."),
]
Notice = Annotated[
    int | None, typer.Option("--notice", min=0, max=MAX_INT32, help="Minimum notice in minutes.")
]
Horizon = Annotated[
    int | None,
    typer.Option(
        "--horizon", min=1, max=MAX_INT32, help="How many days ahead can be booked (default 60)."
    ),
]
DailyCap = Annotated[
    int | None,
    typer.Option("--daily-cap", min=1, max=24 * 60, help="At most this many sessions a day."),
]
Conflicts = Annotated[
    list[int] | None,
    typer.Option(
        "--conflicts",
        min=1,
        max=MAX_INT32,
        help="Calendar ids whose busy time counts (default: all).",
    ),
]
BookingCalendar = Annotated[
    int | None,
    typer.Option(
        "--booking-calendar",
        min=1,
        max=MAX_INT32,
        help="Calendar id for bookings (role bookings or both). Default: the owner's only "
        "such calendar; without one the event type shows free times but cannot be booked.",
    ),
]
Price = Annotated[str | None, typer.Option("--price", help="Price of a booking (a whole package).")]
Currency = Annotated[str | None, typer.Option("--currency", help="Three-letter currency code.")]
Cancel = Annotated[Permission | None, typer.Option("--cancel", help="When customers may cancel.")]
CancelNotice = Annotated[
    int | None,
    typer.Option(
        "--cancel-notice", min=0, max=MAX_INT32, help="With --cancel until: minutes before."
    ),
]
CancelReason = Annotated[ReasonRule | None, typer.Option("--cancel-reason")]
Reschedule = Annotated[
    Permission | None, typer.Option("--reschedule", help="When customers may reschedule.")
]
RescheduleNotice = Annotated[
    int | None,
    typer.Option(
        "--reschedule-notice", min=0, max=MAX_INT32, help="With --reschedule until: minutes before."
    ),
]
RescheduleReason = Annotated[ReasonRule | None, typer.Option("--reschedule-reason")]
MaxReschedules = Annotated[
    int | None,
    typer.Option("--max-reschedules", min=0, max=MAX_INT32, help="Per session; default unlimited."),
]
RescheduleFee = Annotated[
    str | None, typer.Option("--reschedule-fee", help="Per session: '5' or '10%'.")
]
CancelRefund = Annotated[
    str | None, typer.Option("--cancel-refund", help="Per session: '100%' or '20'.")
]
PolicyText = Annotated[
    str | None, typer.Option("--policy-text", help="Policy as customers read it.")
]
PageSwitch = Annotated[
    bool | None,
    typer.Option(
        "--page/--no-page",
        help="Whether the public booking page /b/<owner>/<slug> takes bookings (default off).",
    ),
]
Packages = Annotated[
    list[str] | None,
    typer.Option(
        "--package",
        help="A package the page offers: 'SESSIONS=PRICE', e.g. '3=250'; repeatable. "
        "Default: one session at --price.",
    ),
]
MinDaysApart = Annotated[
    int | None,
    typer.Option(
        "--min-days-apart", min=0, max=365, help="Sessions of one package at least N days apart."
    ),
]
OnePerDay = Annotated[
    bool | None,
    typer.Option("--one-per-day/--any-per-day", help="At most one session of a package per day."),
]
Stakeholders = Annotated[
    int | None,
    typer.Option(
        "--max-stakeholders",
        min=0,
        max=10,
        help="How many other people customers may add on the page (default 0: none).",
    ),
]

# The spec's field names as the options that set them, so an error names what to change.
OPTION_OF = {
    "owner_email": "--owner",
    "slug": "--slug",
    "title": "--title",
    "duration": "--duration",
    "slot_step": "--step",
    "timezone": "--timezone",
    "weekly_hours": "--hours",
    "date_overrides": "--override",
    "time_range": "--hours",
    "buffer_before": "--buffer-before",
    "buffer_after": "--buffer-after",
    "minimum_notice": "--notice",
    "horizon": "--horizon",
    "horizon_days": "--horizon",
    "daily_cap": "--daily-cap",
    "conflict_calendar_ids": "--conflicts",
    "booking_calendar_id": "--booking-calendar",
    "price": "--price",
    "currency": "--currency",
    "policy.cancel.notice": "--cancel-notice",
    "policy.reschedule.notice": "--reschedule-notice",
    "policy.cancel.permission": "--cancel",
    "policy.reschedule.permission": "--reschedule",
    "policy.max_reschedules": "--max-reschedules",
    "policy.reschedule_fee": "--reschedule-fee",
    "policy.cancel_refund": "--cancel-refund",
    "reschedule_fee": "--reschedule-fee",
    "cancel_refund": "--cancel-refund",
    "booking_page.packages": "--package",
    "booking_page.min_days_apart": "--min-days-apart",
    "booking_page.max_stakeholders": "--max-stakeholders",
}


@dataclass(frozen=True, slots=True)
class EventTypeOptions:
    """What `event-type add`/`edit` was given; None = not given."""

    owner: str | None = None
    slug: str | None = None
    duration: int | None = None
    title: str | None = None
    step: int | None = None
    timezone: str | None = None
    hours: list[str] | None = None
    override: list[str] | None = None
    buffer_before: int | None = None
    buffer_after: int | None = None
    notice: int | None = None
    horizon: int | None = None
    daily_cap: int | None = None
    conflicts: list[int] | None = None
    booking_calendar: int | None = None
    price: str | None = None
    currency: str | None = None
    cancel: Permission | None = None
    cancel_notice: int | None = None
    cancel_reason: ReasonRule | None = None
    reschedule: Permission | None = None
    reschedule_notice: int | None = None
    reschedule_reason: ReasonRule | None = None
    max_reschedules: int | None = None
    reschedule_fee: str | None = None
    cancel_refund: str | None = None
    policy_text: str | None = None
    page: bool | None = None
    package: list[str] | None = None
    min_days_apart: int | None = None
    one_per_day: bool | None = None
    max_stakeholders: int | None = None


def _packages(texts: list[str]) -> tuple[PackageOffer, ...]:
    offers = []
    for text in texts:
        offer = parse_package(text)
        if offer is None:
            from calsync.bookings import event_types

            raise event_types.InvalidInput(
                [("--package", f"{text!r} is not SESSIONS=PRICE, e.g. 3=250")]
            )
        offers.append(offer)
    return tuple(sorted(offers, key=lambda o: o.sessions))


def _merged_page(current: PageOffer, o: EventTypeOptions) -> PageOffer:
    return PageOffer(
        public=current.public if o.page is None else o.page,
        packages=current.packages if o.package is None else _packages(o.package),
        min_days_apart=current.min_days_apart if o.min_days_apart is None else o.min_days_apart,
        one_per_day=current.one_per_day if o.one_per_day is None else o.one_per_day,
        max_stakeholders=(
            current.max_stakeholders if o.max_stakeholders is None else o.max_stakeholders
        ),
    )


def _minutes_or(value: int | None, current: timedelta) -> timedelta:
    return current if value is None else timedelta(minutes=value)


def _merged_rule(
    current: ActionRule,
    permission: Permission | None,
    notice: int | None,
    reason: ReasonRule | None,
) -> ActionRule:
    return ActionRule(
        current.permission if permission is None else permission,
        current.notice if notice is None else timedelta(minutes=notice),
        current.reason if reason is None else reason,
    )


def _updated(base: event_types.EventTypeSpec, o: EventTypeOptions) -> event_types.EventTypeSpec:
    """``base`` with every given option applied."""
    from calsync.bookings import event_types

    policy = base.policy
    return replace(
        base,
        owner_email=o.owner or base.owner_email,
        slug=o.slug or base.slug,
        title=base.title if o.title is None else o.title,
        duration=_minutes_or(o.duration, base.duration),
        slot_step=base.slot_step if o.step is None else timedelta(minutes=o.step),
        timezone=o.timezone or base.timezone,
        weekly_hours=base.weekly_hours if o.hours is None else parse_weekly_hours(o.hours),
        date_overrides=(base.date_overrides if o.override is None else parse_overrides(o.override)),
        buffer_before=_minutes_or(o.buffer_before, base.buffer_before),
        buffer_after=_minutes_or(o.buffer_after, base.buffer_after),
        minimum_notice=_minutes_or(o.notice, base.minimum_notice),
        horizon_days=base.horizon_days if o.horizon is None else o.horizon,
        daily_cap=base.daily_cap if o.daily_cap is None else o.daily_cap,
        conflict_calendar_ids=(
            base.conflict_calendar_ids if o.conflicts is None else tuple(o.conflicts)
        ),
        booking_calendar_id=(
            base.booking_calendar_id if o.booking_calendar is None else o.booking_calendar
        ),
        price=base.price if o.price is None else event_types.parse_decimal(o.price, "price"),
        currency=base.currency if o.currency is None else o.currency.upper(),
        policy=ChangePolicy(
            cancel=_merged_rule(policy.cancel, o.cancel, o.cancel_notice, o.cancel_reason),
            reschedule=_merged_rule(
                policy.reschedule, o.reschedule, o.reschedule_notice, o.reschedule_reason
            ),
            max_reschedules=(
                policy.max_reschedules if o.max_reschedules is None else o.max_reschedules
            ),
            reschedule_fee=(
                policy.reschedule_fee
                if o.reschedule_fee is None
                else _fee(o.reschedule_fee, "reschedule_fee")
            ),
            cancel_refund=(
                policy.cancel_refund
                if o.cancel_refund is None
                else _fee(o.cancel_refund, "cancel_refund")
            ),
            text=policy.text if o.policy_text is None else o.policy_text,
        ),
        page=_merged_page(base.page, o),
    )


def _save(spec: event_types.EventTypeSpec, event_type_id: int | None = None) -> EventType:
    """Save, with each problem named by the option that fixes it."""
    from calsync.bookings import event_types

    try:
        return event_types.save_event_type(state.db(), spec, event_type_id)
    except event_types.InvalidInput as exc:
        raise event_types.InvalidInput(
            [
                (f"{OPTION_OF[name]} ({name})" if name in OPTION_OF else name, message)
                for name, message in exc.problems
            ]
        ) from None


def _only_booking_calendar(owner_email: str) -> int | None:
    """The owner's one calendar that can take bookings, if there is exactly one."""
    from calsync.bookings import event_types
    from calsync.sync import connections as services

    usable = [
        c.id
        for c in services.list_calendars(state.db())
        if c.owner.email.lower() == owner_email.lower() and c.role in event_types.BOOKING_ROLES
    ]
    return usable[0] if len(usable) == 1 else None


def _say_saved(saved: EventType, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(describe(saved))
        return
    out.print(f"{verb} event type {saved.slug!r} (id {saved.id}).", highlight=False)
    if saved.booking_calendar_id is None:
        out.print(
            f"[yellow]{saved.slug} has no booking calendar: it shows free times but cannot be "
            f"booked. Give it one with `calsync event-type edit {saved.slug} --booking-calendar "
            "ID` (a calendar with role bookings or both; see `calsync calendar list`).[/yellow]"
        )


@event_type_app.command("add")
def event_type_add(
    owner: Owner,
    slug: Slug,
    duration: Duration,
    title: Title = None,
    step: Step = None,
    timezone: Zone = None,
    hours: Hours = None,
    override: Overrides = None,
    buffer_before: BufferBefore = 0,
    buffer_after: BufferAfter = 0,
    notice: Notice = 0,
    horizon: Horizon = 60,
    daily_cap: DailyCap = None,
    conflicts: Conflicts = None,
    booking_calendar: BookingCalendar = None,
    price: Price = "0",
    currency: Currency = "EUR",
    cancel: Cancel = Permission.ANYTIME,
    cancel_notice: CancelNotice = None,
    cancel_reason: CancelReason = ReasonRule.OFF,
    reschedule: Reschedule = Permission.ANYTIME,
    reschedule_notice: RescheduleNotice = None,
    reschedule_reason: RescheduleReason = ReasonRule.OFF,
    max_reschedules: MaxReschedules = None,
    reschedule_fee: RescheduleFee = None,
    cancel_refund: CancelRefund = None,
    policy_text: PolicyText = "",
    page: PageSwitch = None,
    package: Packages = None,
    min_days_apart: MinDaysApart = None,
    one_per_day: OnePerDay = None,
    max_stakeholders: Stakeholders = None,
    as_json: JsonOption = False,
) -> None:
    """Define an event type: duration, hours (default Mon–Fri 09:00–17:00), buffers, notice and
    the cancel/reschedule policy."""
    from calsync.bookings import event_types
    from calsync.sync import connections as services

    assert owner is not None and slug is not None and duration is not None  # required options
    owner_row = services.find_owner(state.db(), owner)
    options = EventTypeOptions(**{k: v for k, v in locals().items() if k in _OPTION_NAMES})
    base = event_types.EventTypeSpec(
        owner_email=owner,
        slug=slug,
        title=title or slug.replace("-", " ").capitalize(),
        duration=timedelta(minutes=duration),
        timezone=owner_row.timezone,
        weekly_hours=parse_weekly_hours(["mon-fri 09:00-17:00"]),
        booking_calendar_id=_only_booking_calendar(owner),
    )
    _say_saved(_save(_updated(base, options)), "Added", as_json)


@event_type_app.command("edit")
def event_type_edit(
    event_type: Annotated[str, typer.Argument(help="Id or slug.")],
    owner: Owner = None,
    slug: Slug = None,
    duration: Duration = None,
    title: Title = None,
    step: Step = None,
    timezone: Zone = None,
    hours: Hours = None,
    override: Overrides = None,
    buffer_before: BufferBefore = None,
    buffer_after: BufferAfter = None,
    notice: Notice = None,
    horizon: Horizon = None,
    daily_cap: DailyCap = None,
    conflicts: Conflicts = None,
    booking_calendar: BookingCalendar = None,
    price: Price = None,
    currency: Currency = None,
    cancel: Cancel = None,
    cancel_notice: CancelNotice = None,
    cancel_reason: CancelReason = None,
    reschedule: Reschedule = None,
    reschedule_notice: RescheduleNotice = None,
    reschedule_reason: RescheduleReason = None,
    max_reschedules: MaxReschedules = None,
    reschedule_fee: RescheduleFee = None,
    cancel_refund: CancelRefund = None,
    policy_text: PolicyText = None,
    page: PageSwitch = None,
    package: Packages = None,
    min_days_apart: MinDaysApart = None,
    one_per_day: OnePerDay = None,
    max_stakeholders: Stakeholders = None,
    as_json: JsonOption = False,
) -> None:
    """Change an event type: the options of `event-type add`; what is not given stays.
    Bookings made already keep the policy they were made with."""
    from calsync.bookings import event_types

    options = EventTypeOptions(**{k: v for k, v in locals().items() if k in _OPTION_NAMES})
    key: int | str = int(event_type) if event_type.isdigit() else event_type
    current = event_types.get_event_type(state.db(), key)
    saved = _save(_updated(event_types.spec_of(current), options), current.id)
    _say_saved(saved, "Updated", as_json)


_OPTION_NAMES = frozenset(f.name for f in fields(EventTypeOptions))


def describe(event_type: EventType) -> dict[str, Any]:
    from calsync.bookings import event_types

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
        "booking_page": offer_to_data(spec.page),
        "page_url": event_types.page_url(state.settings.base_url, event_type),
    }


@event_type_app.command("list")
def event_type_list(as_json: JsonOption = False) -> None:
    """List event types."""
    from calsync.bookings import event_types

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
    from calsync.bookings import event_types

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
        *_page_lines(data),
    ]


def _page_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    page = data["booking_page"]
    packages = page["packages"] or [{"sessions": 1, "price": data["price"]}]
    spacing = [f"at least {page['min_days_apart']} days apart"] if page["min_days_apart"] else []
    spacing += ["at most one a day"] if page["one_per_day"] else []
    return [
        (
            "booking page",
            f"{'on' if page['public'] else 'off (turn on with --page)'}: {data['page_url']}",
        ),
        (
            "packages",
            ", ".join(
                f"{p['sessions']} {'session' if p['sessions'] == 1 else 'sessions'} "
                f"for {p['price']} {data['currency']}"
                for p in packages
            ),
        ),
        ("spacing", ", ".join(spacing) or "none"),
        ("stakeholders", f"customers may add up to {page['max_stakeholders']}"),
    ]


@app.command()
def availability(
    event_type: Annotated[str, typer.Option("--event-type", help="Id or slug.")],
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Start: date or ISO datetime; without an offset in --tz, else the event "
            "type's zone.",
        ),
    ],
    to: Annotated[str, typer.Option(help="End: date or ISO datetime (exclusive), as --from.")],
    tz: Annotated[
        str | None,
        typer.Option(help="Zone to read and show times in (default: the event type's)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Free slots of an event type, from the busy time calsync has mirrored."""
    from calsync.bookings import event_types
    from calsync.sync import connections as services

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
