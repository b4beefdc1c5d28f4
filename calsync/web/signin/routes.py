"""Connecting Google calendars from a browser: the owner's sign-in and calendar choice.

- ``POST /api/owners/{id}/google/sign-in`` (admin key): a Google sign-in link for the owner.
- ``GET /oauth/google/callback``: where Google sends the owner back. The grant is fetched,
  kept sealed in a short-lived cookie (HttpOnly, SameSite=Lax, only under ``/oauth/google``),
  and the owner's calendars are listed to choose from.
- ``POST /oauth/google/calendars``: connects the chosen calendars (a calendar connected before
  is reconnected) and clears the cookie.

Like the manage page, the pages carry the strict headers, answer in words an owner
understands, and only accept the form from this site (Origin/Sec-Fetch-Site and a token tied
to the cookie).
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from calsync.calendars.errors import ProviderError
from calsync.calendars.google import account as google_connect
from calsync.store.models import CalendarRole
from calsync.sync import connections as services
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage.forms import (
    FormRefused,
    PostedForm,
    Purpose,
    check_origin,
    csrf_token,
    posted_form,
)
from calsync.web.manage.render import answer, message_page, path_prefix, render
from calsync.web.schemas import NOT_FOUND, DbId
from calsync.web.signin import flow as google_signin

log = logging.getLogger(__name__)

api_router = APIRouter(prefix="/owners", tags=["owners"])
pages = APIRouter(prefix="/oauth/google", include_in_schema=False)

COOKIE = "calsync_google_grant"
ROLE_WORDS = {
    CalendarRole.CONFLICTS: "busy time",
    CalendarRole.BOOKINGS: "bookings",
    CalendarRole.BOTH: "busy time and bookings",
}


class SignInOut(BaseModel):
    sign_in_url: str
    callback_url: str
    expires_in_seconds: int


@api_router.post("/{owner_id}/google/sign-in", responses=NOT_FOUND)
def google_sign_in(owner_id: DbId, db: DbDep, settings: SettingsDep) -> SignInOut:
    """A link that signs the owner in with Google and lets them choose calendars to connect.

    Send it to the owner only: it works for 15 minutes. ``callback_url`` must be an
    authorized redirect URI of the OAuth client (type "Web application")."""
    owner = services.get_owner(db, owner_id)
    return SignInOut(
        sign_in_url=google_signin.sign_in_url(settings, owner.id),
        callback_url=google_signin.callback_url(settings),
        expires_in_seconds=google_signin.STATE_MAX_AGE,
    )


@pages.get("/callback")
def callback(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    state: str = "",
    code: str = "",
    error: str = "",
) -> Response:
    if error:
        why = (
            "You did not allow calsync to use your Google calendar"
            if error == "access_denied"
            else f"Google could not complete the sign-in ({error[:60]})"
        )
        return message_page(
            request,
            settings,
            400,
            "Google calendar not connected",
            f"{why}, so nothing was connected. To try again, ask for a new sign-in link.",
        )
    if not state or not code:
        return message_page(
            request,
            settings,
            400,
            "Sign-in incomplete",
            "This page is where Google sends you back after signing in; open the sign-in "
            "link you were sent instead.",
        )
    try:
        signed_in = google_signin.finish_sign_in(settings, state, code)
        owner = services.get_owner(db, signed_in.owner_id)
        calendars = google_connect.account_calendars(settings, signed_in.token)
    except (google_signin.SignInError, services.NotFoundError) as exc:
        return message_page(request, settings, 400, "Sign-in did not work", str(exc))
    except ProviderError as exc:
        log.warning("Google sign-in: listing calendars failed: %s", exc)
        return message_page(
            request,
            settings,
            502,
            "Google did not answer",
            "You are signed in, but Google did not list your calendars. Open the sign-in "
            "link again in a few minutes.",
        )
    sealed = google_signin.seal_grant(settings, signed_in)
    body = render(
        settings,
        "google_calendars.html",
        owner_name=owner.name,
        calendars=calendars,
        csrf=csrf_token(settings, sealed, Purpose.CHOOSE_CALENDARS),
        action=f"{path_prefix(settings)}/oauth/google/calendars",
    )
    response = answer(request, body)
    response.set_cookie(
        COOKIE,
        sealed,
        max_age=google_signin.GRANT_MAX_AGE,
        path=f"{path_prefix(settings)}/oauth/google",
        secure=settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@pages.post("/calendars")
def choose_calendars(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    posted: PostedForm = Depends(posted_form),
) -> Response:
    try:
        check_origin(settings, request.headers)
    except FormRefused as exc:
        return message_page(request, settings, exc.status, "Not connected", _FOREIGN)
    sealed = request.cookies.get(COOKIE, "")
    signed_in = google_signin.open_grant(settings, sealed) if sealed else None
    given = (posted.fields.get("csrf") or "").encode()
    if signed_in is None or not hmac.compare_digest(
        given, csrf_token(settings, sealed, Purpose.CHOOSE_CALENDARS).encode()
    ):
        return message_page(
            request,
            settings,
            403,
            "Sign-in expired",
            "Your Google sign-in on this page has expired (it lasts 30 minutes), so nothing "
            "was connected. Open a new sign-in link and choose your calendars again.",
        )
    chosen = _chosen(posted)
    if not chosen:
        return message_page(
            request,
            settings,
            422,
            "No calendar chosen",
            "Choose what at least one calendar is for, then connect. Go back to do so.",
        )
    owner = services.get_owner(db, signed_in.owner_id)
    connected: list[tuple[str, str]] = []
    problems: list[str] = []
    status = 200
    for calendar_id, role in chosen:
        try:
            connection = services.add_google_calendar(
                db,
                settings,
                owner.email,
                credentials_json=signed_in.token,
                calendar_id=calendar_id,
                role=role,
            )
        except services.ServiceError as exc:  # the choice itself cannot be made
            problems.append(f"{calendar_id}: {exc}")
            status = 422
            continue
        except ProviderError as exc:
            problems.append(f"{calendar_id}: {exc}")
            status = 502
            continue
        connected.append((connection.display_name or calendar_id, ROLE_WORDS[connection.role]))
    title = "Google calendars connected" if connected else "Nothing was connected"
    body = render(
        settings,
        "google_connected.html",
        title=title,
        connected=connected,
        problems=problems,
        console=f"{path_prefix(settings)}/console/calendars",
    )
    response = answer(request, body, 200 if connected else status)
    response.delete_cookie(COOKIE, path=f"{path_prefix(settings)}/oauth/google")
    return response


_FOREIGN = (
    "This request did not come from calsync's calendar page, so nothing was connected. Open "
    "your sign-in link again."
)


def _chosen(posted: PostedForm) -> list[tuple[str, CalendarRole]]:
    """``use:<calendar id>`` fields with a role; unknown values are ignored (not used)."""
    chosen = []
    for name, value in posted.fields.multi_items():
        if name.startswith("use:") and value in {role.value for role in CalendarRole}:
            chosen.append((name[4:], CalendarRole(value)))
    return chosen
