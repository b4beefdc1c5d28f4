"""Who is signed in, and whether a form really comes from the console: the dependencies every
console route uses.

- ``CurrentOwner`` (``current_owner``): the owner of the session named by the cookie, or
  ``SignInNeeded`` (answered with a redirect to the sign-in page). The session is server-side
  (``access/sessions.py``); the cookie is HttpOnly, SameSite=Lax, Secure when ``base_url`` is
  https, and only sent under ``<base path>/console``.
- ``ConsoleFormDep`` (``console_form``): for every POST. The owner as above, then the origin
  check of the manage page (``Sec-Fetch-Site: cross-site`` or a foreign ``Origin`` → 403), then
  the anti-CSRF token (the manage page's HMAC, purpose ``console``, over the session's hash), then
  the form's fields. A refusal is ``ConsoleRefused`` (403 page); nothing was changed.

Templates get the token as ``csrf`` (``render.console_page`` passes it to every page); a form
needs ``<input type="hidden" name="csrf" value="{{ csrf }}">``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import ImmutableMultiDict

from calsync.access import sessions
from calsync.access.sessions import SessionTimes, SignedInOwner
from calsync.config import Settings
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
from calsync.web.manage.render import path_prefix

COOKIE = "calsync_console"


class SignInNeeded(Exception):
    """No valid console session: the owner is sent to the sign-in page."""


class ConsoleRefused(Exception):
    """A console request refused before it changed anything; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def session_times(settings: Settings) -> SessionTimes:
    return SessionTimes(
        idle=timedelta(minutes=settings.web.console_idle_minutes),
        absolute=timedelta(hours=settings.web.console_session_hours),
    )


def cookie_path(settings: Settings) -> str:
    return f"{path_prefix(settings)}/console"


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.web.console_session_hours * 3600,
        path=cookie_path(settings),
        secure=settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE,
        path=cookie_path(settings),
        secure=settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def signed_in_owner(request: Request, db: DbDep, settings: SettingsDep) -> SignedInOwner | None:
    """The owner signed in on this request, or None (for pages that also work signed out)."""
    token = request.cookies.get(COOKIE, "")
    return sessions.check(db, token, session_times(settings)) if token else None


def current_owner(request: Request, db: DbDep, settings: SettingsDep) -> SignedInOwner:
    """Dependency: the signed-in owner; raises SignInNeeded. Not async: it reads the
    database, so FastAPI runs it on a worker thread."""
    owner = signed_in_owner(request, db, settings)
    if owner is None:
        raise SignInNeeded()
    return owner


CurrentOwner = Annotated[SignedInOwner, Depends(current_owner)]


def form_token(settings: Settings, owner: SignedInOwner) -> str:
    """The anti-CSRF token of every console form for this session."""
    return csrf_token(settings, owner.session_hash, Purpose.CONSOLE)


@dataclass(frozen=True, slots=True)
class ConsoleForm:
    """A console POST that passed the checks: who sent it and what it holds."""

    owner: SignedInOwner
    fields: ImmutableMultiDict[str, str]


def console_form(
    request: Request,
    owner: CurrentOwner,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> ConsoleForm:
    """Dependency of every console POST; raises SignInNeeded or ConsoleRefused."""
    try:
        check_origin(settings, request.headers)
    except FormRefused:
        raise ConsoleRefused(403, FOREIGN) from None
    if posted.problem is not None:
        raise ConsoleRefused(400, f"{posted.problem} Nothing was changed; go back and try again.")
    try:
        check_csrf(settings, owner.session_hash, Purpose.CONSOLE, posted.fields)
    except FormRefused:
        raise ConsoleRefused(403, STALE_FORM) from None
    return ConsoleForm(owner, posted.fields)


ConsoleFormDep = Annotated[ConsoleForm, Depends(console_form)]

FOREIGN = (
    "This request did not come from your calsync console, so nothing was changed. Open the "
    "console yourself and make the change there."
)
STALE_FORM = (
    "This form could not be checked (it may be from before you last signed in), so nothing "
    "was changed. Go back, reload the page and try again."
)
