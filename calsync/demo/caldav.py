"""``calsync demo``: everything embedded on this machine.

A Radicale server on loopback holds the owner's calendar, seeded with a realistic week;
calsync keeps its mirror in a SQLite file, syncs, prints the busy time, and keeps polling
(every few seconds) until Ctrl-C, saying whenever it picks up an edit.

The steps after connecting (sync, busy time, free slots, the demo booking, the emails, serving)
are shared with ``calsync demo --google-fake`` (``demo_google``): each variant seeds and connects
its calendar, then hands ``run_connected`` a ``ConnectedCalendar`` saying what to tell a person
about it.
"""

from __future__ import annotations

import secrets
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from calsync.bookings import links
from calsync.bookings.event_types import EventTypeSpec, find_slots, get_event_type, save_event_type
from calsync.bookings.packages import BookingRequest, book, get_booking
from calsync.bookings.polling import booking_poller
from calsync.cli.common import configure_logging
from calsync.config import MailBackend, MailSettings, Settings, SyncSettings, WebSettings
from calsync.demo import payments
from calsync.demo.embedded import EmbeddedRadicale
from calsync.demo.payments import EmbeddedStripe
from calsync.notify import outbox
from calsync.notify.transport import transport_from_settings
from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Fee,
    FeeKind,
    Permission,
    ReasonRule,
)
from calsync.policy.hours import parse_weekly_hours
from calsync.policy.packages import PackageOffer, PageOffer
from calsync.store.db import Database
from calsync.store.models import Booking, BookingStatus, CalendarRole, EventType
from calsync.sync import connections as services
from calsync.sync.connections import NotFoundError
from calsync.sync.poller import PollResult

OWNER_SLUG = "ada"  # the booking page's /b/<slug>: the email's local part
OWNER_EMAIL = "ada@example.org"
OWNER_ZONE = "Europe/Berlin"
CALDAV_USER = "demo"
CALDAV_PASSWORD = "demo"


def _kept_secret(path: Path) -> str:
    """A random value made on the first run and kept in the demo folder."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def demo_settings(data_dir: Path, port: int) -> Settings:
    return Settings(
        database_url=f"sqlite:///{data_dir / 'calsync.db'}",
        base_url=f"http://127.0.0.1:{port}",
        secret_key=_kept_secret(data_dir / "secret_key"),
        admin_api_key=_kept_secret(data_dir / "admin_api_key"),
        mail=MailSettings(
            backend=MailBackend.DIRECTORY,
            directory=data_dir / "mail",
            from_address="bookings@calsync.example",
        ),
        sync=SyncSettings(poll_interval_seconds=5, poll_jitter_seconds=0, tick_seconds=1),
        # The demo's Radicale listens on 127.0.0.1; let the console's "Sync now" reach it.
        web=WebSettings(allow_private_caldav=True),
    )


def seed_week(monday: date) -> dict[str, str]:
    """A realistic working week for the owner, as iCalendar objects keyed by file name."""
    names = ["mon", "tue", "wed", "thu", "fri"]
    day = {name: monday + timedelta(days=i) for i, name in enumerate(names)}

    def at(d: date, hhmm: str) -> str:
        return f"{d:%Y%m%d}T{hhmm.replace(':', '')}00"

    def event(uid: str, body: str) -> str:
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo//EN\r\n"
            + body.strip().replace("\n", "\r\n")
            + "\r\nEND:VCALENDAR\r\n"
        ).replace("@UID@", uid)

    tz = f"TZID={OWNER_ZONE}"
    return {
        "standup.ics": event(
            "standup",
            f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Daily stand-up
DTSTART;{tz}:{at(day["mon"], "09:00")}
DTEND;{tz}:{at(day["mon"], "09:15")}
RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR
EXDATE;{tz}:{at(day["fri"], "09:00")}
END:VEVENT""",
        ),
        "team.ics": event(
            "team-meeting",
            f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Team meeting
DTSTART;{tz}:{at(day["tue"], "14:00")}
DTEND;{tz}:{at(day["tue"], "15:00")}
RRULE:FREQ=WEEKLY
END:VEVENT
BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
RECURRENCE-ID;{tz}:{at(day["tue"], "14:00")}
SUMMARY:Team meeting (moved this week)
DTSTART;{tz}:{at(day["tue"], "16:00")}
DTEND;{tz}:{at(day["tue"], "17:00")}
END:VEVENT""",
        ),
        "conference.ics": event(
            "conference",
            f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Conference (all day)
DTSTART;VALUE=DATE:{day["thu"]:%Y%m%d}
DTEND;VALUE=DATE:{day["fri"]:%Y%m%d}
END:VEVENT""",
        ),
        "focus.ics": event(
            "focus",
            f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Focus time (shown as free)
TRANSP:TRANSPARENT
DTSTART;{tz}:{at(day["wed"], "13:00")}
DTEND;{tz}:{at(day["wed"], "15:00")}
END:VEVENT""",
        ),
        "lunch.ics": event(
            "lunch",
            f"""BEGIN:VEVENT
UID:@UID@
DTSTAMP:20260101T000000Z
SUMMARY:Lunch with a client
DTSTART;{tz}:{at(day["mon"], "12:30")}
DTEND;{tz}:{at(day["mon"], "13:30")}
END:VEVENT""",
        ),
    }


def put(url: str, data: str) -> None:
    request = urllib.request.Request(
        url,
        method="PUT",
        data=data.encode(),
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Authorization": "Basic ZGVtbzpkZW1v",  # demo:demo
        },
    )
    urllib.request.urlopen(request, timeout=10).close()


def _busy_table(db: Database, calendar_id: int, start: datetime, days: int) -> Table:
    zone = ZoneInfo(OWNER_ZONE)
    table = Table(
        "day", "busy from", "to", title=f"Busy time in the next {days} days ({OWNER_ZONE})"
    )
    for interval in services.busy(db, calendar_id, start, start + timedelta(days=days)):
        s, e = interval.start.astimezone(zone), interval.end.astimezone(zone)
        table.add_row(
            f"{s:%a %d %b}",
            f"{s:%H:%M}",
            f"{e:%H:%M}" + ("" if e.date() == s.date() else f" ({e:%a})"),
        )
    return table


def seed_monday() -> date:
    """Monday of next week in the owner's zone: all of the seeded week is ahead of now."""
    today = datetime.now(ZoneInfo(OWNER_ZONE)).date()
    return today + timedelta(days=7 - today.weekday())


def example_event(uid: str) -> str:
    """An event for a person to add while the demo runs: tomorrow 10:00-11:00."""
    tomorrow = (datetime.now(ZoneInfo(OWNER_ZONE)) + timedelta(days=1)).strftime("%Y%m%d")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//demo//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Added while the demo runs\r\n"
        f"DTSTART;TZID={OWNER_ZONE}:{tomorrow}T100000\r\n"
        f"DTEND;TZID={OWNER_ZONE}:{tomorrow}T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def add_demo_owner(db: Database) -> None:
    """Ada, whose calendar every demo variant connects."""
    services.add_owner(db, name="Ada Lovelace", email=OWNER_EMAIL, timezone=OWNER_ZONE)


def say(console: Console, text: str) -> None:
    """Print a line with addresses or commands in it: unwrapped (so it can be copied) and
    without rich's highlighting."""
    console.print(text, soft_wrap=True, highlight=False)


@dataclass(frozen=True)
class ConnectedCalendar:
    """The calendar a demo variant seeded and connected, and what to tell a person about it."""

    id: int
    # Where the booked events can be seen (printed right after the booking).
    show_booked: Callable[[Console], None]
    # An edit to try while the demo polls (printed before serving).
    show_how_to_change: Callable[[Console], None]
    # What Ctrl-C leaves behind (the last line before serving).
    on_exit: str


def run_demo(data_dir: Path, *, once: bool, console: Console, port: int = 8000) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(data_dir, port)
    # The calendar's URL is stored with the connection, so the port must survive restarts.
    port_file = data_dir / "radicale_port"
    radicale = EmbeddedRadicale(
        data_dir / "radicale", int(port_file.read_text()) if port_file.exists() else None
    )
    port_file.write_text(str(radicale.port))
    radicale.start()
    stripe = EmbeddedStripe(data_dir / "localstripe.log") if payments.available() else None
    try:
        if stripe is not None:
            stripe.start()
            settings = settings.model_copy(update={"payments": stripe.settings()})
            assert settings.payments is not None
            stripe.send_webhooks_to(
                settings.base_url + "/webhooks/stripe", settings.payments.webhook_secret()
            )
        calendar_url = radicale.ensure_calendar(CALDAV_USER, "work", "Ada's work calendar")
        db = Database(settings.database_url)
        db.migrate()
        calendar = ConnectedCalendar(
            _prepare(db, settings, calendar_url, console),
            show_booked=lambda c: say(
                c, f"The events are in the calendar at {calendar_url} (user demo, password demo)."
            ),
            show_how_to_change=lambda c: _caldav_hints(c, calendar_url, data_dir),
            on_exit=f"its data stays in {data_dir}/.",
        )
        if stripe is not None:
            say(
                console,
                f"Payments: a fake Stripe (localstripe) runs at {stripe.url}. Rescheduling costs "
                f"15.00 EUR a session: pay with the test card {payments.CARD_PAYS} (any future "
                f"date, any CVC); {payments.CARD_DECLINED} is declined, {payments.CARD_3DS} asks "
                "for 3-D Secure. The owner sees them with "
                f"`CALSYNC_DATABASE_URL={settings.database_url} calsync payments list`.",
            )
        run_connected(db, settings, calendar, once=once, console=console, port=port)
    finally:
        if stripe is not None:
            stripe.stop()
        radicale.stop()


def run_connected(
    db: Database,
    settings: Settings,
    calendar: ConnectedCalendar,
    *,
    once: bool,
    console: Console,
    port: int,
) -> None:
    """Everything after connecting: sync, busy time, free slots, the demo booking, its emails;
    then (unless ``once``) the web app and the poller until Ctrl-C."""
    poller = booking_poller(db, settings)
    for result in poller.sync_now([calendar.id]):
        console.print(_sync_line(result))
    today = datetime.now(ZoneInfo(OWNER_ZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
    # Up to the end of the seeded week (next week), so every kind of event shows.
    days = 14 - today.weekday()
    console.print(_busy_table(db, calendar.id, today, days))
    poller.stop()
    event_type = _event_type(db, calendar.id)
    for zone in (OWNER_ZONE, "America/New_York"):
        console.print(_slots_table(db, event_type, zone))
    booking, url = _demo_booking(db, settings, event_type)
    _print_booking(console, booking, url)
    calendar.show_booked(console)
    sent = outbox.deliver_due(
        db, transport_from_settings(settings.mail), "demo", outbox.sealing_box(settings)
    )
    say(
        console,
        f"Emails (.eml files: open them in any mail program): {settings.mail.directory}/"
        + (f" ({sent} new)" if sent else ""),
    )
    say(
        console,
        f"The booking page: {settings.base_url}/b/{OWNER_SLUG}/coaching (book a package, "
        "then reschedule it through the link on the last page)",
    )
    _print_console_link(console, db, settings)
    if once:
        return
    console.print(
        "\n[bold]calsync is running[/bold]: the API and the poller (every 5 s). Change the "
        "calendar and watch the change being picked up."
    )
    calendar.show_how_to_change(console)
    _serve(settings, port, console, calendar.on_exit)


def _print_console_link(console: Console, db: Database, settings: Settings) -> None:
    """A one-time sign-in link to Ada's console (printed, not emailed: this is her machine)."""
    from calsync.access import sign_in as console_links

    owner = services.find_owner(db, OWNER_EMAIL)
    link, _ = console_links.issue_link(db, settings, owner.id)
    say(
        console,
        f"Ada's console (signs her in once, within {console_links.LINK_MINUTES} minutes): "
        f"[bold]{link}[/bold]\n  A new link later: {settings.base_url}/console/sign-in with "
        f"{OWNER_EMAIL} (the email lands in {settings.mail.directory}/)",
    )


def _prepare(db: Database, settings: Settings, calendar_url: str, console: Console) -> int:
    """Seed the calendar and register owner and calendar, once per demo folder."""
    existing = [
        c for c in services.list_calendars(db) if c.url.rstrip("/") == calendar_url.rstrip("/")
    ]
    if existing:
        return existing[0].id
    for name, data in seed_week(seed_monday()).items():
        put(calendar_url + name, data)
    add_demo_owner(db)
    (connection,) = services.add_caldav_calendar(
        db,
        settings,
        services.CalDAVRequest(
            OWNER_EMAIL, calendar_url, CALDAV_USER, CALDAV_PASSWORD, CalendarRole.BOTH
        ),
    )
    console.print(
        f"Seeded {calendar_url} with a week of events and connected it (id {connection.id})."
    )
    return connection.id


def _event_type(db: Database, calendar_id: int) -> EventType:
    """The demo's event type: hour-long coaching sessions in the owner's working hours."""
    try:
        return get_event_type(db, "coaching")
    except NotFoundError:
        pass
    return save_event_type(
        db,
        EventTypeSpec(
            owner_email=OWNER_EMAIL,
            slug="coaching",
            title="Coaching session",
            duration=timedelta(minutes=60),
            slot_step=timedelta(minutes=30),
            timezone=OWNER_ZONE,
            weekly_hours=parse_weekly_hours(["mon-fri 09:00-12:00,13:00-17:00"]),
            buffer_after=timedelta(minutes=15),
            minimum_notice=timedelta(hours=2),
            horizon_days=30,
            booking_calendar_id=calendar_id,
            price=Decimal("300"),
            page=PageOffer(
                public=True,
                packages=(PackageOffer(1, Decimal("120")), PackageOffer(3, Decimal("300"))),
                one_per_day=True,
                max_stakeholders=1,
            ),
            policy=ChangePolicy(
                cancel=ActionRule(Permission.UNTIL, timedelta(hours=24), ReasonRule.OPTIONAL),
                reschedule=ActionRule(Permission.UNTIL, timedelta(hours=12), ReasonRule.OFF),
                max_reschedules=2,
                # With payments (the CalDAV demo runs localstripe) the fee is paid by card on the
                # manage page; without, the page says it is due to the owner directly.
                reschedule_fee=Fee(FeeKind.FIXED, Decimal("15")),
                cancel_refund=Fee(FeeKind.PERCENT, Decimal("50")),
                text="Cancel up to 24 hours before a session (half of its price is refunded); "
                "reschedule up to 12 hours before, for 15.00 EUR a session.",
            ),
        ),
    )


def _demo_booking(db: Database, settings: Settings, event_type: EventType) -> tuple[Booking, str]:
    """A package of three sessions for a demo customer, on the next three free days."""
    with db.reading() as session:
        existing = session.scalars(
            select(Booking).where(Booking.status == BookingStatus.ACTIVE)
        ).first()
    if existing is not None:
        return get_booking(db, existing.id), links.current_link(settings, existing) or ""
    start = datetime.now(ZoneInfo(OWNER_ZONE))
    first_of_day: dict[date, datetime] = {}
    for slot in find_slots(db, event_type, start, start + timedelta(days=14)):
        local = slot.start.astimezone(ZoneInfo(OWNER_ZONE))
        if local.hour >= 14:  # afternoon in Berlin is morning for the customer in New York
            first_of_day.setdefault(local.date(), slot.start)
    starts = tuple(sorted(first_of_day.values())[:3])
    result = book(
        db,
        settings,
        BookingRequest(
            event_type.id,
            "Grace Hopper",
            "grace@example.org",
            starts,
            customer_timezone="America/New_York",
            stakeholders=("assistant@example.org",),
        ),
    )
    return result.booking, result.manage_url


def _print_booking(console: Console, booking: Booking, url: str) -> None:
    zone = ZoneInfo(booking.customer_timezone)
    console.print(
        f"\n[bold]Booked[/bold] {len(booking.sessions)} sessions for {booking.customer_name} "
        f"(booking {booking.id}), in her zone ({zone.key}):"
    )
    for s in booking.sessions:
        console.print(
            f"  {s.position}. {s.start.astimezone(zone):%a %d %b %H:%M} ({s.status.value})"
        )
    say(console, f"Her manage link: [bold]{url}[/bold]")


def _slots_table(db: Database, event_type: EventType, zone_name: str) -> Table:
    zone = ZoneInfo(zone_name)
    start = datetime.now(zone)
    slots = find_slots(db, event_type, start, start + timedelta(days=7))
    table = Table("day", "next free slots", title=f"{event_type.title}: free times in {zone_name}")
    by_day: dict[str, list[str]] = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        by_day.setdefault(f"{local:%a %d %b}", []).append(f"{local:%H:%M}")
    for day, starts in list(by_day.items())[:4]:
        table.add_row(day, " ".join(starts))
    return table


def _sync_line(result: PollResult) -> str:
    if result.error:
        return f"[red]sync failed:[/red] {result.error}"
    kind = "full sync" if result.full else "incremental poll"
    return f"{kind}: {result.upserted} event(s) new or changed, {result.removed} removed"


def _caldav_hints(console: Console, calendar_url: str, data_dir: Path) -> None:
    uid = f"example-{uuid.uuid4().hex[:8]}"
    example = data_dir / "example-event.ics"
    example.write_text(example_event(uid), newline="")
    console.print("To add an event tomorrow 10:00-11:00, in another terminal:\n")
    say(console, f"  curl -u demo:demo -T {example} {calendar_url}{uid}.ics")
    say(console, f"\nAny CalDAV client works too: {calendar_url} (user demo, password demo).")


def _serve(settings: Settings, port: int, console: Console, on_exit: str) -> None:
    key = settings.admin_api_key
    say(
        console,
        f"\nAPI docs: [bold]{settings.base_url}/api/docs[/bold] (admin key: {key})\n"
        f"  curl -H 'Authorization: Bearer {key}' "
        f"'{settings.base_url}/api/event-types/1/availability?tz=America/New_York'",
    )
    say(console, f"Ctrl-C stops the demo; {on_exit}\n")
    # The demo is a process entry point: the one place in sync/ that starts the web tier.
    from calsync.web.server import run_server

    configure_logging(settings)
    run_server(settings, host="127.0.0.1", port=port, run_poller=True)
