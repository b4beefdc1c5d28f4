"""Console pages as HTML answers, with the manage page's headers, look and templates.

``console_page`` renders ``templates/console/<name>`` for a signed-in owner: the base template
(``console/base.html``) draws the navigation, the owner's name and the sign-out form, and every
template gets ``owner``, ``csrf`` (the token its forms must carry), ``console`` (the console's
path, e.g. ``/console``) and ``current`` (the navigation entry to mark). ``public_page`` is the
same without an owner (sign-in pages).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import Request, Response

from calsync.access.sessions import SignedInOwner
from calsync.config import Settings
from calsync.web.console.auth import form_token
from calsync.web.manage.render import answer, path_prefix, render, see_other


class Section(StrEnum):
    """The navigation's entries (``current`` in the templates)."""

    CALENDARS = "calendars"
    EVENT_TYPES = "event-types"
    BOOKINGS = "bookings"
    EMAIL_PROBLEMS = "email-problems"


NAVIGATION = [
    (Section.CALENDARS, "Calendars"),
    (Section.EVENT_TYPES, "Event types"),
    (Section.BOOKINGS, "Bookings"),
    (Section.EMAIL_PROBLEMS, "Email problems"),
]


def console_path(settings: Settings, path: str = "") -> str:
    """``/console`` + ``path`` under the base URL's path, e.g. ``console_path(s, "/calendars")``."""
    return f"{path_prefix(settings)}/console{path}"


def console_page(
    request: Request,
    settings: Settings,
    owner: SignedInOwner,
    template: str,
    *,
    current: Section | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    body = render(
        settings,
        f"console/{template}",
        owner=owner,
        csrf=form_token(settings, owner),
        console=console_path(settings),
        current=current.value if current else "",
        navigation=[(section.value, label) for section, label in NAVIGATION],
        **values,
    )
    return answer(request, body, status)


def public_page(
    request: Request, settings: Settings, template: str, *, status: int = 200, **values: Any
) -> Response:
    body = render(
        settings,
        f"console/{template}",
        owner=None,
        csrf="",
        console=console_path(settings),
        current="",
        navigation=[],
        **values,
    )
    return answer(request, body, status)


def message(
    request: Request,
    settings: Settings,
    owner: SignedInOwner | None,
    status: int,
    title: str,
    text: str,
    *,
    back: str | None = None,
) -> Response:
    """A short page saying what happened and what to do."""
    if owner is None:
        return public_page(
            request, settings, "message.html", status=status, title=title, text=text, back=back
        )
    return console_page(
        request, settings, owner, "message.html", status=status, title=title, text=text, back=back
    )


def go(settings: Settings, path: str) -> Response:
    """POST-redirect-GET to a console page (``path`` after ``/console``)."""
    return see_other(console_path(settings, path))
