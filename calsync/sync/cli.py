"""The ``calsync`` command line (Typer + Rich).

This is one of the two places where errors become messages for people (the other is the web
error handler): ``main`` catches calsync's own exceptions and prints what happened and what
to do, without a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from calsync.calendars.busy import AllDayMode
from calsync.calendars.errors import CalendarError
from calsync.config import ConfigError, LogLevel, Settings, load_settings
from calsync.secretbox import SecretKeyMismatch
from calsync.sync import services
from calsync.sync.db import Database, DatabaseUnavailable
from calsync.sync.models import CalendarRole
from calsync.sync.poller import Poller, PollResult

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
owner_app = typer.Typer(no_args_is_help=True, help="Owners: the people whose calendars we keep.")
calendar_app = typer.Typer(no_args_is_help=True, help="Connected calendars.")
app.add_typer(owner_app, name="owner")
app.add_typer(calendar_app, name="calendar")

out = Console()
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CliState:
    config: Path | None = None
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            configure_logging(self._settings)
        return self._settings

    def db(self, *, migrated: bool = True) -> Database:
        if self._db is None:
            self._db = Database(self.settings.database_url)
        if migrated and not self._db.is_current():
            raise DatabaseUnavailable(
                f"the database {self._db.safe_url} is not set up yet: run `calsync init` first"
            )
        return self._db


state = CliState()


def configure_logging(settings: Settings) -> None:
    """calsync's own messages at the configured level; libraries only from WARNING up.

    Libraries (alembic, caldav) are chatty at INFO, and caldav logs some of its parse failures
    with tracebacks through the root logger; calsync reports each such failure as a sentence,
    so library detail is only shown when log_level is DEBUG.
    """
    debug = settings.log_level is LogLevel.DEBUG
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("calsync").setLevel(settings.log_level.value)
    if not debug:
        logging.getLogger("caldav").setLevel(logging.CRITICAL)


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Path of calsync.toml (default ./calsync.toml)."),
    ] = None,
) -> None:
    state.config = config


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _iso(value: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(zone) if zone else value).isoformat()


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date or datetime; a date means its midnight and a naive time is in ``zone``."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date or time: use e.g. 2026-12-01 or 2026-12-01T09:30+01:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


# -- set-up ------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the database, or upgrade it to this version of calsync."""
    db = state.db(migrated=False)
    revision = db.migrate()
    out.print(f"Database {db.safe_url} is ready (schema {revision}).")


@app.command()
def secret() -> None:
    """Print a new random secret_key for calsync.toml."""
    import secrets

    out.print(secrets.token_urlsafe(32))


@owner_app.command("add")
def owner_add(
    name: Annotated[str, typer.Option(help="The owner's name, as customers see it.")],
    email: Annotated[str, typer.Option(help="The owner's email address.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")],
    as_json: JsonOption = False,
) -> None:
    """Add an owner."""
    owner = services.add_owner(state.db(), name=name, email=email, timezone=timezone)
    if as_json:
        _print_json({"id": owner.id, "name": owner.name, "email": owner.email})
    else:
        out.print(f"Added owner {owner.name} <{owner.email}> (id {owner.id}).")


@owner_app.command("list")
def owner_list(as_json: JsonOption = False) -> None:
    """List owners."""
    owners = services.list_owners(state.db())
    rows = [{"id": o.id, "name": o.name, "email": o.email, "timezone": o.timezone} for o in owners]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "email", "timezone")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


# -- calendars -----------------------------------------------------------------------------


@calendar_app.command("add")
def calendar_add(
    owner: Annotated[str, typer.Option(help="Email of the owner the calendar belongs to.")],
    caldav: Annotated[str, typer.Option(help="CalDAV calendar URL, or server URL to discover.")],
    username: Annotated[str | None, typer.Option(help="CalDAV username.")] = None,
    password_env: Annotated[
        str | None,
        typer.Option(help="Name of the environment variable that holds the password."),
    ] = None,
    role: Annotated[CalendarRole, typer.Option(help="What the calendar is for.")] = (
        CalendarRole.CONFLICTS
    ),
    timezone: Annotated[
        str | None, typer.Option(help="Zone for floating times (default: server's, or owner's).")
    ] = None,
    all_day: Annotated[AllDayMode, typer.Option(help="How all-day events count.")] = (
        AllDayMode.FOLLOW_TRANSP
    ),
    as_json: JsonOption = False,
) -> None:
    """Connect a CalDAV calendar (or every calendar of the account at a server URL)."""
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise services.ServiceError(
                f"the environment variable {password_env} is not set: export it with the password"
            )
    request = services.CalDAVRequest(owner, caldav, username, password, role, timezone, all_day)
    connections = services.add_caldav_calendar(state.db(), state.settings, request)
    if as_json:
        _print_json([{"id": c.id, "url": c.url, "name": c.display_name} for c in connections])
        return
    for connection in connections:
        out.print(f"Connected calendar {connection.display_name!r} (id {connection.id}).")
    out.print("It is synced by `calsync sync --once`, `calsync worker` or `calsync serve`.")


@calendar_app.command("list")
def calendar_list(as_json: JsonOption = False) -> None:
    """List connected calendars with their sync state and last error."""
    db = state.db()
    counts = services.event_counts(db)
    rows = [
        {
            "id": c.id,
            "owner": c.owner.email,
            "name": c.display_name,
            "url": c.url,
            "role": c.role.value,
            "status": c.status.value,
            "events": counts.get(c.id, 0),
            "last_success_at": _iso(c.last_success_at),
            "next_poll_at": _iso(c.next_poll_at),
            "failures": c.failures,
            "error": c.last_error,
        }
        for c in services.list_calendars(db)
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "owner", "name", "role", "status", "events", "last sync", "error")
    for row in rows:
        style = "red" if row["status"] in ("failing", "auth_failed") else None
        table.add_row(
            str(row["id"]),
            row["owner"],
            row["name"],
            row["role"],
            row["status"],
            str(row["events"]),
            (row["last_success_at"] or "never")[:19],
            row["error"] or "",
            style=style,
        )
    out.print(table)


@calendar_app.command("remove")
def calendar_remove(calendar_id: int) -> None:
    """Disconnect a calendar and forget its mirrored events (nothing changes on the server)."""
    services.remove_calendar(state.db(), calendar_id)
    out.print(f"Removed calendar {calendar_id}.")


# -- syncing -------------------------------------------------------------------------------


def _describe(result: PollResult) -> str:
    if result.error:
        return f"calendar {result.connection_id}: [red]failed[/red]: {result.error}"
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
    calendar: Annotated[int | None, typer.Option(help="Only this calendar id.")] = None,
) -> None:
    """Poll calendars now (with --once), or keep polling them in the foreground."""
    db = state.db()
    poller = Poller(db, state.settings)
    ids = [services.get_calendar(db, calendar).id] if calendar is not None else None
    if not once:
        _run_poller(poller, ids)
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
    for result in results:
        out.print(_describe(result))
    if not results:
        out.print("Nothing to poll (no calendars, or another worker is polling them right now).")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _run_poller(poller: Poller, only: list[int] | None = None) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    poller.on_result = lambda result: (
        err.print(_describe(result))
        if (result.upserted or result.removed or result.error)
        else None
    )
    if only:
        # Polling chosen calendars in the foreground: simple loop, no scheduler.
        while not stop.wait(0):
            for result in poller.sync_now(only):
                err.print(_describe(result))
            stop.wait(poller.sync.poll_interval_seconds)
    else:
        poller.start()
        err.print(f"Worker {poller.worker_id} polling; Ctrl-C to stop.")
        stop.wait()
    poller.stop()


@app.command()
def worker() -> None:
    """Run the poller until stopped (many workers may share one PostgreSQL database)."""
    _run_poller(Poller(state.db(), state.settings))


@app.command()
def busy(
    calendar: Annotated[int, typer.Option(help="Calendar id (see `calsync calendar list`).")],
    from_: Annotated[str, typer.Option("--from", help="Start: date or ISO datetime.")],
    to: Annotated[str, typer.Option(help="End: date or ISO datetime.")],
    tz: Annotated[str | None, typer.Option(help="Zone to read and show times in.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Busy intervals of a calendar as calsync sees them."""
    db = state.db()
    connection = services.get_calendar(db, calendar)
    zone = ZoneInfo(services.check_timezone(tz or connection.owner.timezone))
    start, end = parse_instant(from_, zone), parse_instant(to, zone)
    intervals = services.busy(db, calendar, start, end)
    if as_json:
        _print_json([{"start": _iso(i.start, zone), "end": _iso(i.end, zone)} for i in intervals])
        return
    table = Table("start", "end", title=f"Busy in calendar {calendar} ({zone.key})")
    for interval in intervals:
        s, e = interval.start.astimezone(zone), interval.end.astimezone(zone)
        table.add_row(s.strftime("%a %Y-%m-%d %H:%M"), e.strftime("%a %Y-%m-%d %H:%M"))
    out.print(table)


@app.command()
def demo(
    once: Annotated[bool, typer.Option("--once", help="Seed, sync, print, and exit.")] = False,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(
        "demo-data"
    ),
) -> None:
    """Run everything embedded on this machine: a CalDAV server, a database, the poller."""
    from calsync.sync.demo import run_demo

    run_demo(data_dir, once=once, console=out)


# -- entry point ---------------------------------------------------------------------------

FRIENDLY_ERRORS = (
    ConfigError,
    services.ServiceError,
    CalendarError,
    DatabaseUnavailable,
    SecretKeyMismatch,
)


def main(argv: list[str] | None = None) -> None:
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except FRIENDLY_ERRORS as exc:
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
