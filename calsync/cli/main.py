"""The ``calsync`` command line (Typer + Rich).

The commands live in ``cli_setup`` (init, owners), ``cli_calendars`` (calendars, polling),
``cli_event_types`` (event types, availability) and ``cli_serve`` (processes, demo). This
module is one of the two places where errors become messages for people (the other is the web
error handler): ``main`` catches calsync's own exceptions and prints what happened and what
to do, without a traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape

from calsync.calendars.errors import CalendarError
from calsync.cli import bookings as cli_bookings
from calsync.cli import calendars as cli_calendars
from calsync.cli import event_types as cli_event_types
from calsync.cli import outbox as cli_outbox
from calsync.cli import serve as cli_serve
from calsync.cli import setup as cli_setup
from calsync.cli.common import app, err
from calsync.config import ConfigError
from calsync.input_rules import text_problem
from calsync.policy.types import RulesError
from calsync.secretbox import SecretKeyMismatch
from calsync.store.db import DatabaseUnavailable
from calsync.sync import connections as services
from calsync.sync.fresh_busy import BusyTimeNotFresh

COMMAND_MODULES = (
    cli_setup,
    cli_calendars,
    cli_event_types,
    cli_bookings,
    cli_outbox,
    cli_serve,
)

FRIENDLY_ERRORS = (
    ConfigError,
    services.ServiceError,
    CalendarError,
    DatabaseUnavailable,
    SecretKeyMismatch,
    RulesError,
)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for position, arg in enumerate(args, 1):
        # The input rule (calsync.input_rules), for every option at once: argv cannot carry
        # NUL, but other control characters would reach the database and the emails.
        problem = text_problem(arg, multi_line=True)
        if problem:
            err.print(f"[bold red]error:[/bold red] argument {position} {problem}", highlight=False)
            sys.exit(2)
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=args, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except BusyTimeNotFresh as exc:
        err.print(
            f"[bold red]error:[/bold red] calendar {exc.connection_id} is being polled right "
            "now; nothing was changed, try again in a moment",
            highlight=False,
        )
        sys.exit(1)
    except FRIENDLY_ERRORS as exc:
        # Messages hold text from outside (config keys like [google], servers' answers): not markup.
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # Newer typer raises its own copy of click's usage errors (a value out of range).
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
