"""Log context and the two log formats: ``text`` for people, ``json`` (one object a line).

The context (``request_id``, ``calendar_id``, ``booking_id``, ``change_id``) lives in a
contextvar: code binds it where the work starts (``log_context(calendar_id=7)``) and every
record logged inside, by any module, carries it. Thread pools that run request work (FastAPI's
sync routes) copy the context, so a request id follows the work the request causes.

Redaction stays where it was (the manage routes' filter on uvicorn's access log, the error
handlers): it rewrites the message itself, so it applies to both formats.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT_KEYS = ("request_id", "calendar_id", "booking_id", "change_id")

_context: ContextVar[dict[str, str | int] | None] = ContextVar("calsync_log_context", default=None)


@contextmanager
def log_context(**values: str | int | None) -> Iterator[None]:
    """Every record logged inside carries ``values`` (None values are left out)."""
    bound = {k: v for k, v in values.items() if v is not None}
    token = _context.set({**(_context.get() or {}), **bound})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str | int]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def json_formatter() -> logging.Formatter:
    """time, level, logger, message, then the context and any ``extra`` given to the call."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        # Uvicorn passes the parts of its access line as args, a tuple holding the client address.
        reserved_attrs=[*_RESERVED, "color_message"],
        json_ensure_ascii=False,
    )


# The LogRecord attributes that are not context (python-json-logger's default list, spelled out
# so a change of its default cannot start writing e.g. `args`).
_RESERVED = (
    "args",
    "asctime",
    "created",
    "exc_info",
    "exc_text",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "module",
    "msecs",
    "message",
    "msg",
    "name",
    "pathname",
    "process",
    "processName",
    "relativeCreated",
    "stack_info",
    "taskName",
    "thread",
    "threadName",
)


def json_handler(stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    return handler
