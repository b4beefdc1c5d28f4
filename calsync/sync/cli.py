"""The ``calsync`` command line (Typer + Rich).

The commands live in ``cli_setup`` (init, owners), ``cli_calendars`` (calendars, polling),
``cli_event_types`` (event types, availability) and ``cli_serve`` (processes, demo). This
module is one of the two places where errors become messages for people (the other is the web
error handler): ``main`` lets click print usage mistakes its usual way (usage, one error line,
exit code 2) and catches calsync's own exceptions, printing what happened and what to do
(exit code 1), never a traceback.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from calsync.sync import (  # noqa: F401  (importing a module registers its commands)
    cli_bookings,
    cli_calendars,
    cli_event_types,
    cli_outbox,
    cli_serve,
    cli_setup,
)
from calsync.sync.cli_common import app, err


def _friendly_errors() -> tuple[type[Exception], ...]:
    """calsync's own errors, whose messages are written for people. Imported only once one was
    raised: these modules are heavy, and `calsync --help` must not load them."""
    from calsync.calendars.errors import CalendarError
    from calsync.config import ConfigError
    from calsync.policy.types import RulesError
    from calsync.secretbox import SecretKeyMismatch
    from calsync.sync.db import DatabaseUnavailable
    from calsync.sync.services import ServiceError

    return (
        ConfigError,
        ServiceError,
        CalendarError,
        DatabaseUnavailable,
        SecretKeyMismatch,
        RulesError,
    )


def main(argv: list[str] | None = None) -> None:
    try:
        # Standalone mode: click prints usage mistakes (a missing option, a typo in a command
        # name, a value of the wrong type) with the usage line and exits 2, and turns
        # typer.Exit and Ctrl-C into exit codes.
        app(args=argv, prog_name="calsync", standalone_mode=True)
    except Exception as exc:
        if not isinstance(exc, _friendly_errors()):
            raise
        # Messages hold text from outside (config keys like [google], servers' answers): not markup.
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
