"""``calsync calendar …``, ``sync``, ``worker`` and ``busy``: connected calendars and polling."""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from calsync.cli.common import (
    JsonOption,
    app,
    calendar_app,
    err,
    iso,
    out,
    parse_instant,
    print_json,
    progress_note,
    state,
)
from calsync.limits import MAX_INT32
from calsync.states import AllDayMode, CalendarRole, CancelMode

if TYPE_CHECKING:
    from calsync.config import Settings
    from calsync.store.db import Database
    from calsync.store.models import CalendarConnection
    from calsync.sync.poller import PollResult


@calendar_app.command("add")
def calendar_add(
    owner: Annotated[str, typer.Option(help="Email of the owner the calendar belongs to.")],
    caldav: Annotated[
        str | None, typer.Option(help="CalDAV calendar URL, or server URL to discover.")
    ] = None,
    username: Annotated[str | None, typer.Option(help="CalDAV username.")] = None,
    password_env: Annotated[
        str | None,
        typer.Option(help="Name of the environment variable that holds the password."),
    ] = None,
    role: Annotated[
        CalendarRole,
        typer.Option(
            help="conflicts: its busy time counts; bookings: sessions are written there; "
            "both (change later with `calsync calendar set ID --role`)."
        ),
    ] = CalendarRole.CONFLICTS,
    timezone: Annotated[
        str | None, typer.Option(help="Zone for floating times (default: server's, or owner's).")
    ] = None,
    all_day: Annotated[AllDayMode, typer.Option(help="How all-day events count.")] = (
        AllDayMode.FOLLOW_TRANSP
    ),
    cancel_mode: Annotated[
        CancelMode, typer.Option(help="Cancelled sessions: keep the event marked, or delete it.")
    ] = CancelMode.MARK,
    google: Annotated[
        bool, typer.Option("--google", help="Connect a Google calendar (asks for access).")
    ] = False,
    calendar_id: Annotated[
        str | None,
        typer.Option(
            help="Google calendar id: primary, or the id from its settings. Without it you "
            "choose from the account's calendars (primary when not at a terminal)."
        ),
    ] = None,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Google: print a sign-in link for the owner to open in any browser; they "
            "choose calendars on calsync's page (calsync serve/web must be running).",
        ),
    ] = False,
    google_token_file: Annotated[
        Path | None,
        typer.Option(
            help="Google: use this authorized-user token JSON instead of asking for access.",
            hidden=True,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Connect a CalDAV calendar (or every calendar of the account at a server URL), or with
    --google a Google calendar."""
    from calsync.calendars.google import account as google_connect
    from calsync.sync import connections as services

    if google or google_token_file is not None or web:
        if caldav is not None:
            raise services.ServiceError("use either --caldav or --google, not both")
        if web:
            if calendar_id is not None or google_token_file is not None:
                raise services.ServiceError(
                    "--web lets the owner choose calendars and roles on the sign-in page: "
                    "leave out --calendar-id and --google-token-file"
                )
            _print_sign_in_link(owner, as_json)
            return
        try:
            # Once, so the calendar choice below reads the same grant that will be stored.
            token = google_connect.normalize_token(_google_token(google_token_file), state.settings)
        except google_connect.TokenError as exc:
            raise services.ServiceError(str(exc)) from None
        connections = [
            services.add_google_calendar(
                state.db(),
                state.settings,
                owner,
                credentials_json=token,
                calendar_id=chosen,
                role=role,
                timezone=timezone,
                all_day=all_day,
                cancel_mode=cancel_mode,
            )
            for chosen in _google_calendar_ids(calendar_id, token)
        ]
        _print_added(connections, as_json)
        return
    if caldav is None:
        raise services.ServiceError("say which calendar to connect: --caldav URL or --google")
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise services.ServiceError(
                f"the environment variable {password_env} is not set: export it with the password"
            )
    request = services.CalDAVRequest(
        owner, caldav, username, password, role, timezone, all_day, cancel_mode
    )
    connections = services.add_caldav_calendar(state.db(), state.settings, request)
    _print_added(connections, as_json)


def _google_token(token_file: Path | None) -> str:
    """The token JSON: read from ``token_file``, or obtained by the console/loopback flow."""
    from calsync.calendars.google import account as google_connect
    from calsync.sync import connections as services

    if token_file is None:
        return google_connect.console_flow(state.settings)
    try:
        return token_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise services.ServiceError(f"cannot read the Google token file: {exc}") from None


def _print_sign_in_link(owner_email: str, as_json: bool) -> None:
    from calsync.sync import connections as services
    from calsync.web.signin import flow as google_signin

    owner = services.find_owner(state.db(), owner_email)
    link = google_signin.sign_in_url(state.settings, owner.id)
    if as_json:
        print_json({"owner_id": owner.id, "sign_in_url": link})
        return
    out.print(
        f"Send this link to {owner.email} only. It works for 15 minutes, while calsync "
        "serves its pages at base_url; it ends on a page where they choose their calendars:"
    )
    out.print(link, soft_wrap=True, highlight=False)
    out.print(
        f"The Google OAuth client must allow {google_signin.callback_url(state.settings)} as "
        "a redirect URI."
    )


def _google_calendar_ids(calendar_id: str | None, token: str) -> list[str]:
    """The calendar asked for; without one, the owner picks from the account's calendars at a
    terminal, and gets the primary calendar elsewhere (scripts)."""
    from calsync.calendars.google import account as google_connect
    from calsync.sync import connections as services

    if calendar_id is not None:
        return [calendar_id]
    if not sys.stdin.isatty():
        return ["primary"]
    try:
        choices = google_connect.account_calendars(state.settings, token)
    except google_connect.TokenError as exc:
        raise services.ServiceError(str(exc)) from None
    table = Table("#", "calendar", "id", "access")
    for number, calendar in enumerate(choices, 1):
        name = calendar.name + (" (main)" if calendar.primary else "")
        table.add_row(str(number), escape(name), escape(calendar.id), calendar.access_role)
    out.print(table)
    answer = typer.prompt("Calendars to connect (numbers, separated by commas)", default="1")
    picked = []
    for part in answer.replace(" ", "").split(","):
        if not part.isdecimal() or not 1 <= int(part) <= len(choices):
            raise services.ServiceError(f"{part!r} is not one of the numbers 1-{len(choices)}")
        picked.append(choices[int(part) - 1].id)
    return list(dict.fromkeys(picked))


def _print_added(connections: list[CalendarConnection], as_json: bool) -> None:
    if as_json:
        print_json([{"id": c.id, "url": c.url, "name": c.display_name} for c in connections])
        return
    for connection in connections:
        name = escape(repr(connection.display_name))
        out.print(f"Connected calendar {name} (id {connection.id}).")
    out.print("It is synced by `calsync sync --once`, `calsync worker` or `calsync serve`.")


@calendar_app.command("list")
def calendar_list(as_json: JsonOption = False) -> None:
    """List connected calendars with their sync state and last error."""
    from calsync.sync import connections as services

    db = state.db()
    counts = services.event_counts(db)
    rows = [_calendar_row(c, counts) for c in services.list_calendars(db)]
    if as_json:
        print_json(rows)
        return
    out.print(_calendar_table(rows, out.width))
    if any(row["error"] for row in rows):
        out.print("The whole error: `calsync calendar show ID` (or `calendar list --json`).")


def _calendar_row(c: CalendarConnection, counts: dict[int, int]) -> dict[str, Any]:
    return {
        "id": c.id,
        "owner": c.owner.email,
        "name": c.display_name,
        "url": c.url,
        "role": c.role.value,
        "status": c.status.value,
        "events": counts.get(c.id, 0),
        "last_success_at": iso(c.last_success_at),
        "next_poll_at": iso(c.next_poll_at),
        "failures": c.failures,
        "error": c.last_error,
    }


def _calendar_table(rows: list[dict[str, Any]], width: int) -> Table:
    """One line per calendar at any terminal width (80 columns too): long names and errors are
    cut short with "…"; ``calendar show`` and ``--json`` have them whole."""
    status_width = max([6, *(len(row["status"]) for row in rows)])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=2)
    table.add_column("status", no_wrap=True, min_width=status_width)
    table.add_column("role", no_wrap=True, min_width=9)
    table.add_column("calendar", overflow="ellipsis", no_wrap=True, max_width=18)
    table.add_column("last sync", no_wrap=True, min_width=11)
    # The error gets what is left of the width (3 columns of padding between columns), so the
    # columns before it keep theirs.
    rest = width - (2 + status_width + 9 + 18 + 11 + 5 * 3) - 3
    table.add_column("error", overflow="ellipsis", no_wrap=True, max_width=max(8, rest))
    for row in rows:
        style = "red" if row["status"] in ("failing", "auth_failed", "needs_reconnect") else None
        name = f"{row['name']} ({row['owner']})" if row["name"] else row["owner"]
        synced = row["last_success_at"]
        table.add_row(
            str(row["id"]),
            row["status"],
            row["role"],
            escape(name),
            f"{datetime.fromisoformat(synced).astimezone():%m-%d %H:%M}" if synced else "never",
            escape(" ".join((row["error"] or "").split())),
            style=style,
        )
    return table


@calendar_app.command("show")
def calendar_show(calendar_id: int, as_json: JsonOption = False) -> None:
    """One calendar in full: its URL, sync state and whole last error."""
    from calsync.sync import connections as services

    db = state.db()
    connection = services.get_calendar(db, calendar_id)
    data = _calendar_row(connection, services.event_counts(db))
    if as_json:
        print_json(data)
        return
    for name, value in data.items():
        shown = "none" if value is None else str(value)
        out.print(f"[bold]{name}[/bold]: {escape(shown)}", highlight=False, soft_wrap=True)


@calendar_app.command("set")
def calendar_set(
    calendar_id: int,
    role: Annotated[
        CalendarRole | None,
        typer.Option(help="conflicts (busy time counts), bookings (sessions go there) or both."),
    ] = None,
    cancel_mode: Annotated[
        CancelMode | None,
        typer.Option(help="Cancelled sessions: keep the event marked, or delete it."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The name calsync shows.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a connected calendar's role, cancel mode or name."""
    from calsync.sync import connections as services

    if role is None and cancel_mode is None and name is None:
        raise services.ServiceError("say what to change: --role, --cancel-mode or --name")
    changed = services.set_calendar(
        state.db(), calendar_id, role=role, cancel_mode=cancel_mode, name=name
    )
    if as_json:
        print_json(
            {
                "id": changed.id,
                "name": changed.display_name,
                "role": changed.role.value,
                "cancel_mode": changed.cancel_mode.value,
            }
        )
        return
    out.print(
        f"Calendar {changed.id} ({escape(changed.display_name)}): role {changed.role.value}, "
        f"cancel mode {changed.cancel_mode.value}.",
        highlight=False,
    )


@calendar_app.command("remove")
def calendar_remove(
    calendar_id: int,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove it even while bookings have events in it or it is an event type's "
            "booking calendar: the events stay on the server, calsync can no longer change "
            "them, and those event types lose their booking calendar.",
        ),
    ] = False,
) -> None:
    """Disconnect a calendar and forget its mirrored events (nothing changes on the server).
    Refused while bookings or event types rely on it, unless --force."""
    from calsync.sync import connections as services

    dependents = services.remove_calendar(state.db(), calendar_id, force=force)
    out.print(f"Removed calendar {calendar_id}.")
    if dependents:
        out.print(
            f"--force: {dependents.describe()}. Now {services.REMOVE_FORCE_OUTCOME}.",
            highlight=False,
        )


def _describe(result: PollResult) -> str:
    if result.error:
        return f"calendar {result.connection_id}: [red]failed[/red]: {escape(result.error)}"
    kind = "full sync" if result.full else "incremental"
    text = f"calendar {result.connection_id}: {kind}, {result.upserted} changed"
    text += f", {result.removed} removed"
    if result.problems:
        text += f", [yellow]{result.problems} unreadable event(s) skipped[/yellow]"
    if result.outcome.value == "lease_lost":
        text += " [yellow](another worker took over; result dropped)[/yellow]"
    return text


@app.command()
def sync(
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    calendar: Annotated[
        int | None, typer.Option(min=1, max=MAX_INT32, help="Only this calendar id.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --once: print the results as JSON.")
    ] = False,
) -> None:
    """Poll calendars now (with --once), or keep polling them in the foreground."""
    from calsync.bookings.polling import booking_poller
    from calsync.sync import connections as services

    if as_json and not once:
        raise typer.BadParameter("--json goes with --once", param_hint="--json")
    db = state.db()
    poller = booking_poller(db, state.settings)
    ids = [services.get_calendar(db, calendar).id] if calendar is not None else None
    if not once:
        poller.stop()
        _run_poller(db, state.settings, ids)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("fetching", total=None)

        def report(phase: str, done: int, total: int) -> None:
            progress.update(task, description=phase, completed=done, total=total or None)

        results = poller.sync_now(ids, progress=report)
    poller.stop()
    if as_json:
        print_json(
            [
                {
                    "calendar_id": r.connection_id,
                    "full": r.full,
                    "changed": r.upserted,
                    "removed": r.removed,
                    "unreadable": r.problems,
                    "outcome": r.outcome.value,
                    "error": r.error,
                }
                for r in results
            ]
        )
        if any(r.error for r in results):
            raise typer.Exit(1)
        return
    for result in results:
        out.print(_describe(result))
    if not results:
        out.print("Nothing to poll (no calendars, or another worker is polling them right now).")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _report(result: PollResult) -> None:
    if result.upserted or result.removed or result.error:
        progress_note(_describe(result))


def _run_poller(db: Database, settings: Settings, only: list[int] | None = None) -> None:
    from calsync.bookings.polling import booking_poller
    from calsync.worker import start_background

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if only:
        # Polling chosen calendars in the foreground: a simple loop, no scheduler.
        poller = booking_poller(db, settings)
        while not stop.is_set():
            for result in poller.sync_now(only):
                progress_note(_describe(result))
            stop.wait(settings.sync.poll_interval_seconds)
    else:
        poller = start_background(db, settings)
        poller.on_result = _report
        progress_note(f"Worker {poller.worker_id} polling; Ctrl-C to stop.")
        stop.wait()
    poller.stop()


@app.command()
def worker() -> None:
    """Run the poller until stopped (many workers may share one PostgreSQL database)."""
    from calsync.observe import metrics

    settings, db = state.settings, state.db()
    if settings.metrics_port:
        metrics.serve_on_port(db, settings.metrics_host, settings.metrics_port)
    _run_poller(db, settings)


@app.command()
def busy(
    calendar: Annotated[
        int, typer.Option(min=1, max=MAX_INT32, help="Calendar id (see `calsync calendar list`).")
    ],
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Start: date or ISO datetime; without an offset in --tz, else the owner's "
            "zone (a calendar has no event type).",
        ),
    ],
    to: Annotated[str, typer.Option(help="End: date or ISO datetime, as --from.")],
    tz: Annotated[
        str | None, typer.Option(help="Zone to read and show times in (default: the owner's).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Busy intervals of a calendar as calsync sees them."""
    from calsync.sync import connections as services

    db = state.db()
    connection = services.get_calendar(db, calendar)
    zone = ZoneInfo(services.check_timezone(tz or connection.owner.timezone))
    start, end = parse_instant(from_, zone), parse_instant(to, zone)
    intervals = services.busy(db, calendar, start, end)
    if as_json:
        print_json([{"start": iso(i.start, zone), "end": iso(i.end, zone)} for i in intervals])
        return
    table = Table("start", "end", title=f"Busy in calendar {calendar} ({zone.key})")
    for interval in intervals:
        s, e = interval.start.astimezone(zone), interval.end.astimezone(zone)
        table.add_row(s.strftime("%a %Y-%m-%d %H:%M"), e.strftime("%a %Y-%m-%d %H:%M"))
    out.print(table)
