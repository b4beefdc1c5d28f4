"""Signing in to the console and out of it.

- ``GET /console/sign-in``: asks for the owner's email; ``POST`` emails a new link when the
  address is an owner's and answers the same page either way, before the email is composed
  (so neither the page nor its timing tells anybody who has an account). Counted against the
  shared rate limits per client address and per address asked for (``rate_limit.py``: a few a
  minute), so the form cannot be used to flood a mailbox.
- ``GET /console/link/<token>``: what the emailed link opens. It only reads (mail scanners open
  links): a button posts the sign-in. ``POST`` uses the link up, starts a server-side session
  and sets its cookie. Unknown, used and expired links get one page, with a way to get a new one.
- ``POST /console/sign-out``: ends the session server-side (the cookie, and any copy of it,
  opens nothing after) and clears the cookie.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from calsync.access import sessions
from calsync.access import sign_in as links
from calsync.token_hash import hash_token
from calsync.web.console.auth import (
    COOKIE,
    FOREIGN,
    ConsoleFormDep,
    ConsoleRefused,
    clear_session_cookie,
    session_times,
    set_session_cookie,
    signed_in_owner,
)
from calsync.web.console.rate_limit import limit_console_requests, limit_link_requests
from calsync.web.console.render import console_path, go, message, public_page
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage.forms import (
    FormRefused,
    PostedForm,
    Purpose,
    check_csrf,
    check_origin,
    csrf_token,
    posted_form,
)
from calsync.web.manage.render import see_other

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]
# The sign-in form belongs to no session yet: its token only proves the form is this site's.
SIGN_IN_FORM = "console sign-in form"


@router.api_route("/console", methods=READ)
def console_home(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    if signed_in_owner(request, db, settings) is None:
        return see_other(console_path(settings, "/sign-in"))
    return go(settings, "/calendars")


@router.api_route("/console/sign-in", methods=READ)
def sign_in_form(request: Request, settings: SettingsDep) -> Response:
    notice = "You are signed out." if request.query_params.get("out") == "1" else None
    return _form(request, settings, notice=notice)


def _form(
    request: Request,
    settings: SettingsDep,
    *,
    notice: str | None = None,
    sent_to: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    return public_page(
        request,
        settings,
        "sign_in.html",
        status=status,
        form_csrf=csrf_token(settings, SIGN_IN_FORM, Purpose.CONSOLE),
        notice=notice,
        sent_to=sent_to,
        problem=problem,
        minutes=links.LINK_MINUTES,
    )


@router.post("/console/sign-in")
def ask_for_link(
    request: Request,
    background: BackgroundTasks,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> Response:
    _check_public_form(request, settings, posted)
    email = (posted.fields.get("email") or "").strip()
    if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        return _form(
            request,
            settings,
            problem="Enter the email address calsync knows you by, like name@example.org.",
            status=422,
        )
    limit_link_requests(request, db, email)
    # After the answer is sent: how long the page took says nothing about the address either.
    background.add_task(links.request_link, db, settings, email)
    return _form(request, settings, sent_to=email)


@router.api_route("/console/link/{token}", methods=READ)
def open_link(token: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    if not links.link_is_open(db, token):
        return _link_not_valid(request, settings)
    return public_page(
        request,
        settings,
        "link.html",
        action=console_path(settings, f"/link/{token}"),
        form_csrf=csrf_token(settings, hash_token(token), Purpose.CONSOLE),
    )


@router.post("/console/link/{token}")
def use_link(
    token: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> Response:
    try:
        check_origin(settings, request.headers)
        check_csrf(settings, hash_token(token), Purpose.CONSOLE, posted.fields)
    except FormRefused:
        raise ConsoleRefused(403, FOREIGN) from None
    owner_id = links.redeem(db, token)
    if owner_id is None:
        return _link_not_valid(request, settings)
    # A session cookie from before (another owner on a shared browser) ends here too.
    earlier = request.cookies.get(COOKIE)
    if earlier:
        sessions.end(db, earlier)
    cookie = sessions.start(db, owner_id, session_times(settings))
    log.info("console: owner %s signed in", owner_id)
    response = go(settings, "/calendars")
    set_session_cookie(response, settings, cookie)
    return response


def _link_not_valid(request: Request, settings: SettingsDep) -> Response:
    return public_page(
        request,
        settings,
        "link_invalid.html",
        status=404,
        form_csrf=csrf_token(settings, SIGN_IN_FORM, Purpose.CONSOLE),
        minutes=links.LINK_MINUTES,
    )


@router.post("/console/sign-out")
def sign_out(request: Request, db: DbDep, settings: SettingsDep, form: ConsoleFormDep) -> Response:
    sessions.end(db, request.cookies.get(COOKIE, ""))
    log.info("console: owner %s signed out", form.owner.owner_id)
    response = see_other(console_path(settings, "/sign-in?out=1"))
    clear_session_cookie(response, settings)
    return response


def _check_public_form(request: Request, settings: SettingsDep, posted: PostedForm) -> None:
    try:
        check_origin(settings, request.headers)
        check_csrf(settings, SIGN_IN_FORM, Purpose.CONSOLE, posted.fields)
    except FormRefused:
        raise ConsoleRefused(403, FOREIGN) from None


__all__ = ["message", "router"]
