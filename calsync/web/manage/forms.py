"""What the manage page's forms send, read strictly: anti-CSRF tokens, the origin of a change
request, idempotency keys, chosen sessions and times.

Every change is a POST that must pass, in order (after the rate limit and the token lookup):

1. the origin check: a browser that says the request comes from another site
   (``Sec-Fetch-Site: cross-site``), or an ``Origin`` that is not the configured base URL's, is
   refused. ``Origin: null`` is let through to the token check, because the page's own
   ``Referrer-Policy: no-referrer`` makes browsers send exactly that on its form posts;
2. the anti-CSRF token: HMAC-SHA256 keyed by ``secret_key`` over the link token's hash and the
   form's purpose, compared in constant time. Another site cannot read it from the page
   (no CORS, no framing), so it cannot forge the form;
3. the idempotency key (random, made when the confirm page was rendered) and the booking version
   the customer saw; the change engine uses both, so a replayed POST changes nothing twice and a
   POST from an outdated page changes nothing at all.

Parsing never raises past this module's own ``FormProblems``, which carries messages by field
for the page to show next to the field at fault. Text follows ``calsync.input_rules``: a reason
with a control character (other than tab and line breaks) is refused with a message on the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.datastructures import Headers, ImmutableMultiDict

from calsync.config import Settings
from calsync.limits import MULTI_LINE_KEPT, text_problem
from calsync.store.models import Booking

MAX_FORM_BYTES = 32 * 1024
MAX_FIELDS = 200
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class Purpose(StrEnum):
    """What a form does; its anti-CSRF token is good for that alone."""

    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    CHOOSE_CALENDARS = "choose calendars"  # the Google sign-in's calendar choice
    BOOK = "book"  # the public booking page's submit
    CONSOLE = "console"  # every form of the owner's console, tied to the console session
    PAY = "pay"  # the payment step of a reschedule with a fee


class Fields(Protocol):
    """Query parameters or a posted form: ``get`` the first value, ``getlist`` them all."""

    def get(self, key: str, /) -> str | None: ...

    def getlist(self, key: str, /) -> list[str]: ...


class FormRefused(Exception):
    """A change request refused before it reached the engine; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FormProblems(Exception):
    """The customer's choices have problems: field name → message (``form`` for the whole)."""

    def __init__(self, problems: dict[str, str], status: int = 422) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems
        self.status = status


# -- where a change request comes from ------------------------------------------------------------


def csrf_token(settings: Settings, token_hash: str, purpose: Purpose) -> str:
    """The form's anti-CSRF token: tied to what the page was opened with (``token_hash``: the
    manage link's hash, or the sign-in's sealed cookie) and to ``purpose``."""
    key = settings.require_secret_key().encode()
    message = f"calsync manage form\x00{token_hash}\x00{purpose.value}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_origin(settings: Settings, headers: Headers) -> None:
    """Raise FormRefused (403) for a request a browser says came from another site."""
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        raise FormRefused(403, _FOREIGN)
    origin = headers.get("origin")
    if origin is None or origin.strip() == "null":
        return
    base = urlsplit(settings.base_url)
    if origin.strip().rstrip("/").lower() != f"{base.scheme}://{base.netloc}".lower():
        raise FormRefused(403, _FOREIGN)


_FOREIGN = (
    "This request did not come from your booking page, so nothing was changed. Open the link "
    "from your confirmation email or calendar invitation and make the change there."
)


def check_csrf(settings: Settings, token_hash: str, purpose: Purpose, fields: Fields) -> None:
    """Raise FormRefused (403) unless the form carries this link's token for ``purpose``."""
    given = (fields.get("csrf") or "").encode()
    expected = csrf_token(settings, token_hash, purpose).encode()
    if not hmac.compare_digest(given, expected):
        raise FormRefused(
            403,
            "This form could not be checked (it may be from an older link), so nothing was "
            "changed. Go back to your booking, reload it and try again.",
        )


# -- reading a posted form --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostedForm:
    """A urlencoded form body, or why it could not be read (``problem``)."""

    fields: ImmutableMultiDict[str, str]
    problem: str | None = None


async def posted_form(request: Request) -> PostedForm:
    """The body of a form post, read up to ``MAX_FORM_BYTES``; never raises (the route decides
    what to answer, after checking the token)."""
    empty: ImmutableMultiDict[str, str] = ImmutableMultiDict()
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return PostedForm(empty, "This is not a form sent from the booking page.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return PostedForm(empty, "The form is too large.")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return PostedForm(empty, "The form could not be read.")
    return PostedForm(ImmutableMultiDict(pairs))


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(18)


def idempotency_key(fields: Fields) -> str:
    key = (fields.get("key") or "").strip()
    if not _KEY.match(key):
        raise FormProblems(
            {"form": "This form is incomplete. Go back to your booking and start again."}, 400
        )
    return key


def small_int(text: str) -> int | None:
    """A plain decimal number that fits an integer column, else None.

    ``str.isdigit`` alone also accepts digits like "²" that ``int`` refuses, and a long number
    would overflow the database's integer columns.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def expected_version(fields: Fields) -> int:
    version = small_int(fields.get("version") or "")
    if version is None:
        raise FormProblems(
            {"form": "This form is incomplete. Go back to your booking and start again."}, 400
        )
    return version


REASON_REFUSED = (
    "Your reason contains a character that cannot be kept (an invisible control character, "
    "perhaps pasted along with the text). Please check it and send it again."
)


def reason(fields: Fields) -> str | None:
    """The customer's reason; FormProblems (``reason``) when it has a control character."""
    text = reason_as_typed(fields)
    if text and text_problem(text, multi_line=True):
        raise FormProblems({"reason": REASON_REFUSED})
    return text


def reason_as_typed(fields: Fields) -> str | None:
    text = (fields.get("reason") or "").replace("\r\n", "\n").strip()
    return text or None


def shown_again(text: str | None) -> str | None:
    """A refused reason as the page shows it back to be corrected: without the characters
    that cannot be kept (the page never stores it)."""
    if text is None:
        return None
    kept = "".join(c for c in text if c in MULTI_LINE_KEPT or not text_problem(c))
    return kept or None


# -- chosen sessions and times ----------------------------------------------------------------


def start_field(session_id: int) -> str:
    return f"start-{session_id}"


def chosen_sessions(fields: Fields, booking: Booking) -> list[int]:
    """The ticked session ids, in package order. FormProblems when none is ticked or one is not
    this booking's (a tampered form)."""
    mine = {s.id: s.position for s in booking.sessions}
    chosen: set[int] = set()
    for raw in fields.getlist("session"):
        text = raw.strip()
        if not text:
            continue
        session_id = small_int(text)
        if session_id is None or session_id not in mine:
            raise FormProblems({"sessions": "A chosen session is not part of this booking."})
        chosen.add(session_id)
    if not chosen:
        raise FormProblems({"sessions": "Choose at least one session."})
    return sorted(chosen, key=mine.__getitem__)


def parse_instant(text: str) -> datetime | None:
    """An ISO-8601 instant with its UTC offset, or None."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.utcoffset() is not None else None


def chosen_starts(
    fields: Fields, session_ids: Sequence[int], labels: dict[int, str], *, partial: bool = False
) -> dict[int, datetime]:
    """The new start picked for each session. FormProblems names each session without a valid
    pick (unless ``partial``, which keeps what is there: a page of times being browsed)."""
    starts: dict[int, datetime] = {}
    problems: dict[str, str] = {}
    for session_id in session_ids:
        raw = fields.get(start_field(session_id))
        value = parse_instant(raw) if raw else None
        if value is not None:
            starts[session_id] = value
        elif raw and not partial:
            problems[start_field(session_id)] = f"{labels[session_id]}: that is not a time."
        elif not partial:
            problems[start_field(session_id)] = f"Choose a new time for {labels[session_id]}."
    if problems:
        raise FormProblems(problems)
    return starts
