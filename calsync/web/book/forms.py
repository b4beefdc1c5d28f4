"""What the booking page's steps send, read strictly.

The choosing steps are GETs (nothing changes; the picks travel in the query as ``pick``). The
submit is one POST, checked in order: the origin (as the manage page's, ``manage/forms.py``),
the honeypot field (a person never sees it, so filled means a robot), the idempotency key
made when the details step was rendered, and the anti-CSRF token, an HMAC of that key and the
event type, so a form is good for that event type and that submit only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from calsync.bookings.packages import EMAIL
from calsync.config import Settings
from calsync.limits import text_problem
from calsync.store.models import EventType
from calsync.web.manage.forms import (
    Fields,
    FormProblems,
    FormRefused,
    Purpose,
    csrf_token,
    idempotency_key,
    parse_instant,
    small_int,
)

HONEYPOT = "website"
MAX_NAME = 200
MAX_EMAIL = 320
MAX_NOTES = 2000


def book_csrf(settings: Settings, event_type: EventType, key: str) -> str:
    return csrf_token(settings, f"book\x00{event_type.id}\x00{key}", Purpose.BOOK)


def check_submit(settings: Settings, event_type: EventType, fields: Fields) -> str:
    """The submit's idempotency key, once the honeypot and the CSRF token pass."""
    if fields.get(HONEYPOT):
        raise FormRefused(400, "This form could not be sent. Nothing was booked.")
    key = idempotency_key(fields)
    given = fields.get("csrf") or ""
    if not given or given != book_csrf(settings, event_type, key):
        raise FormRefused(
            403,
            "This form could not be checked (it may be an old copy of the page), so nothing "
            "was booked. Go back to the booking page, reload it and try again.",
        )
    return key


def package_size(fields: Fields, sizes: list[int]) -> int | None:
    number = small_int(fields.get("package") or "")
    return number if number in sizes else None


def picks(fields: Fields) -> list[datetime]:
    """The chosen starts, in the order chosen; anything that is not an instant is dropped."""
    chosen: list[datetime] = []
    for raw in fields.getlist("pick")[:40]:
        value = parse_instant(raw) if raw else None
        if value is not None and value not in chosen:
            chosen.append(value)
    return chosen


_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def deliverable_form(address: str) -> bool:
    """Whether ``address`` has the form of a deliverable email address: the engine's syntax
    check, a local part of at most 64 characters without empty dot-separated parts, and a
    domain of valid DNS labels (internationalised ones in their IDNA form) under a top-level
    domain that is not a number. The form only: nothing is looked up in a request."""
    if not EMAIL.match(address):
        return False
    local, _, domain = address.rpartition("@")
    if len(local) > 64 or "" in local.split("."):
        return False
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    labels = ascii_domain.split(".")
    return (
        len(ascii_domain) <= 253
        and all(_LABEL.match(label) for label in labels)
        and len(labels[-1]) >= 2
        and not labels[-1].isdigit()
    )


@dataclass(frozen=True, slots=True)
class Details:
    name: str
    email: str
    stakeholders: tuple[str, ...]
    notes: str | None


def _one_line(value: str, label: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"{label} is too long: at most {limit} characters."
    problem = text_problem(value)
    return f"{label} {problem}." if problem else None


def details(fields: Fields, max_stakeholders: int) -> Details:
    """Name, email, stakeholders and notes; FormProblems by field."""
    problems: dict[str, str] = {}
    name = (fields.get("name") or "").strip()
    email = (fields.get("email") or "").strip()
    if not name:
        problems["name"] = "Please give your name."
    elif problem := _one_line(name, "Your name", MAX_NAME):
        problems["name"] = problem
    if problem := _one_line(email, "Your email address", MAX_EMAIL):
        problems["email"] = problem
    elif not deliverable_form(email):
        problems["email"] = "Please give an email address like name@example.org."
    others = [v.strip() for v in fields.getlist("stakeholder") if v.strip()]
    if len(others) > max_stakeholders:
        problems["stakeholder"] = f"You can add at most {max_stakeholders} other people."
    for other in others:
        if _one_line(other, "", MAX_EMAIL) or not deliverable_form(other):
            problems["stakeholder"] = f"{other[:80]!r} is not an email address."
    notes = (fields.get("notes") or "").replace("\r\n", "\n").strip()
    if len(notes) > MAX_NOTES:
        problems["notes"] = f"Your notes are too long: at most {MAX_NOTES} characters."
    elif notes and text_problem(notes, multi_line=True):
        problems["notes"] = "Your notes contain a character that cannot be kept."
    if problems:
        raise FormProblems(problems)
    return Details(name, email, tuple(others), notes or None)
