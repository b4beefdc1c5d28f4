"""Connecting calendars from the console.

CalDAV, in two steps that reuse ``sync.connections``:

1. ``GET /console/calendars/connect``: the form (server address, username, password) and the
   Google button. ``POST /console/calendars/connect/caldav`` asks the server for its calendars
   (``calendars/caldav/discovery``); a problem comes back on the form in words, with the
   address and username kept and the password field empty.
2. The calendars found, each with a role to choose. What the next step needs (address,
   username, password, the calendars found) rides along **sealed** (encrypted and
   authenticated with ``secret_key``, bound to this owner, good for ``SEALED_MINUTES``), so
   the password is never in the page, and nothing is stored until the owner connects.
   ``POST /console/calendars/connect/caldav/choose`` connects each chosen calendar with
   ``add_caldav_calendar``, which stores the password encrypted at rest.

The password is never logged: this module logs ids only, and the form's fields are not
logged anywhere (a test reads every log record of a connect to check).

Google: ``GET /console/calendars/connect/google`` sends the browser to Google's consent
screen for this owner (``web/signin``): a plain link, since a form's redirect to another site
would break the page's ``form-action 'self'`` policy. Google sends the owner back to
``/oauth/google/callback``, where they choose calendars as with a link from the operator.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response

from calsync.access.sessions import SignedInOwner
from calsync.calendars.base import CalendarInfo
from calsync.calendars.errors import ProviderError
from calsync.config import ConfigError, Settings
from calsync.secretbox import SecretBox
from calsync.store.models import CalendarRole
from calsync.sync import connections as services
from calsync.web.console import wording
from calsync.web.console.auth import ConsoleFormDep, CurrentOwner
from calsync.web.console.rate_limit import limit_console_requests
from calsync.web.console.render import Section, console_page, go, message
from calsync.web.console.server_address import points_inside
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage.render import see_other
from calsync.web.signin import flow as google_signin

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]
SEALED_MINUTES = 30
EXAMPLE = "https://cloud.example.org/remote.php/dav/"


@dataclass(frozen=True, slots=True)
class CalDAVForm:
    """What the owner typed; ``password`` never goes back into a page."""

    server: str
    username: str
    password: str


@router.api_route("/console/calendars/connect", methods=READ)
def connect_page(request: Request, owner: CurrentOwner, settings: SettingsDep) -> Response:
    return _form_page(request, settings, owner)


def _form_page(
    request: Request,
    settings: Settings,
    owner: SignedInOwner,
    *,
    server: str = "",
    username: str = "",
    problems: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return console_page(
        request,
        settings,
        owner,
        "calendar_connect.html",
        current=Section.CALENDARS,
        status=status,
        server=server,
        username=username,
        problems=problems or {},
        example=EXAMPLE,
        google=bool(settings.google.client_id),
    )


@router.post("/console/calendars/connect/caldav")
def discover(request: Request, form: ConsoleFormDep, settings: SettingsDep) -> Response:
    typed = CalDAVForm(
        server=(form.fields.get("server") or "").strip(),
        username=(form.fields.get("username") or "").strip(),
        password=form.fields.get("password") or "",
    )
    problems = _problems(typed)
    if not problems and not settings.web.allow_private_caldav and points_inside(typed.server):
        log.info("console: owner %s: refused a non-public CalDAV address", form.owner.owner_id)
        problems["server"] = wording.PRIVATE_ADDRESS
    if not problems:
        from calsync.calendars.caldav.discovery import discover_calendars

        try:
            found = discover_calendars(
                typed.server,
                username=typed.username or None,
                password=typed.password or None,
                timeout=settings.sync.request_timeout_seconds,
            )
        except ProviderError as exc:
            log.info(
                "console: owner %s: CalDAV discovery failed: %s",
                form.owner.owner_id,
                type(exc).__name__,
            )
            problems["server"] = wording.provider_problem(exc)
        else:
            if not found:
                problems["server"] = (
                    "This is a CalDAV server, but it has no calendars for events. Make one in "
                    "your calendar app first."
                )
    if problems:
        return _form_page(
            request,
            settings,
            form.owner,
            server=typed.server,
            username=typed.username,
            problems=problems,
            status=422,
        )
    return _choose_page(request, settings, form.owner, typed, found)


def _problems(typed: CalDAVForm) -> dict[str, str]:
    problems: dict[str, str] = {}
    parts = urlsplit(typed.server)
    if not typed.server:
        problems["server"] = f"Give your CalDAV server's address, e.g. {EXAMPLE}"
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems["server"] = (
            f"Give a web address starting with https:// (or http://), e.g. {EXAMPLE}"
        )
    elif parts.password is not None or parts.username is not None:
        problems["server"] = (
            "Leave the username and password out of the address; type them into their own "
            "fields below."
        )
    elif len(typed.server) > 2000:
        problems["server"] = "This address is too long to be a calendar server's."
    if len(typed.username) > 200:
        problems["username"] = "The username can be at most 200 characters long."
    if len(typed.password) > 1000:
        problems["password"] = "The password can be at most 1000 characters long."
    return problems


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.require_secret_key(), purpose="console caldav form v1")


def _seal(
    settings: Settings, owner: SignedInOwner, typed: CalDAVForm, found: list[CalendarInfo]
) -> str:
    return _box(settings).encrypt(
        json.dumps(
            {
                "owner": owner.owner_id,
                "server": typed.server,
                "username": typed.username,
                "password": typed.password,
                "calendars": [[info.url, info.name] for info in found],
            }
        )
    )


def _choose_page(
    request: Request,
    settings: Settings,
    owner: SignedInOwner,
    typed: CalDAVForm,
    found: list[CalendarInfo],
    *,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    return console_page(
        request,
        settings,
        owner,
        "calendar_choose.html",
        current=Section.CALENDARS,
        status=status,
        server=typed.server,
        calendars=[info.name or info.url for info in found],
        sealed=_seal(settings, owner, typed, found),
        roles=list(wording.ROLES.items()),
        role_hint=wording.ROLE_HINT,
        problem=problem,
    )


@router.post("/console/calendars/connect/caldav/choose")
def choose(request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep) -> Response:
    opened = _box(settings).open_recent(form.fields.get("sealed") or "", SEALED_MINUTES * 60)
    values = json.loads(opened) if opened else None
    if values is None or values.get("owner") != form.owner.owner_id:
        return message(
            request,
            settings,
            form.owner,
            400,
            "Nothing was connected",
            f"This form is older than {SEALED_MINUTES} minutes (or did not come from this "
            "page), so nothing was connected. Start again from “Connect a calendar”.",
        )
    typed = CalDAVForm(values["server"], values["username"], values["password"])
    found = [CalendarInfo(url=url, name=name) for url, name in values["calendars"]]
    chosen: list[tuple[CalendarInfo, CalendarRole]] = []
    for index, info in enumerate(found):
        value = form.fields.get(f"use-{index}") or ""
        if value in {role.value for role in CalendarRole}:
            chosen.append((info, CalendarRole(value)))
    if not chosen:
        return _choose_page(
            request,
            settings,
            form.owner,
            typed,
            found,
            problem="Choose what at least one calendar is used for, then connect.",
            status=422,
        )
    problems = []
    for info, role in chosen:
        try:
            services.add_caldav_calendar(
                db,
                settings,
                services.CalDAVRequest(
                    owner_email=form.owner.email,
                    url=info.url,
                    username=typed.username or None,
                    password=typed.password or None,
                    role=role,
                ),
            )
        except services.ServiceError as exc:
            already = "connected already" in str(exc)
            problems.append(
                f"{info.name or info.url}: " + ("it is connected already." if already else str(exc))
            )
        except ProviderError as exc:
            problems.append(f"{info.name or info.url}: {wording.provider_problem(exc)}")
    log.info(
        "console: owner %s connected %s CalDAV calendar(s)",
        form.owner.owner_id,
        len(chosen) - len(problems),
    )
    if problems:
        return _choose_page(
            request,
            settings,
            form.owner,
            typed,
            found,
            problem=" ".join(problems),
            status=422,
        )
    return go(settings, "/calendars?done=connected")


@router.api_route("/console/calendars/connect/google", methods=READ)
def connect_google(request: Request, owner: CurrentOwner, settings: SettingsDep) -> Response:
    try:
        url = google_signin.sign_in_url(settings, owner.owner_id)
    except ConfigError:
        return message(
            request,
            settings,
            owner,
            503,
            "Google is not set up here",
            "This calsync server has no Google sign-in configured, so Google calendars cannot "
            "be connected yet. Ask your calsync administrator to set up Google ([google] "
            "client_id and client_secret).",
            back=None,
        )
    return see_other(url)
