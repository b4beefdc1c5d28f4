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
from rich.markup import escape

from calsync.calendars.errors import CalendarError
from calsync.config import ConfigError
from calsync.policy.types import RulesError
from calsync.secretbox import SecretKeyMismatch
from calsync.sync import (
    cli_bookings,
    cli_calendars,
    cli_event_types,
    cli_outbox,
    cli_serve,
    cli_setup,
    services,
)
from calsync.sync.cli_common import app, err
from calsync.sync.db import DatabaseUnavailable
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
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=argv, standalone_mode=False)
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
