"""The console's routers and the handlers of its own errors, put on the app by ``install``.

A page module of the console holds an ``APIRouter`` (``include_in_schema=False``, the rate-limit
dependency) and is listed in ``PAGE_MODULES``; ``install`` includes each router and answers
the console's errors: ``SignInNeeded`` → 303 to the sign-in page, ``ConsoleRefused`` → its
status and message, ``NotYours`` → the console's 404 page (also every other path under
``/console``, by a catch-all route included after the page modules).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from calsync.web.console import (
    bookings,
    calendars,
    connect,
    email_problems,
    event_types,
    sign_in,
)
from calsync.web.console.auth import ConsoleRefused, SignInNeeded, signed_in_owner
from calsync.web.console.isolation import NotYours
from calsync.web.console.rate_limit import install_limits, limit_console_requests
from calsync.web.console.render import console_path, message
from calsync.web.manage.render import see_other

# connect before calendars: /console/calendars/connect is not a calendar's id (event_types
# orders its own /new before /{id}).
PAGE_MODULES = (sign_in, connect, calendars, event_types, bookings, email_problems)

NOT_FOUND = (
    "Not found",
    "There is nothing here, or it is not yours to see. Use the navigation to find what you "
    "were looking for.",
)


def install(app: FastAPI) -> None:
    install_limits(app)
    for module in PAGE_MODULES:
        router: APIRouter = module.router
        app.include_router(router)
    # Last: any other path under /console gets the console's 404 page, not the API's JSON.
    app.include_router(_anything_else)
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.add_exception_handler(ConsoleRefused, _refused)
    app.add_exception_handler(NotYours, _not_yours)


_anything_else = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])


@_anything_else.api_route("/console/{rest:path}", methods=["GET", "HEAD", "POST"])
def _not_a_page(rest: str) -> Response:
    raise NotYours()


def _sign_in_needed(request: Request, _exc: Exception) -> Response:
    settings = request.app.state.settings
    return see_other(console_path(settings, "/sign-in"))


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefused)
    settings = request.app.state.settings
    owner = signed_in_owner(request, request.app.state.db, settings)
    return message(request, settings, owner, exc.status, "Nothing was changed", exc.message)


def _not_yours(request: Request, _exc: Exception) -> Response:
    settings = request.app.state.settings
    owner = signed_in_owner(request, request.app.state.db, settings)
    return message(request, settings, owner, 404, *NOT_FOUND)
