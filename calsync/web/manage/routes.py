"""The customer's manage page ``/m/<token>``: the pages that only read.

The token in the URL is the capability, so there is no login; what these pages must not do is
change anything, leak the token, or tell anything about a token that does not work:

- unknown, revoked, expired, forged and truncated tokens get one page, byte for byte, with one
  status (404) and one set of headers; every token costs the same indexed lookup of its hash;
- GET and HEAD only read (mail scanners open links); every change is a POST
  (``manage/actions.py``);
- no third-party anything, and nothing is built from the Host header: links are paths under
  the configured ``base_url``;
- ``Referrer-Policy: no-referrer`` keeps the URL out of other sites' logs, and the logs of this
  one only see a short hash of the token (``RedactManageTokens`` for uvicorn's access log);
- every request counts against the per-token and per-address rate limits (``rate_limit.py``).

Pages: ``/m/<token>`` (``?tab=keep|reschedule|cancel``), ``/m/<token>/times`` (free times for
the ticked sessions), ``/m/<token>/reschedule/review`` and ``/m/<token>/cancel/review`` (the
confirm step), ``/m/<token>/changes/<id>`` (a change's outcome). Each takes ``?tz=<IANA zone>``
for the zone the times are shown in (default: the booking's customer zone).
"""

from __future__ import annotations

import logging
import re
from datetime import date

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.notify.when import format_span
from calsync.policy.change_rules import Action
from calsync.store.models import Change, ChangeStatus
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.manage import actions as manage_actions
from calsync.web.manage import payment as manage_payment
from calsync.web.manage.forms import (
    FormProblems,
    Purpose,
    chosen_sessions,
    chosen_starts,
    small_int,
)
from calsync.web.manage.pages import (
    Visit,
    allowed_sessions,
    booking_page,
    check_moves,
    confirm_page,
    not_valid,
    open_visit,
    result_page,
    times_page,
    token_tag,
)
from calsync.web.manage.rate_limit import limit_manage_requests
from calsync.web.manage.render import see_other

__all__ = ["RedactManageTokens", "format_span", "redact_tokens", "router", "token_tag"]

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["manage page"], include_in_schema=False, dependencies=[Depends(limit_manage_requests)]
)
READ = ["GET", "HEAD"]


def _visit(request: Request, settings: SettingsDep, db: DbDep, token: str) -> Visit | None:
    params = request.query_params
    return open_visit(request, settings, db, token, params.get("tz"), params.get("request"))


def _request_gone(visit: Visit) -> Response | None:
    """The Reschedule tab with why the owner's request link offers nothing (410), if so."""
    words = visit.request_refused()
    if words is None:
        return None
    log.info("manage page: booking %s: request link refused", visit.booking.id)
    return booking_page(visit, "reschedule", notice=words, status=410)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text else None
    except ValueError:
        return None


@router.api_route("/m/{token}", methods=READ)
def manage_page(token: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """The booking a valid token opens, on the tab asked for; the same 404 for every other."""
    visit = _visit(request, settings, db, token)
    if visit is None:
        return not_valid(request, settings, token)
    log.info("manage page: booking %s shown (token #%s)", visit.booking.id, token_tag(token))
    gone = _request_gone(visit)
    if gone is not None:
        return gone
    params = request.query_params
    return booking_page(visit, params.get("tab", "keep"), ticked=_ticked(params.getlist("session")))


def _ticked(values: list[str]) -> list[int]:
    """Session ids to show ticked (coming back from a later step); anything else is ignored."""
    return [n for n in map(small_int, values) if n is not None]


@router.api_route("/m/{token}/times", methods=READ)
def free_times(token: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """Free times for the ticked sessions; picks made so far (``start-<id>``) stay checked."""
    visit = _visit(request, settings, db, token)
    if visit is None:
        return not_valid(request, settings, token)
    gone = _request_gone(visit)
    if gone is not None:
        return gone
    params = request.query_params
    try:
        session_ids = _movable(visit, chosen_sessions(params, visit.booking))
        picks = chosen_starts(params, session_ids, visit.page.names(), partial=True)
    except FormProblems as exc:
        return booking_page(visit, "reschedule", problems=exc.problems, status=exc.status)
    first = _day(params.get("from")) or _day(params.get("shown"))
    return times_page(visit, session_ids, picks, first)


def _movable(visit: Visit, session_ids: list[int]) -> list[int]:
    """The sessions, if the policy lets the customer move each of them now."""
    return allowed_sessions(visit, session_ids, Action.RESCHEDULE)


@router.api_route("/m/{token}/reschedule/review", methods=READ)
def review_reschedule(token: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """The confirm step of a reschedule: old → new times, fee, reason; or the times again with
    what is wrong with the picks."""
    visit = _visit(request, settings, db, token)
    if visit is None:
        return not_valid(request, settings, token)
    gone = _request_gone(visit)
    if gone is not None:
        return gone
    params = request.query_params
    shown = _day(params.get("shown"))
    try:
        session_ids = _movable(visit, chosen_sessions(params, visit.booking))
    except FormProblems as exc:
        return booking_page(visit, "reschedule", problems=exc.problems, status=exc.status)
    names = visit.page.names()
    picks = chosen_starts(params, session_ids, names, partial=True)
    try:
        moves = chosen_starts(params, session_ids, names)
    except FormProblems as exc:
        return times_page(visit, session_ids, picks, shown, problems=exc.problems, status=422)
    problems = check_moves(visit, session_ids, moves)
    if problems:
        return times_page(visit, session_ids, picks, shown, problems=problems, status=422)
    return confirm_page(visit, Purpose.RESCHEDULE, session_ids, moves, shown=shown)


@router.api_route("/m/{token}/cancel/review", methods=READ)
def review_cancel(token: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """The confirm step of a cancel: what will be cancelled, any refund, the reason."""
    visit = _visit(request, settings, db, token)
    if visit is None:
        return not_valid(request, settings, token)
    try:
        chosen = chosen_sessions(request.query_params, visit.booking)
        session_ids = allowed_sessions(visit, chosen, Action.CANCEL)
    except FormProblems as exc:
        ticked = _ticked(request.query_params.getlist("session"))
        return booking_page(
            visit, "cancel", problems=exc.problems, ticked=ticked, status=exc.status
        )
    return confirm_page(visit, Purpose.CANCEL, session_ids, {})


@router.api_route("/m/{token}/changes/{change_id}", methods=READ)
def change_outcome(
    token: str, change_id: str, request: Request, db: DbDep, settings: SettingsDep
) -> Response:
    """What a change did: old → new times (or what was cancelled), its fee or refund, and
    whether it has reached the owner's calendar yet. Only this booking's changes are shown."""
    visit = _visit(request, settings, db, token)
    number = small_int(change_id)
    if visit is None or number is None:
        return not_valid(request, settings, token)
    with db.reading() as session:
        change = session.scalars(
            select(Change).where(Change.id == number, Change.booking_id == visit.booking.id)
        ).one_or_none()
    if change is None:
        return not_valid(request, settings, token)
    if change.status is ChangeStatus.AWAITING_PAYMENT and settings.payments is not None:
        return see_other(visit.paths.pay(change.id))
    return result_page(visit, change)


# The changes (POSTs) come before the catch-all below, which would otherwise take them.
router.include_router(manage_actions.router)
router.include_router(manage_payment.router)


@router.api_route("/m/{token:path}", methods=[*READ, "POST"])
def anything_else(token: str, request: Request, settings: SettingsDep) -> Response:
    """Every other path under /m/ (an empty, cut or extended token) gets the same 404."""
    return not_valid(request, settings, token)


# -- logs -----------------------------------------------------------------------------------------

_MANAGE_PATH = re.compile(r"/m/([^\s?\"/]+)")
# A reschedule request's token travels in the query (and in forms): never into the logs.
_REQUEST_QUERY = re.compile(r"([?&]request=)[^\s&\"#]+")
# The console's one-time sign-in links (``/console/link/<token>``) are capabilities too.
_CONSOLE_LINK = re.compile(r"/console/link/([^\s?\"/]+)")
# Google's one-time code and calsync's sealed state come back in the sign-in callback's query.
_SIGN_IN_QUERY = re.compile(r"(/oauth/google/callback/?)\?[^\s\"]*")


def redact_tokens(text: str) -> str:
    """``GET /m/<token>`` → ``GET /m/#<short hash>`` (and the console's sign-in links alike);
    the sign-in callback's query goes."""
    text = _MANAGE_PATH.sub(lambda match: f"/m/#{token_tag(match.group(1))}", text)
    text = _REQUEST_QUERY.sub(r"\1…", text)
    text = _CONSOLE_LINK.sub(lambda match: f"/console/link/#{token_tag(match.group(1))}", text)
    return _SIGN_IN_QUERY.sub(r"\1?…", text)


class RedactManageTokens(logging.Filter):
    """Replaces manage tokens and OAuth codes in log records (uvicorn's access log writes
    every path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args and isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        elif isinstance(record.args, tuple):
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True
