"""The one place where errors become HTTP answers: the API's translator (the manage page's words
are ``web/manage/wording.py``, the CLI's ``cli/messages.py``). The change engine's refusals carry
no words; ``change_words`` writes the API's sentence from their typed fields.

The web's own errors, beside the layers' trees (``sync/connections.py``, ``calendars/errors.py``):

    Unauthorized, ApiSwitchedOff, PollInProgress      (here)
    RateLimited                                       (web/manage/rate_limit.py)
    FormRefused, FormProblems                         (web/manage/forms.py: before the engine)
    SignInError                                       (web/signin/flow.py)

Every answer is JSON with a ``detail``: a list of ``{"field", "message"}`` when the request
itself is at fault field by field (422), else one sentence saying what happened and what to do.
No answer ever carries a traceback, the rejected input, or a secret.

    422  request validation (pydantic), InvalidInput, RulesError
    400  other ServiceError; provider AuthFailed, NotACalendar, NotFound (the URL or the
         credentials given are wrong: the caller must change them)
    401  Unauthorized (missing or wrong API key), with ``WWW-Authenticate: Bearer``; this
         and ApiSwitchedOff are answered by ``refusal`` in the app's key-checking middleware
    404  NotFoundError (unknown id)
    409  AvailabilityUnknown, BusyTimeNotFresh (another worker is polling a conflict calendar
         and it could not be read alongside: try again in a moment), PollInProgress,
         provider Conflict, StaleBooking (the booking
         changed since the caller read it), ReplayMismatch (an idempotency key reused for
         another request), SlotTaken (a chosen time is no longer free: ``start`` names it,
         and ``session_id`` the session when moving one)
    422  also ChangeRefused (the change breaks a rule), naming its field
    429  RateLimited (the manage page's limits), with ``Retry-After``
    502  provider Unavailable and any other ProviderError (the calendar server failed us)
    503  ApiSwitchedOff (no admin_api_key), ConfigError (a setting the request needs is
         missing), the database cannot be used (OperationalError)
    500  anything else: answered with one sentence (the server logs the traceback)

The customer's manage page (``/m/…``) gets the same statuses as short HTML pages with its
security headers instead of JSON; its routes answer the errors a customer can fix (a time
taken meanwhile, a missing reason) themselves, on the page the customer came from.

AvailabilityUnknown is 409, not 503: it is about the state of one event type's calendars (one
has never been synced), not about the service being down. A 503 would look like an outage to
load balancers and monitors and invite blind retries, while the fix is an action
(``POST /api/calendars/{id}/sync``, or waiting for the poller).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError

from calsync.bookings.changes import ChangeRefused, ReplayMismatch, StaleBooking, TimeTaken
from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput
from calsync.bookings.owner_words import OwnerSpelling, owner_refusal
from calsync.bookings.packages import SlotTaken
from calsync.bookings.plan import ChangeField, Refusal
from calsync.calendars.errors import (
    AuthFailed,
    Conflict,
    NotACalendar,
    NotFound,
    ProviderError,
)
from calsync.config import ConfigError
from calsync.policy.types import RulesError
from calsync.store.db import DatabaseUnavailable
from calsync.sync.connections import NotFoundError, ServiceError
from calsync.sync.fresh_busy import BusyTimeNotFresh
from calsync.web.manage.rate_limit import RateLimited
from calsync.web.manage.render import message_page

log = logging.getLogger(__name__)

# The services name a few fields by their domain names; the API spells them in its own units.
API_FIELD_NAMES = {
    "duration": "duration_minutes",
    "slot_step": "slot_step_minutes",
    "buffer_before": "buffer_before_minutes",
    "buffer_after": "buffer_after_minutes",
    "minimum_notice": "minimum_notice_minutes",
    "horizon": "horizon_days",
    "policy.cancel.notice": "policy.cancel.notice_minutes",
    "policy.reschedule.notice": "policy.reschedule.notice_minutes",
}

Handler = Callable[[Request, Exception], Awaitable[Response]]

_PYDANTIC_SUBJECT = re.compile(
    r"^(Input|String|List|Dictionary|Value|Decimal input|Decimal|Object) should "
)


# -- errors raised by the web layer itself ------------------------------------------------------


class Unauthorized(Exception):
    """The request has no API key, or the wrong one."""


class ApiSwitchedOff(Exception):
    """No admin_api_key is configured, so the admin API refuses every request."""


class PollInProgress(Exception):
    """Another worker is polling the calendar right now."""


# -- rendering ------------------------------------------------------------------------------------


def problems_response(problems: Iterable[tuple[str, str]]) -> JSONResponse:
    detail = [{"field": field, "message": message} for field, message in problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def _in_api_terms(problems: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Service problems, with their fields named as the API names them."""
    return [(API_FIELD_NAMES.get(field, field), message) for field, message in problems]


def message_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message}, headers=headers)


def _field(location: Sequence[int | str]) -> str:
    """``("body", "weekly_hours", "mon", 0, "end")`` → ``weekly_hours.mon.0.end``."""
    parts = list(location)
    source = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else None
    names = [str(part) for part in parts if part != "[key]"]
    return ".".join(names) or str(source or "body")


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    location = error["loc"]
    if kind == "missing":
        return "a JSON body is required" if tuple(location) == ("body",) else "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request (check its spelling)"
    if kind == "json_invalid":
        return f"is not valid JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _PYDANTIC_SUBJECT.sub("must ", message)


def validation_problems(errors: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pydantic's errors as (field, message); the rejected input is never repeated."""
    problems = []
    for error in errors:
        location = error["loc"]
        # A JSON syntax error's location ends in a character offset, not a field.
        field = "body" if error["type"] == "json_invalid" else _field(location)
        problems.append((field, _message(error)))
    return problems


# -- handlers -------------------------------------------------------------------------------------


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problems_response(validation_problems(exc.errors()))


async def _invalid_input(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return problems_response(_in_api_terms(exc.problems))


async def _rules_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RulesError)
    return problems_response(_in_api_terms([(exc.field, exc.message)]))


def _redact(text: str) -> str:
    # Imported here: routes.manage imports this module (through routes.deps).
    from calsync.web.manage.routes import redact_tokens

    return redact_tokens(text)


def _logged_path(request: Request) -> str:
    """The request's path as a log line may show it: a manage token becomes its short hash,
    as in the access log (the path never holds the sign-in callback's query)."""
    return _redact(request.url.path)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(404, str(exc))


async def _availability_unknown(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(409, str(exc))


async def _busy_time_not_fresh(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BusyTimeNotFresh)
    return message_response(
        409,
        f"calendar {exc.connection_id} is being updated right now, so its busy time could not "
        "be checked and nothing was changed; try again in a moment",
    )


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(400, str(exc))


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    if isinstance(exc, AuthFailed | NotACalendar | NotFound):
        return message_response(400, str(exc))
    if isinstance(exc, Conflict):
        return message_response(409, str(exc))
    log.warning("%s %s: calendar server failed: %s", request.method, _logged_path(request), exc)
    return message_response(502, str(exc))


# The change engine's fields as the API's bodies name them (reschedule: ``moves``).
_CHANGE_FIELDS = {
    ChangeField.SESSIONS: "moves",
    ChangeField.STARTS: "moves",
    ChangeField.REASON: "reason",
}
_CANCEL_FIELDS = {ChangeField.SESSIONS: "session_ids", ChangeField.REASON: "reason"}


# How the admin API spells what differs between the owner's faces.
_SPELLING = OwnerSpelling(
    force='"force": true',
    force_verb="send",
    stale=(
        "this booking changed since you read it (expected_version is old); read it again and retry"
    ),
    replay="this idempotency_key was already sent with another request; use a new one",
    sessions="",
    reason="",
    no_event_type="the owner must move it",
    capitalise_policy=True,
)


def change_words(refusal: Refusal) -> str:
    """The API's sentence for a refusal of the change engine (the owner asked)."""
    return owner_refusal(refusal, _SPELLING)


async def _change_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChangeRefused)
    names = _CANCEL_FIELDS if request.url.path.endswith("/cancel") else _CHANGE_FIELDS
    field = names.get(exc.field, "body") if exc.field else "body"
    return problems_response([(field, change_words(exc.refusal))])


async def _change_conflict(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StaleBooking | ReplayMismatch)
    return message_response(409, change_words(exc.refusal))


async def _slot_taken(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SlotTaken)
    words = change_words(exc.refusal) if isinstance(exc, TimeTaken) else str(exc)
    content: dict[str, object] = {"detail": words, "start": exc.start.isoformat()}
    if exc.session_id is not None:
        content["session_id"] = exc.session_id
    return JSONResponse(status_code=409, content=content)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(409, str(exc))


async def _rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return message_response(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


async def _poll_in_progress(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(409, str(exc))


def refusal(exc: Unauthorized | ApiSwitchedOff) -> JSONResponse:
    """The answer to a request refused by the API key check."""
    if isinstance(exc, Unauthorized):
        return message_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
    return message_response(503, str(exc))


async def _unconfigured(_request: Request, exc: Exception) -> JSONResponse:
    return message_response(503, str(exc))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message can name the host and user; it goes to the log only.
    log.error(
        "%s %s: database unavailable: %s",
        request.method,
        _logged_path(request),
        _redact(str(exc)),  # its SQL parameters may hold what a customer typed
    )
    return message_response(
        503, "the database cannot be used right now (the server log says why); try again shortly"
    )


async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, and the server logs its traceback.
    return message_response(500, "internal error: the server log has the details")


# -- the manage page: the same answers as pages -------------------------------------------------

CUSTOMER_PAGES = {
    429: (
        "Too many requests",
        "There have been many requests from here in a short time. Nothing was changed; please "
        "wait a minute and try again.",
    ),
    503: (
        "Temporarily unavailable",
        "The booking service cannot be used right now. Nothing was changed; please try again "
        "in a few minutes.",
    ),
}
SOMETHING_WRONG = (
    "Something went wrong",
    "Something went wrong on our side, and nothing was changed. Please try again in a few "
    "minutes; if it keeps happening, contact the person you booked with.",
)
_PASSED_ON = ("Retry-After",)


SIGN_IN_WRONG = (
    "Something went wrong",
    "Something went wrong, and no calendar was connected. Please open your sign-in link "
    "again in a few minutes, or ask for a new one.",
)


CONSOLE_WRONG = (
    "Something went wrong",
    "Something went wrong on our side. Go back and look whether your change was made; if not, "
    "try again in a few minutes. If it keeps happening, tell your calsync administrator.",
)


def _for_customers(handler: Handler) -> Handler:
    """``handler``, answering the browser pages (the manage page, the Google sign-in, the
    owner's console) with a
    page instead of JSON."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        path = request.scope.get("path", "").removeprefix(request.scope.get("root_path", ""))
        if path.startswith("/m/"):
            fallback = SOMETHING_WRONG
        elif path.startswith("/oauth/"):
            fallback = SIGN_IN_WRONG
        elif path == "/console" or path.startswith("/console/"):
            fallback = CONSOLE_WRONG
        else:
            return response
        title, message = CUSTOMER_PAGES.get(response.status_code, fallback)
        headers = {k: response.headers[k] for k in _PASSED_ON if k in response.headers}
        settings = request.app.state.settings
        return message_page(
            request, settings, response.status_code, title, message, headers=headers
        )

    return handle


def install(app: FastAPI) -> None:
    """Register the handlers; Starlette picks the one for the most specific class."""
    handlers: dict[type[Exception], Handler] = {
        RequestValidationError: _request_invalid,
        InvalidInput: _invalid_input,
        ChangeRefused: _change_refused,
        SlotTaken: _slot_taken,
        StaleBooking: _change_conflict,
        ReplayMismatch: _change_conflict,
        RateLimited: _rate_limited,
        RulesError: _rules_error,
        NotFoundError: _not_found,
        AvailabilityUnknown: _availability_unknown,
        BusyTimeNotFresh: _busy_time_not_fresh,
        ServiceError: _service_error,
        ProviderError: _provider_error,
        PollInProgress: _poll_in_progress,
        ConfigError: _unconfigured,
        DatabaseUnavailable: _database_down,
        OperationalError: _database_down,
        Exception: _unexpected,
    }
    for error_class, handler in handlers.items():
        app.add_exception_handler(error_class, _for_customers(handler))
