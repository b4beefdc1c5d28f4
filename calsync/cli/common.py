"""What every ``calsync`` command shares: the Typer apps, consoles, settings and database
of this invocation, and small formatting helpers.

Start-up: ``calsync --help`` and light commands must answer quickly, so the command modules
import only Typer, Rich and light modules (``calsync.states``, ``calsync.policy``) at the top;
the database, the calendar providers, the web server and the iCalendar libraries are imported
inside the commands (and helpers) that use them. ``tests/test_cli_usage.py`` checks this.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime, time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from calsync.config import Settings
    from calsync.store.db import Database

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Errors are turned into one-line messages by cli.main; no tracebacks for users.
    pretty_exceptions_enable=False,
    # Click's plain help: flags are shown as flags (Typer's Rich panels print "--json <bool>",
    # which invites "--json true"), and usage mistakes get click's usual "Usage: … Error: …".
    rich_markup_mode=None,
    help="calsync: booking links that move events in your own calendars.",
)
owner_app = typer.Typer(no_args_is_help=True, help="Owners: the people whose calendars we keep.")
calendar_app = typer.Typer(no_args_is_help=True, help="Connected calendars.")
event_type_app = typer.Typer(no_args_is_help=True, help="Event types: what you sell, and when.")
app.add_typer(owner_app, name="owner")
app.add_typer(calendar_app, name="calendar")
app.add_typer(event_type_app, name="event-type")

out = Console()
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class CliState:
    config: Path | None = None
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from calsync.config import load_settings, unknown_env_variables

            self._settings = load_settings(self.config)
            configure_logging(self._settings)
            for warning in unknown_env_variables(os.environ):
                err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        return self._settings

    def db(self, *, migrated: bool = True) -> Database:
        from calsync.store.db import Database, DatabaseUnavailable, missing_sqlite_file

        if self._db is None:
            missing = missing_sqlite_file(self.settings.database_url) if migrated else None
            if missing is not None:
                # Opening it would leave an empty file behind that looks like a database.
                raise DatabaseUnavailable(
                    f"there is no database at {missing} yet: run `calsync init` to create it"
                )
            self._db = Database(self.settings.database_url)
        if migrated and not self._db.is_current():
            raise DatabaseUnavailable(
                f"the database {self._db.safe_url} is not set up for this version of calsync: "
                "run `calsync init` to create or upgrade it"
            )
        return self._db


state = CliState()


def configure_logging(settings: Settings) -> None:
    """calsync's own messages at the configured level; libraries only from WARNING up.

    Libraries (alembic, caldav) are chatty at INFO, and caldav logs some of its parse failures
    with tracebacks through the root logger; calsync reports each such failure as a sentence,
    so library detail is only shown when log_level is DEBUG.
    """
    from rich.logging import RichHandler

    from calsync.config import LogFormat, LogLevel
    from calsync.observe import logs

    debug = settings.log_level is LogLevel.DEBUG
    handler: logging.Handler
    if settings.logging.format is LogFormat.JSON:
        handler = logs.json_handler()
        # uvicorn then logs through this handler too (server.py leaves its logging alone).
        for name in ("uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(settings.log_level.value)
    else:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        handler.addFilter(logs.ContextFilter())
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )
    logging.getLogger("calsync").setLevel(settings.log_level.value)
    if not debug:
        logging.getLogger("caldav").setLevel(logging.CRITICAL)


def _print_version(wanted: bool) -> None:
    if wanted:
        out.print(f"calsync {version('calsync')}", highlight=False)
        raise typer.Exit()


def progress_note(markup: str) -> None:
    """A line of a long-running command's progress: on stderr for people, or a log record
    when logs are JSON (so every line of the process stays one JSON object)."""
    from calsync.config import LogFormat

    if state.settings.logging.format is LogFormat.JSON:
        from rich.text import Text

        logging.getLogger("calsync.cli").info(Text.from_markup(markup).plain)
    else:
        err.print(markup)


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Path of calsync.toml (default ./calsync.toml)."),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state.config = config


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def iso(value: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(zone) if zone else value).isoformat()


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date or datetime; a date means its midnight and a naive time is in ``zone``."""
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        from calsync.sync.connections import ServiceError

        raise ServiceError(
            f"{text!r} is not a date or time: use e.g. 2026-12-01 or 2026-12-01T09:30+01:00"
        ) from None
    if not 1900 <= parsed.year <= 9000:
        from calsync.sync.connections import ServiceError

        # Arithmetic near year 1 or 9999 overflows; no calendar needs such dates.
        raise ServiceError(f"{text!r} is too far away: give a date between 1900 and 9000")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
