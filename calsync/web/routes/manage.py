"""The customer's manage page ``/m/<token>``; for now it shows the booking (Cancel and
Reschedule come next).

The token in the URL is the capability, so there is no login; what the page must not do is
leak it or tell anything about a token that does not work:

- unknown, revoked, expired, forged and truncated tokens get one page, byte for byte, with one
  status (404) and one set of headers; every token costs the same indexed lookup of its hash;
- GET and HEAD only read (mail scanners open links);
- no third-party anything, and nothing is built from the Host header (the page holds no
  absolute links at all; later ones come from ``settings.base_url``);
- ``Referrer-Policy: no-referrer`` keeps the URL out of other sites' logs, and the logs of this
  one only see a short hash of the token (``RedactManageTokens`` for uvicorn's access log).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Request, Response
from markupsafe import Markup

from calsync.policy.change_policy import (
    ActionRule,
    ChangePolicy,
    Permission,
    ReasonRule,
    policy_from_data,
)
from calsync.sync import links
from calsync.sync.models import Booking, BookingStatus, SessionStatus
from calsync.web.routes.deps import DbDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["manage page"], include_in_schema=False)

# Inline, allowed by its hash in the CSP: no stylesheet request, and no other style can run.
STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; padding: 1rem; }
main { max-width: 36rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 0 0 0.25rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
.owner, .zone { margin: 0; opacity: 0.8; }
ol { padding: 0; list-style: none; }
li.session { border: 1px solid #8886; border-radius: 0.5rem; padding: 0.6rem 0.8rem;
  margin-bottom: 0.5rem; }
.label { font-weight: 600; }
.status { display: inline-block; font-size: 0.85rem; padding: 0 0.5rem; border-radius: 1rem;
  border: 1px solid currentColor; }
.cancelled .when { text-decoration: line-through; }
.policy { white-space: pre-line; }
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
}

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STATUS_LABELS = {
    SessionStatus.BOOKED: "Booked",
    SessionStatus.RESCHEDULED: "Rescheduled",
    SessionStatus.CANCELLED: "Cancelled",
}


# -- what the page shows ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionView:
    label: str  # "Session 2 of 3", or "" for a single session
    when: str
    status: str  # the SessionStatus value, also the item's CSS class
    status_label: str


@dataclass(frozen=True, slots=True)
class PageView:
    title: str
    owner_name: str
    owner_email: str
    customer_name: str
    zone: str
    cancelled: bool
    sessions: list[SessionView]
    rules: list[str]
    policy_text: str


def _day(moment: datetime) -> str:
    return f"{WEEKDAYS[moment.weekday()]}, {MONTHS[moment.month - 1]} {moment.day}, {moment.year}"


def _clock(moment: datetime) -> str:
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def zone_city(name: str) -> str:
    """``America/New_York`` → ``New York``; ``UTC`` and ``Etc/…`` stay as they are."""
    if "/" not in name or name.startswith("Etc/"):
        return name
    return name.rsplit("/", 1)[1].replace("_", " ")


def zone_label(name: str, moment: datetime) -> str:
    """``New York time (GMT-5:00)``, with ``, DST`` while summer time is in force."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    gmt = f"GMT{sign}{hours}:{rest:02d}" if minutes else "GMT"
    dst = ", DST" if moment.dst() else ""
    city = zone_city(name)
    return f"{city if city in ('UTC', 'GMT') else city + ' time'} ({gmt}{dst})"


def format_span(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """``Thu, Dec 3, 2026, 10:30 AM – 11:30 AM, New York time (GMT-5:00)``."""
    start, end = start.astimezone(zone), end.astimezone(zone)
    until = _clock(end) if end.date() == start.date() else f"{_day(end)}, {_clock(end)}"
    return f"{_day(start)}, {_clock(start)} – {until}, {zone_label(zone.key, start)}"


def _duration_words(length: timedelta) -> str:
    minutes = int(length.total_seconds()) // 60

    def unit(count: int, name: str) -> str:
        return f"{count} {name}{'' if count == 1 else 's'}"

    if minutes and minutes % (24 * 60) == 0:
        return unit(minutes // (24 * 60), "day")
    hours, rest = divmod(minutes, 60)
    parts = ([unit(hours, "hour")] if hours else []) + ([unit(rest, "minute")] if rest else [])
    return " ".join(parts) or unit(0, "minute")


def _rule_line(verb: str, done: str, rule: ActionRule) -> str:
    if rule.permission is Permission.NEVER:
        return f"Sessions cannot be {done} online."
    if rule.permission is Permission.UNTIL and rule.notice is not None:
        line = f"You can {verb} a session up to {_duration_words(rule.notice)} before it starts."
    else:
        line = f"You can {verb} a session any time before it starts."
    return line + (" You will be asked for a reason." if rule.reason is ReasonRule.REQUIRED else "")


def policy_lines(policy: ChangePolicy) -> list[str]:
    """The cancel/reschedule rules in words (fees are for the policy text to explain)."""
    lines = [_rule_line("cancel", "cancelled", policy.cancel)]
    limit = policy.max_reschedules
    if limit == 0:
        return [*lines, "Sessions cannot be rescheduled online."]
    lines.append(_rule_line("reschedule", "rescheduled", policy.reschedule))
    if limit is not None and policy.reschedule.permission is not Permission.NEVER:
        times = "once" if limit == 1 else f"{limit} times"
        lines.append(f"Each session can be rescheduled at most {times}.")
    return lines


def page_view(booking: Booking) -> PageView:
    """What the page shows of ``booking`` (its sessions and owner must be loaded)."""
    zone = ZoneInfo(booking.customer_timezone)
    count = len(booking.sessions)
    policy = policy_from_data(booking.policy)
    return PageView(
        title=booking.title,
        owner_name=booking.owner.name,
        owner_email=booking.owner.email,
        customer_name=booking.customer_name,
        zone=zone_city(zone.key),
        cancelled=booking.status is BookingStatus.CANCELLED,
        sessions=[
            SessionView(
                label=f"Session {s.position} of {count}" if count > 1 else "",
                when=format_span(s.start, s.end, zone),
                status=s.status.value,
                status_label=STATUS_LABELS[s.status],
            )
            for s in booking.sessions
        ],
        rules=policy_lines(policy),
        policy_text=policy.text.strip(),
    )


# -- rendering ----------------------------------------------------------------------------------


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("calsync.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(name: str, **values: object) -> bytes:
    template = _templates().get_template(name)
    return template.render(style=Markup(STYLE), **values).encode()


@functools.cache
def invalid_page() -> bytes:
    """The one answer to every token that opens nothing: it depends on nothing in the request."""
    return _render("link_invalid.html")


def _answer(request: Request, body: bytes, status: int) -> Response:
    headers = dict(PAGE_HEADERS)
    if request.method == "HEAD":
        # The headers a GET would get, without the body, whatever server runs the app.
        headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, status_code=status, headers=headers, media_type="text/html")


def token_tag(token: str) -> str:
    """A short hash of a token: enough to match log lines, useless for opening the page."""
    return links.hash_token(token)[:8]


@router.api_route("/m/{token:path}", methods=["GET", "HEAD"])
def manage_page(token: str, request: Request, db: DbDep) -> Response:
    """The booking a valid token opens; the same 404 page for every other token."""
    with db.reading() as session:
        booking = links.booking_for_token(session, token)
        view = page_view(booking) if booking is not None else None
    if booking is None or view is None:
        log.info("manage page: no booking for token #%s", token_tag(token))
        return _answer(request, invalid_page(), 404)
    log.info("manage page: booking %s shown (token #%s)", booking.id, token_tag(token))
    return _answer(request, _render("manage_interim.html", page=view), 200)


# -- logs -----------------------------------------------------------------------------------------

_MANAGE_PATH = re.compile(r"/m/([^\s?\"]+)")


def redact_tokens(text: str) -> str:
    """``GET /m/<token>`` → ``GET /m/#<short hash>``."""
    return _MANAGE_PATH.sub(lambda match: f"/m/#{token_tag(match.group(1))}", text)


class RedactManageTokens(logging.Filter):
    """Replaces manage tokens in log records (uvicorn's access log writes every path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args and isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        elif isinstance(record.args, tuple):
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True
