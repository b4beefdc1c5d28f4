"""The ``calsync`` command line (Typer + Rich).

The commands live in ``setup`` (init, owners), ``calendars`` (calendars, polling),
``event_types`` (event types, availability), ``bookings``, ``outbox`` and ``serve``
(processes, demo), each a module of ``calsync.cli``. Errors become one-line messages in
``cli/messages.py`` (the web's are ``web/errors.py`` and ``web/manage/wording.py``): ``main``
lets click print usage mistakes its usual way (usage, one error line, exit code 2) and catches
calsync's own exceptions, printing what happened and what to do (exit code 1), never a
traceback.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from calsync.cli import (  # noqa: F401  (importing a module registers its commands)
    bookings,
    calendars,
    event_types,
    outbox,
    payments,
    serve,
    setup,
)
from calsync.cli.common import app, err
from calsync.limits import text_problem


def _friendly_errors() -> tuple[type[Exception], ...]:
    """calsync's own errors, whose messages are written for people. Imported only once one was
    raised: these modules are heavy, and `calsync --help` must not load them."""
    from calsync.calendars.errors import CalendarError
    from calsync.config import ConfigError
    from calsync.policy.types import RulesError
    from calsync.secretbox import SecretKeyMismatch
    from calsync.store.db import DatabaseUnavailable
    from calsync.sync.connections import ServiceError
    from calsync.sync.fresh_busy import BusyTimeNotFresh

    return (
        BusyTimeNotFresh,
        ConfigError,
        ServiceError,
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
        # Standalone mode: click prints usage mistakes (a missing option, a typo in a command
        # name, a value of the wrong type or out of range) with the usage line and exits 2, and
        # turns typer.Exit and Ctrl-C into exit codes.
        app(args=args, prog_name="calsync", standalone_mode=True)
    except Exception as exc:
        if not isinstance(exc, _friendly_errors()):
            raise
        # Messages hold text from outside (config keys like [google], servers' answers): not markup.
        err.print(f"[bold red]error:[/bold red] {escape(_message(exc))}", highlight=False)
        sys.exit(1)


def _message(exc: Exception) -> str:
    from calsync.cli.messages import message

    return message(exc)
